"""Run the accelerator top's generated Verilog under cocotb (Verilator by default).

:func:`run_top` exports :class:`~spikeforge.hdl.top.Accelerator` for ``(cfg, hw)`` into its own
build folder (rebuilt only when the Verilog changes), runs :mod:`spikeforge.sim.tb_top` on it, and
returns what the testbench read back.
"""

import json
import os
import tempfile

import numpy as np

from amaranth import ClockDomain, ClockSignal, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from spikeforge.hdl.top import Accelerator

from .harness import build_harness_verilog
from .runner import run_cocotb

__all__ = ["top_verilog", "run_top", "DEFAULT_BUILD_ROOT"]

DEFAULT_BUILD_ROOT = os.path.join(tempfile.gettempdir(), "spikeforge_sim")

# Verilator options for the (large) top: full optimisation, no X randomisation (Amaranth gives
# every register an init value, so there are no X states to model)
VERILATOR_FAST = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")


class ResetlessTop(wiring.Component):
    """The accelerator in a clock domain without reset, for simulation speed.

    Every register starts from its init value (Verilog initial blocks), so the simulation needs
    no reset. Without a ``rst`` input the next-state logic of the registers no longer depends on
    a top-level input, so Verilator evaluates it once per clock edge instead of on every call of
    ``eval`` (its input-combinational region).
    """

    def __init__(self, cfg, hw):
        self.core = Accelerator(cfg, hw)
        super().__init__({"clk": In(1), **self.core.signature.members})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.core = self.core
        wiring.connect(m, wiring.flipped(self.rx), self.core.rx)
        wiring.connect(m, self.core.tx, wiring.flipped(self.tx))
        return m


def _key(cfg, hw):
    return json.dumps({"config": cfg.to_dict(), "hw": hw.__dict__}, sort_keys=True)


def top_verilog(cfg, hw, build_root=DEFAULT_BUILD_ROOT):
    """(verilog path, build directory) of the top for this parameter set."""
    return build_harness_verilog(lambda: ResetlessTop(cfg, hw), "sf_accelerator", build_root,
                                 _key(cfg, hw) + "/resetless")


def run_top(cfg, hw, weights, xs, ys, pipeline=True, queue=False, check_every=True,
            simulator="verilator", build_root=DEFAULT_BUILD_ROOT, test_module="spikeforge.sim.tb_top",
            extra=None, build_args=VERILATOR_FAST):
    """Simulate ``len(xs)`` training steps; returns the testbench's arrays as a dict."""
    path, directory = top_verilog(cfg, hw, build_root)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        arrays = {"config": np.array(cfg.to_json()), "hw": np.array(json.dumps(hw.__dict__)),
                  "x": np.asarray(xs), "y": np.asarray(ys), "pipeline": int(pipeline),
                  "queue": int(queue), "check_every": int(check_every)}
        arrays.update({f"w{l}": np.asarray(w) for l, w in enumerate(weights)})
        arrays.update(extra or {})
        np.savez(inp, **arrays)
        run_cocotb([path], "sf_accelerator", test_module,
                   os.path.join(directory, simulator), simulator=simulator,
                   extra_env={"SF_TOP_IN": inp, "SF_TOP_OUT": out}, public_top_only=True,
                   build_args=build_args)
        result = dict(np.load(out))
    result["counters"] = json.loads(str(result["counters"]))
    return result
