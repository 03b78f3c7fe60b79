"""8N1 UART receiver and transmitter with ``lib.stream`` byte interfaces.

The board top puts these between the board's serial pins and the accelerator's host byte streams,
so a real board speaks exactly the protocol of :mod:`spikeforge.hdl.host`. ``divisor`` is the
number of clock cycles per bit (``clk_hz // baud``).
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clk_hz, baud):
    """Cycles per bit; refuses a baud rate the clock cannot time within 2%."""
    if baud <= 0 or clk_hz <= 0:
        raise ValueError(f"clock and baud rate must be positive, got {clk_hz} Hz, {baud} baud")
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"{clk_hz} Hz is too slow for {baud} baud (needs >= 4 cycles per bit)")
    error = abs(clk_hz / divisor - baud) / baud
    if error > 0.02:
        raise ValueError(f"{baud} baud from {clk_hz} Hz is off by {error:.1%}; choose another "
                         f"baud rate")
    return divisor


class UARTRx(wiring.Component):
    """UART receiver, 8 data bits, no parity, 1 stop bit.

    Samples the middle of each bit after a 2-flop synchroniser. A byte whose stop bit is low is
    dropped and counted in ``frame_errors`` (the receiver then waits for the idle level); a byte arriving while the previous one is still not
    taken sets ``overrun`` (sticky) and replaces it. Either event pulses ``error`` (the host
    bridge reports it in its next reply).

    Members
    -------
    rx : In(1)
        Serial input (idle high).
    out : Out(stream.Signature(8))
        Received bytes.
    overrun : Out(1)
    frame_errors : Out(8)
    error : Out(1)
        One-cycle pulse: a byte was lost (overrun) or had no stop bit.
    """

    def __init__(self, divisor):
        if divisor < 4:
            raise ValueError(f"divisor must be >= 4 cycles per bit, got {divisor}")
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "out": Out(stream.Signature(8)),
                          "overrun": Out(1), "frame_errors": Out(8), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bit = Signal(range(9))
        shreg = Signal(8)

        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # wait 1.5 bit times to land in the middle of data bit 0
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bit.eq(bit + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.out.payload.eq(shreg), self.out.valid.eq(1)]
                        with m.If(self.out.valid & ~self.out.ready):
                            m.d.sync += self.overrun.eq(1)
                            m.d.comb += self.error.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.frame_errors.eq(self.frame_errors + 1)
                        m.d.comb += self.error.eq(1)
                        m.next = "RESYNC"
            with m.State("RESYNC"):
                # a low stop bit (noise or a break): wait for the idle level before looking for
                # the next start bit, so the rest of the low level is not taken for one
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1.

    Members
    -------
    inp : In(stream.Signature(8))
        Bytes to send; one is taken whenever the transmitter is idle.
    tx : Out(1)
        Serial output (idle high).
    """

    def __init__(self, divisor):
        if divisor < 4:
            raise ValueError(f"divisor must be >= 4 cycles per bit, got {divisor}")
        self.divisor = divisor
        super().__init__({"inp": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10)             # start, 8 data bits LSB first, one stop bit
        left = Signal(range(11))
        # ready once the stop bit has been on the line for a whole bit time
        m.d.comb += self.inp.ready.eq((left == 0) & (timer == 0))
        with m.If(self.inp.ready):
            with m.If(self.inp.valid):
                m.d.sync += [frame.eq(Cat(C(0, 1), self.inp.payload, C(1, 1))), left.eq(10),
                             timer.eq(0)]
        with m.Elif(timer == 0):
            m.d.sync += [self.tx.eq(frame[0]), frame.eq(frame >> 1), left.eq(left - 1),
                         timer.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
