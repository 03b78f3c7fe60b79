"""Test harness for engines that work on shared memories, and host drivers that load and read them.

An engine (e.g. :class:`~spikeforge.hdl.forward.ForwardEngine`) owns no data memory: it has
``lib.memory`` read/write port interfaces. :class:`MemoryHarness` instantiates the memories,
connects the engine's ports to them, forwards the engine's control members unchanged and adds,
per memory, a host write port ``<mem>_hw`` and a host read port ``<mem>_hr``. One build of the
harness (one Verilator model) then serves any number of test vectors: the host loads memories,
pulses ``start``, waits for ``done`` and reads results back, all through ports.

Two host drivers expose the same async API (``write``, ``read``, ``run``), so one procedure drives
either simulator:

- :class:`AmaranthHost` over an Amaranth simulator testbench context;
- :class:`CocotbHost` over a cocotb ``dut`` (generated Verilog under Verilator or Icarus).

Host port timing: writes and reads take one cycle per word; a read's data is sampled one cycle
after its address (synchronous read ports).
"""

import os
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from spikeforge.hdl.memmap import addr_bits

__all__ = ["MemorySpec", "MemoryHarness", "AmaranthHost", "CocotbHost", "build_harness_verilog"]


@dataclass(frozen=True)
class MemorySpec:
    """One memory of the harness.

    ``width`` bits per word, ``depth`` words; ``reads``/``writes`` name the engine members (read
    and write port interfaces) connected to it, a name or ``(name, index)`` for one element of an
    array member (the Backward Engine's banks); ``granularity`` of the engine's write ports.
    """
    width: int
    depth: int
    reads: tuple = ()
    writes: tuple = ()
    granularity: int = None


def _member(engine, ref):
    return getattr(engine, ref[0])[ref[1]] if isinstance(ref, tuple) else getattr(engine, ref)


