"""``spikeforge train --engine rtl``: train on the accelerator's generated Verilog under cocotb.

Builds (or reuses) the Verilator model of :class:`~spikeforge.hdl.top.Accelerator` for the
configuration, then runs :mod:`spikeforge.sim.tb_train`, which drives the ordinary training loop
with an :class:`~spikeforge.sim.rtl_engine.RtlEngine`. The simulator's output (progress, per-epoch
accuracy) goes to the terminal.
"""

import dataclasses
import json
import os

from .runner import run_cocotb
from .top_sim import DEFAULT_BUILD_ROOT, VERILATOR_FAST, top_verilog

__all__ = ["train_rtl"]


def train_rtl(cfg, hw, opts, simulator="verilator", build_root=DEFAULT_BUILD_ROOT):
    path, directory = top_verilog(cfg, hw, build_root)
    options = dataclasses.asdict(opts)
    options["out"] = os.path.abspath(opts.out)
    if options.get("init"):
        options["init"] = os.path.abspath(options["init"])
    options["engine_name"] = "rtl"
    spec = {"config": cfg.to_dict(), "hw": dataclasses.asdict(hw), "options": options}
    os.makedirs(options["out"], exist_ok=True)
    run_cocotb([path], "sf_accelerator", "spikeforge.sim.tb_train",
               os.path.join(directory, simulator), simulator=simulator,
               extra_env={"SF_TRAIN_OPTS": json.dumps(spec)}, log_to_console=True,
               public_top_only=True, build_args=VERILATOR_FAST)
    with open(os.path.join(options["out"], "metrics.json")) as f:
        return json.load(f)
