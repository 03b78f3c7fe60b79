"""cocotb testbench of the Backward Engine harness (``sf_be_harness``).

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_DESIGN``; the jobs in
``SF_VECTORS`` run one after the other on one build with the shared host driver
(:func:`spikeforge.sim.verify.backward.run_job`); the results go to ``SF_RESULTS``; the comparison
with the golden model happens in pytest / the bench.
Inputs are driven and outputs sampled on the falling edge, half a cycle away from the active edge.
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.simtime import get_sim_time

from spikeforge.hdl.design import Design
from spikeforge.sim.verify.backward import npz_to_jobs, results_to_npz, run_job
from spikeforge.sim.verify.runner import ENV_DESIGN, ENV_RESULTS, ENV_VECTORS


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
    design = Design.from_json(os.environ[ENV_DESIGN])
    jobs = npz_to_jobs(os.environ[ENV_VECTORS])
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
        results.append(await run_job(bus, design, job))
    results_to_npz(os.environ[ENV_RESULTS], results)
