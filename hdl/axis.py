"""An AXI-Stream-named wrapper of the accelerator for SoC integration (``spikeforge verilog
--axis``): the host byte streams as ``s_axis_*`` (bytes in) and ``m_axis_*`` (replies out), 8-bit
``tdata``, ``tvalid``/``tready`` handshakes, on ``aclk`` with the active-low ``aresetn`` of the
AXI convention. The protocol on the bytes is unchanged (``hdl/PROTOCOL.md``)."""

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .top import Accelerator

__all__ = ["AxisAccelerator", "verilog_units"]


class AxisAccelerator(wiring.Component):
    """:class:`~spikeforge.hdl.top.Accelerator` with AXI-Stream port names.

    Members
    -------
    aclk, aresetn : In(1)
        Clock (rising edge) and reset (active low, synchronous).
    s_axis_tdata : In(8), s_axis_tvalid : In(1), s_axis_tready : Out(1)
        Host frames in.
    m_axis_tdata : Out(8), m_axis_tvalid : Out(1), m_axis_tready : In(1)
        Replies out.
    """

    def __init__(self, design):
        self.core = Accelerator(design)
        super().__init__({
            "aclk": In(1), "aresetn": In(1),
            "s_axis_tdata": In(8), "s_axis_tvalid": In(1), "s_axis_tready": Out(1),
            "m_axis_tdata": Out(8), "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]
        core = self.core
        m.submodules.core = core
        m.d.comb += [
            core.rx.payload.eq(self.s_axis_tdata), core.rx.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(core.rx.ready),
            self.m_axis_tdata.eq(core.tx.payload), self.m_axis_tvalid.eq(core.tx.valid),
            core.tx.ready.eq(self.m_axis_tready),
            core.link_error.eq(0),
        ]
        return m


def verilog_units(design):
    return [("sf_accelerator_axis", AxisAccelerator(design))]
