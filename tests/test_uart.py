"""UART and the host protocol end to end over simulated serial pins (Amaranth simulator)."""

import numpy as np
import pytest
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.hdl.board import UartCore
from spikeforge.hdl.host import HostBridge
from spikeforge.hdl.memmap import HostTarget as MemTarget
from spikeforge.hdl.uart import divisor_for
from spikeforge.sim.host.protocol import Host
from spikeforge.sim.host.transports import AmaranthUartTransport


class MemCore(wiring.Component):
    """A host bridge in front of one memory: the smallest core with host streams."""

    def __init__(self, target):
        self.target = target
        self.bridge = HostBridge([target], 1)
        super().__init__({"rx": self.bridge.signature.members["rx"],
                          "tx": self.bridge.signature.members["tx"],
                          "link_error": self.bridge.signature.members["link_error"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        mem = Memory(shape=signed(self.target.width), depth=self.target.depth, init=[])
        m.submodules.mem = mem
        wiring.connect(m, self.bridge.w_a, mem.write_port())
        wiring.connect(m, self.bridge.r_a, mem.read_port())
        wiring.connect(m, wiring.flipped(self.rx), self.bridge.rx)
        wiring.connect(m, self.bridge.tx, wiring.flipped(self.tx))
        m.d.comb += self.bridge.link_error.eq(self.link_error)
        return m


def test_divisor_validation():
    assert divisor_for(25_000_000, 115200) == 217
    with pytest.raises(ValueError, match="too slow"):
        divisor_for(100_000, 115200)
    with pytest.raises(ValueError, match="off by"):
        divisor_for(1_000_000, 115200 * 2)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the endless
# UART monitor process is abandoned mid-await when the testbench ends; Amaranth reports that
def test_host_protocol_over_simulated_uart():
    target = MemTarget("a", 16, 12)
    divisor = 8
    top = UartCore(MemCore(target), divisor)
    words = np.random.default_rng(1).integers(-2048, 2048, size=16)
    seen = {}
    link = AmaranthUartTransport(top.rx, top.tx, divisor)

    async def testbench(ctx):
        link.ctx = ctx
        host = Host(link, [target])
        seen["ident"] = await host.ident()
        await host.write("a", words)
        seen["read"] = await host.read("a", 16, signed=True)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_process(link.monitor)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["ident"] == {"memories": 1, "counters": 1, "key": "00" * 8}
    assert np.array_equal(seen["read"], words)


def _send_bits(ctx, pin, levels, divisor):
    async def run():
        for level in levels:
            ctx.set(pin, level)
            await ctx.tick().repeat(divisor)
    return run()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_uart_frame_error_reaches_the_host_and_the_frame_is_repeated():
    target = MemTarget("a", 16, 12)
    divisor = 8
    top = UartCore(MemCore(target), divisor)
    link = AmaranthUartTransport(top.rx, top.tx, divisor)
    seen = {}

    async def testbench(ctx):
        link.ctx = ctx
        host = Host(link, [target])
        await host.write("a", list(range(16)))
        # a byte whose stop bit is low: the receiver drops it and pulses its error
        await _send_bits(ctx, top.rx, [0] + [1, 0] * 4 + [0] + [1] * 3, divisor)
        seen["read"] = list(await host.read("a", 16))
        seen["retries"] = host.retries
        seen["frame_errors"] = ctx.get(top.uart_rx.frame_errors)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_process(link.monitor)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["read"] == list(range(16))
    assert seen["frame_errors"] == 1
    assert seen["retries"] == 1          # the READ after it was answered LINK, then repeated


def test_uart_receiver_flags_an_overrun():
    from spikeforge.hdl.uart import UARTRx
    rx = UARTRx(4)
    seen = {"errors": 0}

    async def testbench(ctx):
        ctx.set(rx.out.ready, 0)             # nobody takes the bytes
        for byte in (0x12, 0x34):
            await _send_bits(ctx, rx.rx, [0] + [(byte >> k) & 1 for k in range(8)] + [1],
                             4)
        await ctx.tick().repeat(8)
        seen["overrun"] = ctx.get(rx.overrun)
        seen["payload"] = ctx.get(rx.out.payload)

    async def count_errors(ctx):
        async for _clk, _rst, error in ctx.tick().sample(rx.error):
            seen["errors"] += error

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_process(count_errors)
    sim.run()
    assert seen["overrun"] == 1 and seen["errors"] == 1 and seen["payload"] == 0x34


def test_uart_tx_sends_8n1():
    """Start bit, 8 data bits LSB first, one stop bit of at least one bit time, and the next
    start bit right after it."""
    from spikeforge.hdl.uart import UARTTx
    divisor = 5
    tx = UARTTx(divisor)
    levels = []

    async def testbench(ctx):
        for byte in (0xA5, 0x0F):
            ctx.set(tx.inp.valid, 1)
            ctx.set(tx.inp.payload, byte)
            await ctx.tick().until(tx.inp.ready)
        ctx.set(tx.inp.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def sample(ctx):
        async for _clk, _rst, level in ctx.tick().sample(tx.tx):
            levels.append(level)

    sim = Simulator(tx)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_process(sample)
    sim.run()
    first = levels.index(0)
    bits = levels[first::divisor][:20]
    assert bits[:10] == [0] + [(0xA5 >> k) & 1 for k in range(8)] + [1]
    # the second frame starts within two cycles after the stop bit's full bit time
    second = first + 10 * divisor
    start2 = levels.index(0, second - 1)
    assert second <= start2 <= second + 2
    frame2 = levels[start2::divisor][:10]
    assert frame2 == [0] + [(0x0F >> k) & 1 for k in range(8)] + [1]
