"""Memories that fit the block RAM: a memory in two parts, block RAM for its first words and
distributed RAM for its tail; small memories wholly in distributed RAM.

A block RAM of the ECP5 (DP16KD) holds 512 words of 36 bits, so a 256-bit memory of 512 words
takes 8 of them and one of 576 words takes 15 or 16. With ``hw.dist_spill`` the memory map
(:func:`spikeforge.hdl.memmap.tail_split`) cuts such a memory at the power of two: the words
below it stay in block RAM, the tail goes into distributed RAM (``ram_style`` attribute; on the
ECP5 ``TRELLIS_DPR16X4``). The ports behave as those of one :class:`amaranth.lib.memory.Memory`
(synchronous, non-transparent reads with an enable, writes with a per-lane enable): a write goes
to the part that holds its address; a read enables both parts and a register, set by the same
enable, picks the part its address was in. Both parts are read in the same cycle, so the read's
latency is the block RAM's; the pick is one 2:1 multiplexer after it.
"""

from amaranth import *
from amaranth.lib.memory import Memory

from .memmap import addr_bits

__all__ = ["SplitMemory", "make_memory"]


class _Port:
    def __init__(self, name, depth, width, en_bits):
        self.addr = Signal(addr_bits(depth), name=f"{name}_addr")
        self.data = Signal(width, name=f"{name}_data")
        self.en = Signal(en_bits, name=f"{name}_en", init=0)


class SplitMemory(Elaboratable):
    """``depth`` words of ``width`` bits: words ``0 .. split - 1`` in block RAM, the rest in
    distributed RAM. :meth:`write_port` and :meth:`read_port` as :class:`Memory`'s."""

    def __init__(self, *, shape, depth, split, name="mem"):
        if not 0 < split < depth:
            raise ValueError(f"split must lie inside the memory (0 < split < {depth}), got {split}")
        self.width, self.depth, self.split, self.name = shape, depth, split, name
        self._writes, self._reads = [], []

    def write_port(self, granularity=None):
        lanes = self.width // granularity if granularity else 1
        port = _Port(f"{self.name}_w{len(self._writes)}", self.depth, self.width, lanes)
        self._writes.append((port, granularity))
        return port

    def read_port(self):
        port = _Port(f"{self.name}_r{len(self._reads)}", self.depth, self.width, 1)
        self._reads.append(port)
        return port

    def elaborate(self, platform):
        m = Module()
        low = self.split
        m.submodules.block = block = Memory(shape=self.width, depth=low, init=[])
        m.submodules.tail = tail = Memory(shape=self.width, depth=self.depth - low, init=[],
                                          attrs={"ram_style": "distributed"})
        for port, granularity in self._writes:
            kw = {"granularity": granularity} if granularity else {}
            bw, tw = block.write_port(**kw), tail.write_port(**kw)
            in_tail = port.addr >= low
            m.d.comb += [bw.addr.eq(port.addr), bw.data.eq(port.data),
                         bw.en.eq(Mux(in_tail, 0, port.en)),
                         tw.addr.eq(port.addr - low), tw.data.eq(port.data),
                         tw.en.eq(Mux(in_tail, port.en, 0))]
        for port in self._reads:
            br, tr = block.read_port(), tail.read_port()
            from_tail = Signal(name=f"{port.addr.name[:-5]}_tail")
            with m.If(port.en):
                m.d.sync += from_tail.eq(port.addr >= low)
            m.d.comb += [br.addr.eq(port.addr), br.en.eq(port.en),
                         tr.addr.eq(port.addr - low), tr.en.eq(port.en),
                         port.data.eq(Mux(from_tail, tr.data, br.data))]
        return m


def make_memory(spec, name):
    """The memory of a :class:`~spikeforge.hdl.memmap.MemSpec`: one :class:`Memory` (in
    distributed RAM where the spec says ``dist``), or a :class:`SplitMemory` where it has a
    ``split``."""
    if spec.split:
        return SplitMemory(shape=spec.width, depth=spec.depth, split=spec.split, name=name)
    return Memory(shape=spec.width, depth=spec.depth, init=[],
                  attrs={"ram_style": "distributed"} if spec.dist else None)
