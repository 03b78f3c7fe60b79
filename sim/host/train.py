"""``spikeforge train --engine rtl|board|hil``: the ordinary training loop on the accelerator.

With ``--engine hil`` (hardware in the loop, ``--backend rtl|board``) only the forward pass runs
on the accelerator and the golden model trains from its traces
(:class:`~spikeforge.sim.host.engine.HilEngine`).

- :func:`train_rtl` builds (or reuses) the Verilator model of the accelerator for the design and
  runs :mod:`spikeforge.sim.verify.tb_train`, which drives :func:`spikeforge.model.train.train`
  with an :class:`~spikeforge.sim.host.engine.RtlEngine` inside the simulation.
- :func:`train_board` opens a serial port to a board that runs the bitstream of
  ``spikeforge synth``, checks with IDENT that it carries the same design (its key), and drives
  the same loop through the same driver and golden cross-check. A board with an on-chip data set
  trains by itself: the host uploads the set once, then hands over the order of each epoch and
  reads the weights back at checkpoints (:class:`~spikeforge.sim.host.engine.JobEngine`).
"""

import asyncio
import json
import os
import tempfile

import numpy as np

from spikeforge.model.progress import active

from .driver import AcceleratorDriver
from .engine import RtlEngine, RtlMismatch
from .protocol import ProtocolError
from .transports import SerialTransport

__all__ = ["train_rtl", "train_board", "infer_rtl", "checked_metrics", "make_engine"]


def infer_rtl(design, weights, x, simulator="verilator", progress=None):
    """Predictions of the accelerator's RTL for spikes ``x`` (T, N, n_in): every batch through
    its INFER operation, each checked against the golden model (an ``RtlMismatch`` otherwise)."""
    from spikeforge.sim.verify.runner import run_testbench
    from spikeforge.sim.verify.top import VERILATOR_FAST, top_verilog

    path, directory = top_verilog(design)
    with tempfile.TemporaryDirectory() as tmp:
        vectors, results = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(vectors, x=np.asarray(x), **{f"w{l}": np.asarray(w)
                                             for l, w in enumerate(weights)})
        run_testbench(design, [path], "sf_accelerator", "spikeforge.sim.verify.tb_infer",
                      os.path.join(directory, simulator), vectors, results,
                      simulator=simulator, build_args=VERILATOR_FAST, progress=progress)
        out = np.load(results)
        if "error" in out.files:
            raise RtlMismatch(str(out["error"]))
        return out["pred"]


def make_engine(driver, design, opts, run):
    """The engine that trains ``design`` through ``driver``: the board's own training job over
    its on-chip data set (:class:`~spikeforge.sim.host.engine.JobEngine`) when the design has
    one, else a training step per batch streamed by the host
    (:class:`~spikeforge.sim.host.engine.RtlEngine`)."""
    from spikeforge.model.data import load_dataset

    from .engine import HilEngine, JobEngine
    if opts.engine_name == "hil":
        from spikeforge.model.config import Config
        cfg = Config.from_dict(opts.golden_config) if opts.golden_config else design.cfg
        return HilEngine(driver, cfg, run, seed=opts.seed)
    if design.memmap.has_data:
        data = load_dataset(opts.dataset)
        if len(data.x_train) + len(data.x_test) > design.hw.data_samples:
            raise ProtocolError(f"{opts.dataset} has {len(data.x_train) + len(data.x_test)} "
                                f"samples, the board's data set holds {design.hw.data_samples}")
        if data.vmax != design.hw.data_vmax:
            raise ProtocolError(f"{opts.dataset} has intensities 0..{data.vmax}, the board's "
                                f"encoder 0..{design.hw.data_vmax}; train the data set it was "
                                f"built for")
        return JobEngine(driver, design.cfg, run, data, seed=opts.seed)
    return RtlEngine(driver, design.cfg, run, seed=opts.seed)


def checked_metrics(engine, metrics, out, **extra):
    """``metrics`` plus the cross-check figures of a run that completed (an
    :class:`RtlMismatch` would have stopped it), also written to ``out/metrics.json``."""
    from spikeforge.model.atomic import atomic_write_text
    from spikeforge.model.train import METRICS

    if hasattr(engine, "forward_mismatches"):       # hardware in the loop
        metrics.update({"hil_steps": engine.steps_checked,
                        "hil_forward_mismatches": engine.forward_mismatches, **extra})
    else:
        metrics.update({"weights_checked_steps": engine.steps_checked,
                        "predictions_checked": engine.predictions_checked,
                        "all_weights_matched_golden": True, **extra})
    atomic_write_text(os.path.join(out, METRICS), json.dumps(metrics, indent=2) + "\n")
    return metrics


def train_rtl(design, opts, simulator="verilator"):
    from spikeforge.sim.verify.runner import run_testbench
    from spikeforge.sim.verify.top import VERILATOR_FAST, top_verilog

    options = opts.to_dict()
    options["out"] = os.path.abspath(opts.out)
    if options.get("init"):
        options["init"] = os.path.abspath(options["init"])
    options["engine_name"] = "hil" if opts.engine_name == "hil" else "rtl"
    path, directory = top_verilog(design)
    with tempfile.TemporaryDirectory() as tmp:
        vectors, results = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(vectors, options=np.array(json.dumps(options)))
        run_testbench(design, [path], "sf_accelerator", "spikeforge.sim.verify.tb_train",
                      os.path.join(directory, simulator), vectors, results,
                      simulator=simulator, log_to_console=True, build_args=VERILATOR_FAST,
                      progress=(active() or print) if opts.progress else None)
        out = np.load(results)
        if "error" in out.files:
            raise RtlMismatch(str(out["error"]))
        return json.loads(str(out["metrics"]))


def train_board(design, opts, port, baud):
    from spikeforge.model.train import train

    if not port:
        raise ProtocolError("--engine board needs --port (e.g. /dev/ttyUSB0)")
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    driver = AcceleratorDriver(SerialTransport(port, baud), design)
    run(driver.connect())
    if opts.engine_name != "hil":
        opts.engine_name = "board"
    engine = make_engine(driver, design, opts, run)
    metrics = train(engine.cfg, opts, engine=engine)
    return checked_metrics(engine, metrics, opts.out, port=port, baud=baud,
                           design_key=design.key())
