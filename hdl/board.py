"""Board top: the accelerator's host byte streams behind the board's UART pins.

``BoardTop(core, divisor)`` wraps any component with ``rx: In(stream(8))`` and
``tx: Out(stream(8))`` host streams (the accelerator top) between a :class:`UARTRx` and a
:class:`UARTTx` on the platform's ``uart`` resource, clocked by the board's default clock. A core
with a ``link_error`` input gets the receiver's error pulses (overrun, frame error), and one with
``set_link(divisor)`` learns the link's bit time.
"""

from amaranth import *
from amaranth.lib import wiring

from .uart import UARTRx, UARTTx

__all__ = ["BoardTop", "UartCore"]


class UartCore(Elaboratable):
    """``core`` between a UART receiver and transmitter, with plain ``rx``/``tx`` pin signals
    (used by the board top and by the simulated-UART tests)."""

    def __init__(self, core, divisor):
        self.core = core
        if hasattr(core, "set_link"):
            core.set_link(divisor)
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        m.submodules.uart_rx = self.uart_rx
        m.submodules.uart_tx = self.uart_tx
        m.d.comb += [self.uart_rx.rx.eq(self.rx), self.tx.eq(self.uart_tx.tx)]
        wiring.connect(m, self.uart_rx.out, self.core.rx)
        wiring.connect(m, self.core.tx, self.uart_tx.inp)
        if "link_error" in self.core.signature.members:
            m.d.comb += self.core.link_error.eq(self.uart_rx.error)
        return m


class BoardTop(Elaboratable):
    """``core`` on a board: UART pins from ``platform.request("uart")``; clocked by ``clock``
    (an elaboratable that defines the ``sync`` domain, e.g. :class:`spikeforge.hdl.pll.Ecp5Pll`)
    or, without one, by the board's default clock."""

    def __init__(self, core, divisor, clock=None):
        self.inner = UartCore(core, divisor)
        self.clock = clock

    def elaborate(self, platform):
        m = Module()
        if self.clock is not None:
            m.submodules.clock = self.clock
        m.submodules.inner = self.inner
        uart = platform.request("uart", 0)
        m.d.comb += [self.inner.rx.eq(uart.rx.i), uart.tx.o.eq(self.inner.tx)]
        return m
