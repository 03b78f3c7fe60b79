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


# ---- link errors: each kind injected, seen reported, recovered from ---------------------------

class FaultyTransport(AmaranthTransport):
    """Byte streams that damage the link on request: flip a bit of, or drop, sent byte number
    ``k`` (counting from the next send), or flip a bit of received byte ``k``."""

    def __init__(self, ctx, rx, tx):
        super().__init__(ctx, rx, tx)
        self.flip_sent = self.drop_sent = self.flip_received = None
        self.sent = self.received = 0

    async def send(self, data):
        out = bytearray()
        for byte in data:
            if self.sent == self.flip_sent:
                byte ^= 0x10
            if self.sent != self.drop_sent:
                out.append(byte)
            self.sent += 1
        await super().send(bytes(out))

    async def recv(self, n):
        data = bytearray(await super().recv(n))
        for i in range(n):
            if self.received + i == self.flip_received:
                data[i] ^= 0x01
        self.received += n
        return bytes(data)

    def arm(self, **kind):
        self.sent = self.received = 0
        self.flip_sent = self.drop_sent = self.flip_received = None
        for key, value in kind.items():
            setattr(self, key, value)


def _bridge_sim(body, deny=None):
    from amaranth.sim import Simulator
    targets = [MemTarget("a", 10, 12), MemTarget("b", 5, 40)]
    h = Harness(targets, 3)
    bridge = h.bridge
    seen = {"starts": []}

    async def testbench(ctx):
        link = FaultyTransport(ctx, bridge.rx, bridge.tx)
        host = Host(link, targets)
        await body(ctx, bridge, host, link, seen)

    async def watch_start(ctx):
        async for _clk, _rst, start, op in ctx.tick().sample(bridge.start, bridge.op):
            if start:
                seen["starts"].append(op)

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_process(watch_start)
    sim.run()
    return seen


def test_damaged_frames_are_reported_and_repeated():
    async def body(ctx, bridge, host, link, seen):
        words = list(range(1, 11))
        link.arm(flip_sent=14)                 # a data byte of the WRITE: CRC error
        await host.write("a", words)
        got = list(await host.read("a", 10))
        seen["after_flip"] = (host.retries, got)
        link.arm(drop_sent=3)                  # the WRITE header loses a byte: cut short
        await host.write("a", [5] * 10)
        got = list(await host.read("a", 10))
        seen["after_drop"] = (host.retries, got)
        link.arm(flip_sent=1)                  # the START's op byte: nothing may start
        await host.start(9)
        link.arm(flip_received=3)              # a byte of the READ's reply
        got = list(await host.read("a", 3))
        seen["after_reply"] = (host.retries, got)
        link.arm()
        ctx.set(bridge.link_error, 1)          # the UART lost a byte while the line was idle
        await ctx.tick()
        ctx.set(bridge.link_error, 0)
        got = list(await host.read("a", 2))
        seen["after_link"] = (host.retries, got)
        # an unknown command byte: an error reply, then the bridge reads frames again
        await link.send(bytes([0x7A]))
        status = await link.recv(2)
        seen["unknown"] = status[0]
        seen["ident"] = await host.ident()

    seen = _bridge_sim(body)
    assert seen["after_flip"] == (1, list(range(1, 11)))
    assert seen["after_drop"] == (2, [5] * 10)
    assert seen["after_reply"] == (4, [5, 5, 5])
    assert seen["after_link"] == (5, [5, 5])
    assert seen["starts"] == [9]               # once, though its first frame was damaged
    from spikeforge.hdl.protocol import Ack, Err
    assert seen["unknown"] == Ack.ERROR | Err.FRAME
    assert seen["ident"]["key"] == "0102030405060708"


def test_refused_accesses_have_no_effect():
    from spikeforge.sim.host.protocol import Refused

    async def body(ctx, bridge, host, link, seen):
        await host.write("a", [1] * 10)
        ctx.set(bridge.deny_w, 0b01)
        ctx.set(bridge.deny_r, 0b10)
        ctx.set(bridge.deny_start, 1)
        for name, access in (("write", host.write("a", [2] * 10)), ("read", host.read("b", 1)),
                             ("start", host.start(4))):
            try:
                await access
            except Refused:
                seen.setdefault("refused", []).append(name)
        ctx.set(bridge.deny_w, 0)
        seen["a"] = list(await host.read("a", 10))
        # bytes sent while the bridge waits are reported with the WAIT's reply
        ctx.set(bridge.busy, 1)
        from spikeforge.hdl.protocol import crc8
        await link.send(bytes([0x04, 0x00, crc8([0x04, 0x00])]))
        for _ in range(20):
            await ctx.tick()
        await link.send(bytes([0x55]))
        ctx.set(bridge.busy, 0)
        seen["wait_reply"] = (await link.recv(2))[0]

    seen = _bridge_sim(body)
    assert seen["refused"] == ["write", "read", "start"]
    assert seen["a"] == [1] * 10 and seen["starts"] == []
    from spikeforge.hdl.protocol import Ack, Err
    assert seen["wait_reply"] == Ack.ERROR | Err.FRAME
