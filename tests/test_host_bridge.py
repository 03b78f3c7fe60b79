"""The host command bridge in the Amaranth simulator, driven by the real host driver."""

import numpy as np
import pytest
from amaranth import Elaboratable, Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spikeforge.hdl.host import HostBridge
from spikeforge.hdl.memmap import HostTarget as MemTarget
from spikeforge.sim.host.protocol import Host, ProtocolError, pack_words, unpack_words
from spikeforge.sim.host.transports import AmaranthTransport


class Harness(Elaboratable):
    def __init__(self, targets, n_counters):
        self.targets = targets
        self.bridge = HostBridge(targets, n_counters, key=bytes(range(1, 9)))
        self.n_counters = n_counters

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        for t in self.targets:
            mem = Memory(shape=signed(t.width), depth=t.depth, init=[])
            m.submodules[t.name] = mem
            wiring.connect(m, getattr(self.bridge, f"w_{t.name}"), mem.write_port())
            wiring.connect(m, getattr(self.bridge, f"r_{t.name}"), mem.read_port())
        m.d.comb += [self.bridge.counters[i].eq(1000 * i + 7) for i in range(self.n_counters)]
        return m


def test_pack_unpack_roundtrip():
    words = np.array([-5, 0, 2047, -2048, 3])
    assert np.array_equal(unpack_words(pack_words(words, 2), 2, 12, signed=True), words)


def test_bridge_write_read_start_wait_counters():
    targets = [MemTarget("a", 10, 12), MemTarget("b", 5, 40)]
    h = Harness(targets, 3)
    bridge = h.bridge
    rng = np.random.default_rng(0)
    a = rng.integers(-2048, 2048, size=10)
    b = rng.integers(-(1 << 39), 1 << 39, size=5)
    seen = {}

    async def testbench(ctx):
        host = Host(AmaranthTransport(ctx, bridge.rx, bridge.tx), targets)
        assert await host.ident() == {"memories": 2, "counters": 3, "key": "0102030405060708"}
        await host.write("a", a)
        await host.write("b", b)
        await host.write("a", [77], addr=4)
        seen["a"] = await host.read("a", 10, signed=True)
        seen["b"] = await host.read("b", 5, signed=True)
        seen["b2"] = await host.read("b", 2, addr=3, signed=True)
        seen["counters"] = await host.counters(3)
        ctx.set(bridge.busy, 1)
        await host.start(5)
        # START pulses once with its argument; WAIT blocks while busy
        ctx.set(bridge.busy, 0)
        await host.wait()
        with pytest.raises(ProtocolError, match="overflows a"):
            await host.write("a", np.zeros(11))

    async def watch_start(ctx):
        async for _clk, _rst, start, op in ctx.tick().sample(bridge.start, bridge.op):
            if start:
                seen.setdefault("starts", []).append(op)

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_process(watch_start)
    sim.run()
    expect_a = a.copy()
    expect_a[4] = 77
    assert np.array_equal(seen["a"], expect_a)
    assert np.array_equal(seen["b"], b)
    assert np.array_equal(seen["b2"], b[3:5])
    assert seen["counters"] == [7, 1007, 2007]
    assert seen["starts"] == [5]


def test_pack_words_exact_for_mixed_64_bit_words():
    # a list mixing values above and below 2**63 must not pass through float64
    words = [0xB8038000700809CB, 0x0320CC8E23732005, (1 << 127) + 3]
    data = pack_words(words, 16)
    assert [int(v) for v in unpack_words(data, 16, 128)] == words
