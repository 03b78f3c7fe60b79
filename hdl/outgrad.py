"""Output unit: spike counts, class read-out and the output-layer gradient from the labels.

For every sample ``b`` of the batch the unit reads the ``T`` spike words of the output layer
(word ``p = t*B + b``), counts each output neuron's spikes, writes the predicted class (the most
spikes, the lowest index on ties, ``model/SPEC.md`` section 7) and, in training runs, writes the
output gradient of ``model/SPEC.md`` section 4 for every time step::

    g[t, b, i] = sat_e((count_i - target_i) << e_frac)     target = target_true for the label

into the gradient memory in the shared state layout of :mod:`spikeforge.hdl.memmap` (word
``k*T*B + p`` holds the ``P`` lanes of neurons ``k*P .. k*P+P-1`` at point ``p``; lanes ``>= n_out``
are 0).

Cycle behaviour: per sample ``T`` read cycles (+1 latency), one cycle to latch the counts,
``ceil(log2 n_out) + 2`` arg-max cycles (a register per tree level), then (training)
``T * ceil(n_out / P)`` write cycles (each written a cycle later, from a register): about
``B * (T + 5 + log2(n_out) + T * ceil(n_out / P))`` per run.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from spikeforge.model.fixedpoint import smax, smin

from .design import require_design
from .memmap import addr_bits

__all__ = ["OutputUnit"]


class OutputUnit(wiring.Component):
    """Spike counts, predictions and ``dL/do`` of the output layer.

    Parameters
    ----------
    design : Design
        Sizes from ``design.memmap``: the spike memory (word ``p`` = one point), the label and
        prediction buffers (``label_stride`` words), the gradient memory of the output layer
        (``blocks[-1] * T * B`` words of ``P`` lanes).

    Members
    -------
    start : In(1)
        Pulse to run on the current batch; ``train`` sampled with it.
    train : In(1)
        Also write the gradient (else only counts and predictions).
    busy : Out(1)
    done : Out(1)
    x_rd : In(ReadPort.Signature(spike_depth, spike_width))
        Output-layer spikes.
    label_rd : In(ReadPort.Signature(batch, 8))
        Label of sample ``b`` at address ``b``.
    pred_wr : In(WritePort.Signature(batch, 8))
        Predicted class of sample ``b``.
    g_wr : In(WritePort.Signature(g_depth, P * e_bits))
        Output gradient, word ``k*T*B + p``.
    """

    def __init__(self, design):
        mm, cfg = require_design(design).memmap, design.cfg
        self.cfg, self.memmap = cfg, mm
        self.pes = mm.P
        self.n_out = cfg.layers[-1]
        self.S = mm.S
        g_depth = max(mm.blocks[-1] * mm.NP, 2)
        super().__init__({
            "start": In(1), "train": In(1), "busy": Out(1), "done": Out(1),
            "x_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.spike_depth),
                                          shape=mm.spike_width)),
            "label_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.label_stride), shape=8)),
            "pred_wr": In(WritePort.Signature(addr_width=addr_bits(mm.label_stride), shape=8)),
            "g_wr": In(WritePort.Signature(addr_width=addr_bits(g_depth),
                                           shape=mm.P * cfg.e_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, P, n_out = self.cfg, self.pes, self.n_out
        T, B = cfg.timesteps, cfg.batch
        e_bits, e_frac = cfg.e_bits, cfg.e_frac
        blocks = self.memmap.blocks[-1]

        b = Signal(range(max(B, 2)))
        t = Signal(range(T + 1))
        k = Signal(range(blocks + 1))
        train = Signal()
        counts = Array(Signal(range(T + 1), name=f"count{i}") for i in range(n_out))
        label = Signal(8)
        reading = Signal()           # a spike word arrives this cycle (sync read latency)

        # read enables idle low (ReadPort.Signature's en defaults to 1)
        m.d.comb += [self.x_rd.addr.eq(t * B + b), self.label_rd.addr.eq(b),
                     self.pred_wr.addr.eq(b), self.x_rd.en.eq(0), self.label_rd.en.eq(0)]

        # gradient lanes of block k
        lanes = []
        for q in range(P):
            value = Signal(signed(e_bits), name=f"g{q}")
            diff = Signal(range(-T - 1, T + 2), name=f"d{q}")
            i = k * P + q
            cnt = Signal(range(T + 1), name=f"c{q}")
            with m.Switch(i):
                for n in range(n_out):
                    with m.Case(n):
                        m.d.comb += cnt.eq(counts[n])
            target = Mux(i == label, cfg.target_true, cfg.target_false)
            m.d.comb += diff.eq(cnt - target)
            shifted = diff << e_frac
            m.d.comb += value.eq(Mux(i >= n_out, 0,
                                     Mux(shifted > smax(e_bits), smax(e_bits),
                                         Mux(shifted < smin(e_bits), smin(e_bits), shifted))))
            lanes.append(value)
        # the gradient word is computed from the counts in one cycle and written the next (a
        # register between the lane arithmetic and the block RAM)
        g_en = Signal()
        g_data = Signal.like(self.g_wr.data)
        g_addr = Signal.like(self.g_wr.addr)
        m.d.sync += [g_data.eq(Cat(*lanes)), g_addr.eq(k * (T * B) + t * B + b), g_en.eq(0)]
        m.d.comb += [self.g_wr.data.eq(g_data), self.g_wr.addr.eq(g_addr),
                     self.g_wr.en.eq(g_en)]

        # arg-max, lowest index on ties: a balanced tree (log2(n_out) comparators deep, a register
        # after each level); the right half wins a pair only when strictly greater, so ties keep
        # the lower index
        best = Signal(range(max(n_out, 2)))
        level = [(counts[i], Const(i, range(max(n_out, 2)))) for i in range(n_out)]
        depth = 0
        while len(level) > 1:
            merged = []
            for j in range(0, len(level) - 1, 2):
                (c_lo, i_lo), (c_hi, i_hi) = level[j], level[j + 1]
                c = Signal(range(T + 1), name=f"best_count_{depth}_{j // 2}")
                i = Signal(range(max(n_out, 2)), name=f"best_index_{depth}_{j // 2}")
                better = c_hi > c_lo
                m.d.sync += [c.eq(Mux(better, c_hi, c_lo)), i.eq(Mux(better, i_hi, i_lo))]
                merged.append((c, i))
            if len(level) % 2:
                merged.append(level[-1])
            level, depth = merged, depth + 1
        m.d.comb += [best.eq(level[0][1]), self.pred_wr.data.eq(best)]
        settle = Signal(range(max(depth + 1, 2)))     # (>= 1 bit: one output neuron)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [b.eq(0), t.eq(0), train.eq(self.train)]
                    m.next = "CLEAR"
            with m.State("CLEAR"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [c.eq(0) for c in counts]
                m.d.sync += [t.eq(0), reading.eq(0)]
                m.next = "COUNT"
            with m.State("COUNT"):
                # issue the read of word (t, b); count the word read in the previous cycle
                m.d.comb += [self.busy.eq(1), self.x_rd.en.eq(1), self.label_rd.en.eq(1)]
                with m.If(reading):
                    for i in range(n_out):
                        m.d.sync += counts[i].eq(counts[i] + self.x_rd.data[i])
                m.d.sync += reading.eq(t < T)
                with m.If(t < T):
                    m.d.sync += t.eq(t + 1)
                with m.Else():
                    m.d.sync += [label.eq(self.label_rd.data), settle.eq(depth)]
                    m.next = "ARGMAX"
            with m.State("ARGMAX"):
                # the counts are final: wait for them to pass the registered tree
                m.d.comb += self.busy.eq(1)
                m.d.sync += settle.eq(settle - 1)
                with m.If(settle == 0):
                    m.next = "PREDICT"
            with m.State("PREDICT"):
                m.d.comb += [self.busy.eq(1), self.pred_wr.en.eq(1)]
                m.d.sync += [t.eq(0), k.eq(0)]
                with m.If(train):
                    m.next = "GRAD"
                with m.Else():
                    m.next = "NEXT"
            with m.State("GRAD"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += g_en.eq(1)
                with m.If(k == blocks - 1):
                    m.d.sync += k.eq(0)
                    with m.If(t == T - 1):
                        m.next = "NEXT"
                    with m.Else():
                        m.d.sync += t.eq(t + 1)
                with m.Else():
                    m.d.sync += k.eq(k + 1)
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                with m.If(b == B - 1):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += b.eq(b + 1)
                    m.next = "CLEAR"
        return m
