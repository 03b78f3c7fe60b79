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
                          "tx": self.bridge.signature.members["tx"]})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        mem = Memory(shape=signed(self.target.width), depth=self.target.depth, init=[])
        m.submodules.mem = mem
        wiring.connect(m, self.bridge.w_a, mem.write_port())
        wiring.connect(m, self.bridge.r_a, mem.read_port())
        wiring.connect(m, wiring.flipped(self.rx), self.bridge.rx)
        wiring.connect(m, self.bridge.tx, wiring.flipped(self.tx))
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
