"""Host command bridge: a byte-stream protocol to load and read memories, start steps, read counters.

The same byte stream is driven by a simulation testbench (cocotb, Amaranth) or, through a UART, by
a real host, so one host driver (``spikeforge.sim.host``) serves every transport.

The frames and codes are those of :mod:`spikeforge.hdl.protocol` (one definition for the
gateware and the driver). ``mem`` indexes the ``targets`` list; an index out of range reads zeros
and drops writes. One byte moves per cycle in each direction when the streams are ready.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .memmap import HostTarget
from .protocol import IDENT_BYTES, IDENT_MAGIC, KEY_BYTES, Ack, Cmd

__all__ = ["HostBridge"]


class HostBridge(wiring.Component):
    """Decode the host protocol into memory-port accesses, start pulses and counter reads.

    Parameters
    ----------
    targets : list of :class:`~spikeforge.hdl.memmap.HostTarget`
    n_counters : int
    n_conditions : int
        WAIT conditions besides idle.
    key : bytes
        The design key (``KEY_BYTES`` bytes) that IDENT reports.

    Members
    -------
    rx : In(stream.Signature(8))
        Command bytes from the host.
    tx : Out(stream.Signature(8))
        Reply bytes to the host.
    w_<name> : In(WritePort.Signature)
        Write port to memory ``name`` (one word per completed data word).
    r_<name> : In(ReadPort.Signature)
        Synchronous read port of memory ``name`` (data one cycle after ``en``).
    start : Out(1)
        One-cycle pulse on START, with ``op`` valid in the same cycle.
    op : Out(8)
    busy : In(1)
        The accelerator is running; ``WAIT 0`` replies once it is low.
    wait_ok : In(n_conditions)
        Further conditions ``WAIT k`` waits for (``k = 1 .. n_conditions``).
    counters : In(32).array(n_counters)
    """

    def __init__(self, targets, n_counters, n_conditions=1, key=bytes(KEY_BYTES)):
        if not all(isinstance(t, HostTarget) for t in targets):
            raise TypeError("targets must be HostTarget instances")
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise ValueError(f"key must be {KEY_BYTES} bytes, got {key!r}")
        self.key = key
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate memory target names in {names}")
        if not 1 <= len(targets) <= 255:
            raise ValueError(f"need 1..255 memory targets, got {len(targets)}")
        self.targets = list(targets)
        self.n_counters = n_counters
        self.n_conditions = n_conditions
        members = {
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "start": Out(1),
            "op": Out(8),
            "busy": In(1),
            "wait_ok": In(max(1, n_conditions)),
            "counters": In(32).array(max(1, n_counters)),
        }
        for t in self.targets:
            members[f"w_{t.name}"] = In(WritePort.Signature(addr_width=t.addr_width,
                                                            shape=t.width))
            members[f"r_{t.name}"] = In(ReadPort.Signature(addr_width=t.addr_width,
                                                           shape=t.width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        max_bytes = max(t.nbytes for t in self.targets)
        header = Signal(72)            # mem:8 addr:32 count:32, shifted in LSB first
        mem_sel = header[0:8]
        addr = Signal(32)
        count = Signal(32)
        nbytes = Signal(range(max_bytes + 1))
        byte_i = Signal(range(max(max_bytes, IDENT_BYTES) + 1))
        hdr_i = Signal(range(10))
        word = Signal(max(8 * max_bytes, 32))
        counter_i = Signal(range(max(1, self.n_counters) + 1))
        opcode = Signal(8)
        ident = Signal(8 * IDENT_BYTES)

        m.d.comb += self.tx.payload.eq(word[0:8])
        for t in self.targets:
            m.d.comb += [getattr(self, f"w_{t.name}").addr.eq(addr),
                         getattr(self, f"w_{t.name}").data.eq(word),
                         getattr(self, f"r_{t.name}").addr.eq(addr),
                         getattr(self, f"r_{t.name}").en.eq(0)]
        with m.Switch(mem_sel):
            for index, t in enumerate(self.targets):
                with m.Case(index):
                    m.d.comb += nbytes.eq(t.nbytes)
            with m.Default():
                m.d.comb += nbytes.eq(1)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [opcode.eq(self.rx.payload), hdr_i.eq(0)]
                    with m.Switch(self.rx.payload):
                        with m.Case(Cmd.WRITE, Cmd.READ):
                            m.next = "HEADER"
                        with m.Case(Cmd.START):
                            m.next = "START"
                        with m.Case(Cmd.WAIT):
                            m.next = "WAIT_ARG"
                        with m.Case(Cmd.COUNT):
                            m.d.sync += counter_i.eq(0)
                            m.next = "COUNT_LOAD"
                        with m.Case(Cmd.IDENT):
                            reply = IDENT_MAGIC + bytes([len(self.targets), self.n_counters]) \
                                + self.key
                            m.d.sync += [ident.eq(int.from_bytes(reply, "little")),
                                         byte_i.eq(0)]
                            m.next = "IDENT"
                        with m.Default():
                            m.d.sync += word.eq(Ack.ERROR)
                            m.next = "REPLY_BYTE"

            with m.State("HEADER"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [header.eq(Cat(header[8:], self.rx.payload)),
                                 hdr_i.eq(hdr_i + 1)]
                    with m.If(hdr_i == 8):
                        m.d.sync += [addr.eq(Cat(header[16:], self.rx.payload)[0:32]),
                                     count.eq(Cat(header[48:], self.rx.payload)[0:32]),
                                     byte_i.eq(0), word.eq(0)]
                        with m.If(opcode == Cmd.WRITE):
                            m.next = "WRITE_BYTES"
                        with m.Else():
                            m.next = "READ_ISSUE"

            with m.State("WRITE_BYTES"):
                with m.If(count == 0):
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.rx.ready.eq(1)
                    with m.If(self.rx.valid):
                        # place byte byte_i of the little-endian word
                        for k in range(max_bytes):
                            with m.If(byte_i == k):
                                m.d.sync += word[8 * k:8 * k + 8].eq(self.rx.payload)
                        m.d.sync += byte_i.eq(byte_i + 1)
                        with m.If(byte_i + 1 == nbytes):
                            m.next = "WRITE_COMMIT"

            with m.State("WRITE_COMMIT"):
                with m.Switch(mem_sel):
                    for index, t in enumerate(self.targets):
                        with m.Case(index):
                            m.d.comb += getattr(self, f"w_{t.name}").en.eq(1)
                m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), byte_i.eq(0), word.eq(0)]
                m.next = "WRITE_BYTES"

            with m.State("READ_ISSUE"):
                with m.If(count == 0):
                    m.next = "IDLE"
                with m.Else():
                    with m.Switch(mem_sel):
                        for index, t in enumerate(self.targets):
                            with m.Case(index):
                                m.d.comb += getattr(self, f"r_{t.name}").en.eq(1)
                    m.next = "READ_LATCH"

            with m.State("READ_LATCH"):
                with m.Switch(mem_sel):
                    for index, t in enumerate(self.targets):
                        with m.Case(index):
                            m.d.sync += word.eq(getattr(self, f"r_{t.name}").data)
                    with m.Default():
                        m.d.sync += word.eq(0)
                m.d.sync += [byte_i.eq(0), addr.eq(addr + 1), count.eq(count - 1)]
                m.next = "READ_SEND"

            with m.State("READ_SEND"):
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.ready):
                    m.d.sync += [word.eq(word >> 8), byte_i.eq(byte_i + 1)]
                    with m.If(byte_i + 1 == nbytes):
                        m.next = "READ_ISSUE"

            with m.State("START"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.comb += [self.start.eq(1), self.op.eq(self.rx.payload)]
                    m.next = "IDLE"

            with m.State("WAIT_ARG"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += opcode.eq(self.rx.payload)       # the condition number
                    m.next = "WAIT"

            with m.State("WAIT"):
                ok = Cat(~self.busy, self.wait_ok).bit_select(opcode[:4], 1)
                with m.If((opcode <= self.n_conditions) & ok):
                    m.d.sync += word.eq(Ack.DONE)
                    m.next = "REPLY_BYTE"

            with m.State("REPLY_BYTE"):
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.ready):
                    m.next = "IDLE"

            with m.State("COUNT_LOAD"):
                with m.If(counter_i == self.n_counters):
                    m.next = "IDLE"
                with m.Else():
                    with m.Switch(counter_i):
                        for k in range(self.n_counters):
                            with m.Case(k):
                                m.d.sync += word.eq(self.counters[k])
                    m.d.sync += [byte_i.eq(0), counter_i.eq(counter_i + 1)]
                    m.next = "COUNT_SEND"

            with m.State("COUNT_SEND"):
                m.d.comb += self.tx.valid.eq(1)
                with m.If(self.tx.ready):
                    m.d.sync += [word.eq(word >> 8), byte_i.eq(byte_i + 1)]
                    with m.If(byte_i == 3):
                        m.next = "COUNT_LOAD"

            with m.State("IDENT"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(ident[0:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [ident.eq(ident >> 8), byte_i.eq(byte_i + 1)]
                    with m.If(byte_i == IDENT_BYTES - 1):
                        m.next = "IDLE"
        return m
