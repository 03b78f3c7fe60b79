"""cocotb testbench of the Backward Engine harness (``sf_be_harness``).

Reads the jobs from the ``.npz`` named by ``SF_BE_VECTORS``, runs them one after the other on one
build with the shared host driver (:func:`spikeforge.sim.harness_backward.run_job`), and writes the
results to ``SF_BE_RESULTS``; the comparison with the golden model happens in pytest / the bench.
Inputs are driven and outputs sampled on the falling edge, half a cycle away from the active edge.
"""

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.simtime import get_sim_time

from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config
from spikeforge.sim.harness_backward import npz_to_jobs, results_to_npz, run_job


PERIOD_NS = 10


class CocotbBus:
    def __init__(self, dut):
        self.dut = dut

    def set(self, name, value):
        getattr(self.dut, name).value = value

    def get(self, name):
        return int(getattr(self.dut, name).value)

    async def tick(self):
        await FallingEdge(self.dut.clk)

    async def wait_done(self):
        """Wait for ``done`` without a Python step per cycle; return the cycles waited (the
        falling edges from the one after ``start`` to the first with ``done`` high)."""
        t0 = get_sim_time(unit="ns")
        if not int(self.dut.done.value):
            await RisingEdge(self.dut.done)
            await FallingEdge(self.dut.clk)
        return round((get_sim_time(unit="ns") - t0) / PERIOD_NS)


@cocotb.test()
async def run_jobs(dut):
    cfg = Config.from_dict(json.loads(os.environ["SF_BE_CFG"]))
    hw = HwParams(**json.loads(os.environ["SF_BE_HW"])).validate()
    jobs = npz_to_jobs(os.environ["SF_BE_VECTORS"])
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    bus = CocotbBus(dut)
    for name in ("start", "host_we", "host_sel", "host_addr", "host_wdata", "n_out", "n_in",
                 "timesteps", "batch", "has_below", "sparse"):
        bus.set(name, 0)
    dut.rst.value = 1
    await bus.tick()
    await bus.tick()
    dut.rst.value = 0
    await bus.tick()
    results = []
    for job in jobs:
        results.append(await run_job(bus, cfg, hw, job))
    results_to_npz(os.environ["SF_BE_RESULTS"], results)
