"""Run the accelerator top's generated Verilog under cocotb (Verilator by default).

:func:`run_top` exports :class:`~spikeforge.hdl.top.Accelerator` for a design into its own build
folder under the one build root (rebuilt only when the Verilog changes), runs
:mod:`spikeforge.sim.verify.tb_top` on it, and returns what the testbench read back.
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
from .runner import run_testbench

__all__ = ["top_verilog", "run_top", "ResetlessTop", "VERILATOR_FAST"]

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

    def __init__(self, design):
        self.core = Accelerator(design)
        super().__init__({"clk": In(1), **self.core.signature.members})

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync", reset_less=True)
        m.d.comb += ClockSignal("sync").eq(self.clk)
        m.submodules.core = self.core
        wiring.connect(m, wiring.flipped(self.rx), self.core.rx)
        wiring.connect(m, self.core.tx, wiring.flipped(self.tx))
        return m


def top_verilog(design):
    """(verilog path, build directory) of the top for this design."""
    return build_harness_verilog(lambda: ResetlessTop(design), "sf_accelerator", design,
                                 "_resetless")


def run_top(design, weights, xs, ys, pipeline=True, queue=False, check_every=True,
            simulator="verilator", extra=None, build_args=VERILATOR_FAST):
    """Simulate ``len(xs)`` training steps; returns the testbench's arrays as a dict."""
    path, directory = top_verilog(design)
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        arrays = {"x": np.asarray(xs), "y": np.asarray(ys), "pipeline": int(pipeline),
                  "queue": int(queue), "check_every": int(check_every)}
        arrays.update({f"w{l}": np.asarray(w) for l, w in enumerate(weights)})
        arrays.update(extra or {})
        np.savez(inp, **arrays)
        run_testbench(design, [path], "sf_accelerator", "spikeforge.sim.verify.tb_top",
                      os.path.join(directory, simulator), inp, out, simulator=simulator,
                      public_top_only=True, build_args=build_args)
        result = dict(np.load(out))
    result["counters"] = json.loads(str(result["counters"]))
    return result
