"""Host command bridge: a byte-stream protocol to load and read memories, start steps, read counters.

The same byte stream is driven by a simulation testbench (cocotb, Amaranth) or, through a UART, by
a real host, so one host driver (``spikeforge.sim.host``) serves every transport.

The frames, replies and codes are those of :mod:`spikeforge.hdl.protocol` (one definition for the
gateware and the driver): every frame carries a CRC-8 and gets one reply, an error reply names
what went wrong (:class:`~spikeforge.hdl.protocol.Err`). ``mem`` indexes the ``targets`` list.
One byte moves per cycle in each direction when the streams are ready.

Refusals come from the top: ``deny_w``/``deny_r`` (one bit per target, evaluated with the
bridge's ``addr`` outputs, so a refusal may depend on the address) and ``deny_start`` (evaluated
with ``op``). A refused write word is dropped, a refused READ or START is not executed; the reply
is ``Err.REFUSED``.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .memmap import HostTarget
from .protocol import IDENT_BYTES, IDENT_MAGIC, KEY_BYTES, Ack, Cmd, Err, crc8

__all__ = ["HostBridge", "crc8_next"]


def crc8_next(crc, byte):
    """The CRC-8 of :func:`~spikeforge.hdl.protocol.crc8` after one more byte, as an XOR network
    derived from the Python function (the CRC is linear in ``crc ^ byte``)."""
    c = crc ^ byte
    columns = [crc8([0], 1 << j) for j in range(8)]        # image of each input bit
    bits = []
    for i in range(8):
        terms = [c[j] for j in range(8) if (columns[j] >> i) & 1]
        acc = terms[0]
        for t in terms[1:]:
            acc = acc ^ t
        bits.append(acc)
    return Cat(*bits)


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
    byte_cycles : int
        Clock cycles per byte on the link (1 for a byte stream, ``10 * divisor`` behind a UART;
        :meth:`set_link`): after an error the bridge replies once the line has been quiet for
        ``16`` byte times, and a frame times out after ``4096`` byte times without a byte.

    Members
    -------
    rx : In(stream.Signature(8))
        Command bytes from the host.
    tx : Out(stream.Signature(8))
        Reply bytes to the host.
    link_error : In(1)
        The UART lost a byte or saw a frame error (a pulse).
    w_<name> : In(WritePort.Signature)
        Write port to memory ``name`` (one word per completed data word).
    r_<name> : In(ReadPort.Signature)
        Synchronous read port of memory ``name`` (data one cycle after ``en``).
    deny_w, deny_r : In(len(targets))
        Refuse writes / reads of target ``k`` (at the current ``addr``).
    start : Out(1)
        One-cycle pulse on START, with ``op`` valid in the same cycle.
    op : Out(8)
        The operation of the START frame being decoded (valid from its argument on).
    deny_start : In(1)
        Refuse the START of ``op``.
    busy : In(1)
        The accelerator is running; ``WAIT 0`` replies once it is low.
    wait_ok : In(n_conditions)
        Further conditions ``WAIT k`` waits for (``k = 1 .. n_conditions``).
    counters : In(32).array(n_counters)
    """

    def __init__(self, targets, n_counters, n_conditions=1, key=bytes(KEY_BYTES), byte_cycles=1):
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
        self.set_link(byte_cycles)
        n = len(self.targets)
        members = {
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "link_error": In(1),
            "deny_w": In(n), "deny_r": In(n), "deny_start": In(1),
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

    def set_link(self, byte_cycles):
        """Cycles per byte of the link (before elaboration; the board top calls this)."""
        if byte_cycles < 1:
            raise ValueError(f"byte_cycles must be >= 1, got {byte_cycles}")
        self.byte_cycles = byte_cycles
        self.quiet_cycles = 16 * byte_cycles + 16
        self.timeout_cycles = 4096 * byte_cycles + 4096

    def elaborate(self, platform):
        m = Module()
        n_t = len(self.targets)
        max_bytes = max(t.nbytes for t in self.targets)
        header = Signal(72)            # mem:8 addr:32 count:32, shifted in LSB first
        mem_sel = header[0:8]
        addr = Signal(32)
        count = Signal(32)
        nbytes = Signal(range(max_bytes + 1))
        byte_i = Signal(range(max(max_bytes, IDENT_BYTES, 4) + 1))
        hdr_i = Signal(range(10))
        word = Signal(max(8 * max_bytes, 32, 8 * IDENT_BYTES))
        counter_i = Signal(range(max(1, self.n_counters) + 1))
        cmd = Signal(8)
        arg = Signal(8)
        crc = Signal(8)                # of the frame being received
        tx_crc = Signal(8)             # of the reply being sent
        flags = Signal(4)              # Err bits collected for the next reply
        status = Signal(8)
        idle = Signal(range(max(self.quiet_cycles, self.timeout_cycles) + 1))
        known = Signal()
        m.d.comb += [self.op.eq(arg), known.eq(mem_sel < n_t)]

        # sticky error flags; a UART error may arrive at any time and goes with the next reply
        set_flags = Signal(4)
        clear_flags = Signal()
        with m.If(clear_flags):
            m.d.sync += flags.eq(set_flags | Mux(self.link_error, Err.LINK, 0))
        with m.Else():
            m.d.sync += flags.eq(flags | set_flags | Mux(self.link_error, Err.LINK, 0))

        deny_w = Signal()
        deny_r = Signal()
        sel = mem_sel[:max(1, (n_t - 1).bit_length())]
        m.d.comb += [deny_w.eq(known & self.deny_w.bit_select(sel, 1)),
                     deny_r.eq(known & self.deny_r.bit_select(sel, 1))]
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

        take = Signal()                 # a byte of the frame is taken this cycle
        m.d.comb += take.eq(self.rx.valid & self.rx.ready)
        byte = self.rx.payload
        next_crc = crc8_next(crc, byte)

        # a byte moves on the tx stream: the status, then the data of the reply, then the CRC
        sent = Signal()
        m.d.comb += sent.eq(self.tx.valid & self.tx.ready)
        with m.If(sent):
            m.d.sync += tx_crc.eq(crc8_next(tx_crc, self.tx.payload))

        def frame_byte_timer():
            """In the middle of a frame: time out after timeout_cycles without a byte."""
            with m.If(take):
                m.d.sync += idle.eq(0)
            with m.Elif(idle == self.timeout_cycles):
                m.d.comb += set_flags.eq(Err.FRAME)
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        def unexpected_bytes():
            """Replying or waiting: bytes the host should not have sent are consumed, reported."""
            m.d.comb += self.rx.ready.eq(1)
            with m.If(self.rx.valid):
                m.d.comb += set_flags.eq(Err.FRAME)

        def reply(ok_state):
            """After a checked frame: an error reply if anything went wrong, else ``ok_state``."""
            with m.If(flags.any()):
                m.d.sync += idle.eq(0)
                m.next = "DRAIN"
            with m.Else():
                m.d.sync += [status.eq(Ack.DONE), tx_crc.eq(0)]
                m.next = ok_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += [cmd.eq(byte), crc.eq(crc8_next(C(0, 8), byte)), hdr_i.eq(0),
                                 idle.eq(0), header.eq(0)]
                    with m.Switch(byte):
                        with m.Case(Cmd.WRITE, Cmd.READ):
                            m.next = "HEADER"
                        with m.Case(Cmd.START, Cmd.WAIT):
                            m.next = "ARG"
                        with m.Case(Cmd.COUNT, Cmd.IDENT):
                            m.next = "CHECK"
                        with m.Default():
                            m.d.comb += set_flags.eq(Err.FRAME)
                            m.next = "DRAIN"

            with m.State("HEADER"):
                m.d.comb += self.rx.ready.eq(1)
                frame_byte_timer()
                with m.If(take):
                    m.d.sync += [header.eq(Cat(header[8:], byte)), hdr_i.eq(hdr_i + 1),
                                 crc.eq(next_crc)]
                    with m.If(hdr_i == 8):
                        m.d.sync += [addr.eq(Cat(header[16:], byte)[0:32]),
                                     count.eq(Cat(header[48:], byte)[0:32]),
                                     byte_i.eq(0), word.eq(0)]
                        with m.If(Cat(header[8:], byte)[0:8] >= n_t):
                            m.d.comb += set_flags.eq(Err.FRAME)     # no such memory
                            m.next = "DRAIN"
                        with m.Elif((cmd == Cmd.WRITE) & (Cat(header[48:], byte)[0:32] != 0)):
                            m.next = "WRITE_BYTES"
                        with m.Else():
                            m.next = "CHECK"

            with m.State("WRITE_BYTES"):
                m.d.comb += self.rx.ready.eq(1)
                frame_byte_timer()
                with m.If(take):
                    # place byte byte_i of the little-endian word
                    for k in range(max_bytes):
                        with m.If(byte_i == k):
                            m.d.sync += word[8 * k:8 * k + 8].eq(byte)
                    m.d.sync += [byte_i.eq(byte_i + 1), crc.eq(next_crc)]
                    with m.If(byte_i + 1 == nbytes):
                        m.next = "WRITE_COMMIT"

            with m.State("WRITE_COMMIT"):
                with m.If(deny_w):
                    m.d.comb += set_flags.eq(Err.REFUSED)
                with m.Else():
                    with m.Switch(mem_sel):
                        for index, t in enumerate(self.targets):
                            with m.Case(index):
                                m.d.comb += getattr(self, f"w_{t.name}").en.eq(1)
                m.d.sync += [addr.eq(addr + 1), count.eq(count - 1), byte_i.eq(0), word.eq(0)]
                with m.If(count == 1):
                    m.next = "CHECK"
                with m.Else():
                    m.next = "WRITE_BYTES"

            with m.State("ARG"):
                m.d.comb += self.rx.ready.eq(1)
                frame_byte_timer()
                with m.If(take):
                    m.d.sync += [arg.eq(byte), crc.eq(next_crc)]
                    m.next = "CHECK"

            with m.State("CHECK"):
                m.d.comb += self.rx.ready.eq(1)
                frame_byte_timer()
                with m.If(take):
                    with m.If(byte != crc):
                        m.d.comb += set_flags.eq(Err.CRC)
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "EXEC"

            with m.State("EXEC"):
                with m.Switch(cmd):
                    with m.Case(Cmd.WRITE):
                        reply("SEND_STATUS")
                    with m.Case(Cmd.READ):
                        with m.If(deny_r):
                            m.d.comb += set_flags.eq(Err.REFUSED)
                            m.next = "DRAIN"
                        with m.Else():
                            reply("SEND_STATUS")
                    with m.Case(Cmd.START):
                        with m.If(self.deny_start):
                            m.d.comb += set_flags.eq(Err.REFUSED)
                            m.next = "DRAIN"
                        with m.Elif(~flags.any()):
                            m.d.comb += self.start.eq(1)
                            reply("SEND_STATUS")
                        with m.Else():
                            reply("SEND_STATUS")
                    with m.Case(Cmd.WAIT):
                        m.next = "WAIT"
                    with m.Case(Cmd.COUNT):
                        m.d.sync += counter_i.eq(0)
                        reply("SEND_STATUS")
                    with m.Case(Cmd.IDENT):
                        ident = IDENT_MAGIC + bytes([len(self.targets), self.n_counters]) \
                            + self.key
                        m.d.sync += [word.eq(int.from_bytes(ident, "little")), byte_i.eq(0)]
                        reply("SEND_STATUS")

            with m.State("WAIT"):
                unexpected_bytes()
                ok = Cat(~self.busy, self.wait_ok).bit_select(arg[:4], 1)
                with m.If(arg > self.n_conditions):
                    m.d.comb += set_flags.eq(Err.FRAME)
                    m.next = "DRAIN"
                with m.Elif(ok):
                    reply("SEND_STATUS")

            # ---- replies ---------------------------------------------------------------------
            with m.State("SEND_STATUS"):
                unexpected_bytes()
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(status)]
                with m.If(self.tx.ready):
                    with m.If(status != Ack.DONE):
                        m.next = "SEND_CRC"
                    with m.Elif(cmd == Cmd.READ):
                        with m.If(count == 0):
                            m.next = "SEND_CRC"
                        with m.Else():
                            m.next = "READ_ISSUE"
                    with m.Elif(cmd == Cmd.COUNT):
                        m.next = "COUNT_LOAD"
                    with m.Elif(cmd == Cmd.IDENT):
                        m.next = "IDENT"
                    with m.Else():
                        m.next = "SEND_CRC"

            with m.State("READ_ISSUE"):
                unexpected_bytes()
                with m.Switch(mem_sel):
                    for index, t in enumerate(self.targets):
                        with m.Case(index):
                            m.d.comb += getattr(self, f"r_{t.name}").en.eq(1)
                m.next = "READ_LATCH"

            with m.State("READ_LATCH"):
                unexpected_bytes()
                with m.Switch(mem_sel):
                    for index, t in enumerate(self.targets):
                        with m.Case(index):
                            m.d.sync += word.eq(getattr(self, f"r_{t.name}").data)
                m.d.sync += [byte_i.eq(0), addr.eq(addr + 1), count.eq(count - 1)]
                m.next = "READ_SEND"

            with m.State("READ_SEND"):
                unexpected_bytes()
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(word[0:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [word.eq(word >> 8), byte_i.eq(byte_i + 1)]
                    with m.If(byte_i + 1 == nbytes):
                        with m.If(count == 0):
                            m.next = "SEND_CRC"
                        with m.Else():
                            m.next = "READ_ISSUE"

            with m.State("COUNT_LOAD"):
                unexpected_bytes()
                with m.If(counter_i == self.n_counters):
                    m.next = "SEND_CRC"
                with m.Else():
                    with m.Switch(counter_i):
                        for k in range(self.n_counters):
                            with m.Case(k):
                                m.d.sync += word.eq(self.counters[k])
                    m.d.sync += [byte_i.eq(0), counter_i.eq(counter_i + 1)]
                    m.next = "COUNT_SEND"

            with m.State("COUNT_SEND"):
                unexpected_bytes()
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(word[0:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [word.eq(word >> 8), byte_i.eq(byte_i + 1)]
                    with m.If(byte_i == 3):
                        m.next = "COUNT_LOAD"

            with m.State("IDENT"):
                unexpected_bytes()
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(word[0:8])]
                with m.If(self.tx.ready):
                    m.d.sync += [word.eq(word >> 8), byte_i.eq(byte_i + 1)]
                    with m.If(byte_i == IDENT_BYTES - 1):
                        m.next = "SEND_CRC"

            with m.State("SEND_CRC"):
                unexpected_bytes()
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(tx_crc)]
                with m.If(self.tx.ready):
                    m.next = "IDLE"

            # ---- errors: discard until the line is quiet, then an error reply ---------------------
            with m.State("DRAIN"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx.valid):
                    m.d.sync += idle.eq(0)
                with m.Elif(idle >= self.quiet_cycles):
                    m.d.comb += clear_flags.eq(1)
                    m.d.sync += [status.eq(Ack.ERROR | flags | set_flags), tx_crc.eq(0)]
                    m.next = "SEND_STATUS"
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)
        return m
