"""Weight mirror: copy a layer's weights from the Forward/Weight-Update layout to the Backward
Engine's banks.

Trade-off: the Forward and Weight Update Engines read ``P`` *postsynaptic* neurons per word
(``W[nb*P + q, j]``, word ``nb*n_in + j``), while the Backward Engine's ``P`` lanes each need a
different *presynaptic* neuron ``j`` of the same row ``i`` in the same cycle (bank ``k`` holds
``W[i, r*P + k]`` at ``i*S + r``). One memory cannot serve both, so the accelerator keeps two copies
and this unit refreshes the Backward Engine's copy after every weight update. It transposes ``P x P``
tiles: ``P`` reads of FE words ``j = r*P .. r*P+P-1`` of block ``nb`` fill the tile, then ``P``
cycles write one row ``i = nb*P + q`` to all ``P`` banks at once. It runs in parallel with the
other engines (it only reads the FE copy and only writes the BE copy).

Cycle behaviour: ``ceil(n_out/P) * ceil(n_in/P) * (2P + 1) + 1`` cycles per layer from ``start``
to ``done``. Padding entries (``j >= n_in``) of the last tile are written 0; rows ``i >= n_out`` and
tiles past ``n_in`` are not written (the Backward Engine never reads them).
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .design import require_design
from .memmap import addr_bits

__all__ = ["WeightMirror"]


class WeightMirror(wiring.Component):
    """Members
    -------
    start : In(1)
        Pulse with ``n_in``/``n_out`` valid.
    n_in, n_out : In
    busy, done : Out(1)
    w_rd : In(ReadPort.Signature(fe_depth, P * w_bits))
        Source: FE layout, word ``nb*n_in + j``.
    wb_wr : In(WritePort.Signature(be_depth, w_bits)).array(P)
        Destination banks: bank ``k`` word ``i*S + r`` = ``W[i, r*P + k]``.
    """

    def __init__(self, design):
        mm, cfg = require_design(design).memmap, design.cfg
        self.cfg, self.memmap = cfg, mm
        self.pes = mm.P
        self.S = mm.S
        super().__init__({
            "start": In(1), "n_in": In(range(mm.n_max + 1)), "n_out": In(range(mm.n_max + 1)),
            "busy": Out(1), "done": Out(1),
            "w_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.weight_depth),
                                          shape=mm.P * cfg.w_bits)),
            "wb_wr": In(WritePort.Signature(addr_width=addr_bits(mm.bank_depth),
                                            shape=cfg.w_bits)).array(mm.P),
        })

    def elaborate(self, platform):
        m = Module()
        P, wb = self.pes, self.cfg.w_bits
        n_max = max(self.cfg.layers)
        n_in = Signal(range(n_max + 1))
        n_out = Signal(range(n_max + 1))
        nb = Signal(range(n_max + 1))          # first neuron of the block: nb_index * P
        base = Signal(range(n_max * n_max + 1))  # block index * n_in
        r = Signal(range(self.S + 1))
        rp = Signal(range(self.S * P + 1))      # r * P
        c = Signal(range(P + 1))
        capture = Signal()
        tile = [Signal(P * wb, name=f"tile{k}") for k in range(P)]

        # read enables idle low (ReadPort.Signature's en defaults to 1)
        m.d.comb += [self.w_rd.addr.eq(base + rp + c), self.w_rd.en.eq(0)]
        for k in range(P):
            port = self.wb_wr[k]
            lanes = [tile[k].word_select(q, wb) for q in range(P)]
            m.d.comb += [port.addr.eq((nb + c) * self.S + r),
                         port.data.eq(Mux(rp + k < n_in, Array(lanes)[c[:max(1, (P - 1).bit_length())]]
                                          if P > 1 else lanes[0], 0))]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [n_in.eq(self.n_in), n_out.eq(self.n_out), nb.eq(0), base.eq(0),
                                 r.eq(0), rp.eq(0), c.eq(0), capture.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), self.w_rd.en.eq(c < P)]
                with m.If(capture):
                    with m.Switch(c - 1):
                        for k in range(P):
                            with m.Case(k):
                                m.d.sync += tile[k].eq(self.w_rd.data)
                m.d.sync += capture.eq(c < P)
                with m.If(c < P):
                    m.d.sync += c.eq(c + 1)
                with m.Else():
                    m.d.sync += c.eq(0)
                    m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += self.busy.eq(1)
                with m.If(nb + c < n_out):
                    m.d.comb += [self.wb_wr[k].en.eq(1) for k in range(P)]
                with m.If(c == P - 1):
                    m.d.sync += c.eq(0)
                    with m.If(rp + P < n_in):
                        m.d.sync += [r.eq(r + 1), rp.eq(rp + P)]
                        m.next = "READ"
                    with m.Elif(nb + P < n_out):
                        m.d.sync += [r.eq(0), rp.eq(0), nb.eq(nb + P), base.eq(base + n_in)]
                        m.next = "READ"
                    with m.Else():
                        m.next = "DONE"
                with m.Else():
                    m.d.sync += c.eq(c + 1)
            with m.State("DONE"):
                m.d.comb += [self.busy.eq(1), self.done.eq(1)]
                m.next = "IDLE"
        return m
