"""cocotb side of the host link: a byte transport over the accelerator's rx/tx stream ports and a
clock/reset helper. Imported only inside cocotb test processes.

Amaranth flattens the stream members to ``rx__valid``/``rx__ready``/``rx__payload`` (and ``tx__*``).
A byte moves on a rising edge where valid and ready are both high; ``ready``/``valid`` are sampled
in the read-only phase before that edge, which is exact on every simulator.
"""

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["CocotbTransport", "start_clock", "run_host_job"]


async def run_host_job(dut, design, job):
    """The set-up of a testbench whose host code is ordinary blocking Python (training,
    inference): start the clock, connect an :class:`~spikeforge.sim.host.driver.AcceleratorDriver`
    and call ``job(driver, run)`` in a bridge thread, where ``run(coro)`` waits for one of the
    driver's coroutines in simulated time. Returns what ``job`` returns."""
    from cocotb.task import bridge, resume

    from .driver import AcceleratorDriver

    await start_clock(dut)
    driver = AcceleratorDriver(CocotbTransport(dut), design)
    await driver.connect()

    @resume
    async def run(coro):
        return await coro

    return await bridge(lambda: job(driver, run))()


async def start_clock(dut, period_ns=10, reset_cycles=2):
    """Start the clock (in the simulator interface, not a Python task) and pulse ``rst`` if the
    design has one (the simulation top is reset-less)."""
    Clock(dut.clk, period_ns, unit="ns", impl="gpi").start()
    has_reset = hasattr(dut, "rst")
    if has_reset:
        dut.rst.value = 1
    for _ in range(reset_cycles):
        await RisingEdge(dut.clk)
    if has_reset:
        dut.rst.value = 0
    await RisingEdge(dut.clk)


class CocotbTransport:
    def __init__(self, dut, rx="rx", tx="tx"):
        self.clk = dut.clk
        self.rx_valid = getattr(dut, f"{rx}__valid")
        self.rx_ready = getattr(dut, f"{rx}__ready")
        self.rx_payload = getattr(dut, f"{rx}__payload")
        self.tx_valid = getattr(dut, f"{tx}__valid")
        self.tx_ready = getattr(dut, f"{tx}__ready")
        self.tx_payload = getattr(dut, f"{tx}__payload")
        self.rx_valid.value = 0
        self.tx_ready.value = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    async def send(self, data):
        for byte in data:
            self.rx_valid.value = 1
            self.rx_payload.value = byte
            while True:
                await ReadOnly()
                if int(self.rx_ready.value):
                    await RisingEdge(self.clk)
                    break
                # not ready (a UART busy sending the previous byte): sleep until ready rises
                await RisingEdge(self.rx_ready)
        self.rx_valid.value = 0
        self.bytes_sent += len(data)

    async def recv(self, n):
        out = bytearray()
        self.tx_ready.value = 1
        while len(out) < n:
            await ReadOnly()
            if int(self.tx_valid.value):
                out.append(int(self.tx_payload.value))
                await RisingEdge(self.clk)
            else:
                # nothing to take: sleep until the device raises valid (no per-cycle wake-ups
                # while the accelerator computes), then re-align to the clock
                await RisingEdge(self.tx_valid)
        # ready may stay high for one more edge only if valid was low then: drop it now
        self.tx_ready.value = 0
        self.bytes_received += n
        return bytes(out)