class MemoryHarness(wiring.Component):
    """An engine plus the memories it works on, with host ports.

    Members
    -------
    <every engine member not bound to a memory> : same direction as on the engine
    <mem>_hw : Out(WritePort.Signature(addr_width, width))
        Host write port (inputs of the harness: ``addr``, ``data``, ``en``).
    <mem>_hr : Out(ReadPort.Signature(addr_width, width))
        Host read port (``addr``, ``en`` in, ``data`` out, one cycle latency).
    """

    def __init__(self, engine, memories):
        self.engine = engine
        self.memories = dict(memories)
        bound = set()
        for spec in self.memories.values():
            bound.update(ref[0] if isinstance(ref, tuple) else ref
                         for ref in spec.reads + spec.writes)
        members = {}
        for name, member in engine.signature.members.items():
            if name not in bound:
                members[name] = member
        for name, spec in self.memories.items():
            aw = addr_bits(spec.depth)
            members[f"{name}_hw"] = Out(WritePort.Signature(addr_width=aw, shape=spec.width))
            members[f"{name}_hr"] = Out(ReadPort.Signature(addr_width=aw, shape=spec.width))
        self._control = [n for n in engine.signature.members if n not in bound]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        for name in self._control:
            member = eng.signature.members[name]
            if member.flow == In:
                m.d.comb += getattr(eng, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(getattr(eng, name))
        for name, spec in self.memories.items():
            mem = Memory(shape=spec.width, depth=spec.depth, init=[])
            m.submodules[f"mem_{name}"] = mem
            host_w = mem.write_port()
            engine_w = [mem.write_port(granularity=spec.granularity) for _ in spec.writes]
            # the engines' ports are lib.memory port signatures: they connect as they are
            for ref, port in zip(spec.writes, engine_w):
                wiring.connect(m, _member(eng, ref), port)
            for ref in spec.reads:
                wiring.connect(m, _member(eng, ref), mem.read_port())
            hw = getattr(self, f"{name}_hw")
            m.d.comb += [host_w.addr.eq(hw.addr), host_w.data.eq(hw.data), host_w.en.eq(hw.en)]
            host_r = mem.read_port()
            hr = getattr(self, f"{name}_hr")
            m.d.comb += [host_r.addr.eq(hr.addr), host_r.en.eq(hr.en), hr.data.eq(host_r.data)]
        return m


def build_harness_verilog(harness, name, design, variant=""):
    """Export ``harness`` to ``<build root>/<name>_<design key><variant>/<name>.v``; return
    (path, dir).

    Each design has its own folder (and simulator builds) under the one build root
    (:func:`spikeforge.sim.verify.runner.build_root`). The Verilog is always regenerated (so RTL
    edits are never missed) but the file is rewritten only when its text changed, which lets the
    simulator's build skip work. ``harness`` may be a component or a factory of one.
    """
    from spikeforge.hdl.export import to_verilog
    from spikeforge.model.atomic import atomic_write_text

    from .runner import build_root

    directory = os.path.join(build_root(), f"{name}_{design.key()}{variant}")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.v")
    text = to_verilog(harness() if callable(harness) else harness, name)
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if old != text:
        atomic_write_text(path, text)
        atomic_write_text(os.path.join(directory, "design.json"), design.to_json())
    return path, directory


class AmaranthHost:
    """Host driver over an Amaranth simulator testbench (``ctx``) and a :class:`MemoryHarness`."""

    def __init__(self, ctx, harness):
        self.ctx = ctx
        self.h = harness
        self.unknown = {}          # two-state simulator: never any undefined bits

    async def write(self, mem, words, base=0):
        port = getattr(self.h, f"{mem}_hw")
        self.ctx.set(port.en, 1)
        for addr, word in enumerate(words):
            self.ctx.set(port.addr, base + addr)
            self.ctx.set(port.data, int(word))
            await self.ctx.tick()
        self.ctx.set(port.en, 0)

    async def read(self, mem, count, base=0):
        port = getattr(self.h, f"{mem}_hr")
        out = []
        for addr in range(count):
            self.ctx.set(port.addr, base + addr)
            await self.ctx.tick()
            out.append(int(self.ctx.get(port.data)))
        return out

    async def run(self, max_cycles=10_000_000, **dims):
        """Start a run with ``dims``; return the engine's cycle counter once ``done``. The
        testbench's own count (the cycle after ``start`` to the ``done`` cycle) goes to
        ``tb_cycles``."""
        for name, value in dims.items():
            self.ctx.set(getattr(self.h, name), value)
        self.ctx.set(self.h.start, 1)
        await self.ctx.tick()
        self.ctx.set(self.h.start, 0)
        for waited in range(1, max_cycles + 1):
            await self.ctx.tick()
            if self.ctx.get(self.h.done):
                self.tb_cycles = waited + 1
                await self.ctx.tick()
                return int(self.ctx.get(self.h.cycles))
        raise TimeoutError(f"engine not done after {max_cycles} cycles")


class CocotbHost:
    """Host driver over a cocotb ``dut`` of a :class:`MemoryHarness` exported to Verilog.

    Inputs are driven and outputs sampled at falling edges, half a cycle away from the active
    (rising) edge, so there is no race with the design's registers.
    """

    PERIOD_NS = 10

    def __init__(self, dut):
        self.dut = dut
        self.unknown = {}          # memory -> undefined-bit masks of the words last read

    async def setup(self):
        import cocotb
        from cocotb.clock import Clock
        from cocotb.triggers import FallingEdge

        cocotb.start_soon(Clock(self.dut.clk, self.PERIOD_NS, unit="ns").start())
        self.dut.rst.value = 1
        self.dut.start.value = 0
        for name in ("hw", "hr"):
            for port in self._ports(name):
                getattr(self.dut, f"{port}__en").value = 0
        await FallingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await FallingEdge(self.dut.clk)

    def _ports(self, suffix):
        names = set()
        for handle in self.dut:
            n = handle._name
            if n.endswith(f"_{suffix}__en"):
                names.add(n[:-len("__en")])
        return sorted(names)

    async def write(self, mem, words, base=0):
        from cocotb.triggers import FallingEdge

        addr_h = getattr(self.dut, f"{mem}_hw__addr")
        data_h = getattr(self.dut, f"{mem}_hw__data")
        en_h = getattr(self.dut, f"{mem}_hw__en")
        en_h.value = 1
        for addr, word in enumerate(words):
            addr_h.value = base + addr
            data_h.value = int(word)
            await FallingEdge(self.dut.clk)
        en_h.value = 0

    async def read(self, mem, count, base=0):
        from cocotb.triggers import FallingEdge

        addr_h = getattr(self.dut, f"{mem}_hr__addr")
        data_h = getattr(self.dut, f"{mem}_hr__data")
        getattr(self.dut, f"{mem}_hr__en").value = 1
        out, unknown = [], []
        for addr in range(count):
            addr_h.value = base + addr
            await FallingEdge(self.dut.clk)
            bits = str(data_h.value)                     # MSB first; 4-state simulators: x/z
            out.append(int("".join("1" if b == "1" else "0" for b in bits), 2))
            unknown.append(int("".join("0" if b in "01" else "1" for b in bits), 2))
        # undefined bits (Icarus: padding lanes no golden value covers) read as 0; the caller
        # checks with ``unknown[mem]`` that none lies in a compared lane
        self.unknown[mem] = unknown
        return out

    async def run(self, max_cycles=10_000_000, **dims):
        from cocotb.triggers import ClockCycles, FallingEdge, First, RisingEdge

        from cocotb.simtime import get_sim_time

        for name, value in dims.items():
            getattr(self.dut, name).value = value
        self.dut.start.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.start.value = 0
        t0 = get_sim_time(unit="ns")
        if not self.dut.done.value:
            timeout = ClockCycles(self.dut.clk, max_cycles)
            fired = await First(RisingEdge(self.dut.done), timeout)
            if fired is timeout:
                raise TimeoutError(f"engine not done after {max_cycles} cycles")
            await FallingEdge(self.dut.clk)
        await FallingEdge(self.dut.clk)
        self.tb_cycles = round((get_sim_time(unit="ns") - t0) / self.PERIOD_NS)
        return self.dut.cycles.value.to_unsigned()
