"""Weight Update Engine: LUT-based weight gradient and the SGD update of one layer.

``dW[i, j] = sum over points p of eps[p, i] * x[p, j]`` with binary ``x``. ``P`` PEs work on ``P``
consecutive postsynaptic neurons ``i`` (a block). For a group of ``G`` points, every PE builds once
the ``2**G`` partial sums of its neuron's ``eps`` over those points (:mod:`spikeforge.hdl.lut`); the
spike pattern of presynaptic neuron ``j`` over the same ``G`` points then selects one entry, for
``j = 0 .. n_in-1``: one look-up and one addition replace up to ``G`` additions, and the table is
reused for all ``n_in`` inputs. Tables (and the ``G`` spike words of the group) are double-buffered.

The weight-gradient accumulator is validated never to overflow (``model/SPEC.md``), so summing group
by group equals the golden ``dW`` exactly. On the last point group the complete ``dW`` goes straight
into the update stage, ``W' = sat_w(W - csd(dW, lr, e_frac - w_frac))``, which writes ``W'`` in place
and ``dW``: the update write-back costs no extra pass.

Cycle behaviour (per run, one layer): tasks ``(block, point group)``, block-major; a task takes
``n_in`` look-up cycles plus one hand-over cycle; the first table costs ``G + 2**G + 1`` cycles, and
a task stalls only when ``n_in < G + 2**G``. A 4-stage pipeline (issue + look-up, accumulate,
update, write) drains at the end: about ``ceil(n_out / P) * ceil(T*B / G) * (n_in + 1) + G + 2**G
+ 5`` cycles; ``cycles`` reports the measured count.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .fxp import csd, saturate
from .design import require_design
from .lut import LutEngine, drive_lut, lane_addresses, lane_depth, lane_selects, lut_bank
from .memmap import addr_bits

__all__ = ["WeightUpdateEngine", "verilog_units"]


class WeightUpdateEngine(LutEngine):
    """LUT-based Weight Update Engine for the layers of ``design`` (``hw.pes`` PEs,
    ``hw.wue_group`` points per look-up).

    Memory layouts and sizes: :mod:`spikeforge.hdl.memmap` (``design.memmap``); the weight and
    spike memories are the Forward Engine's. All memory ports are synchronous (one cycle read
    latency).

    Members
    -------
    start, n_in, n_out, busy, done, cycles
        Run control (:class:`~spikeforge.hdl.lut.LutEngine`).
    x_rd : In(ReadPort.Signature(spike depth, spike_width))
        The layer's input spikes (word ``p``).
    eps_stall : In(1)
        Another engine reads ``eps`` this cycle: the table fetch waits (``eps`` has one read
        port; see :mod:`spikeforge.hdl.top`).
    eps_rd : In(ReadPort.Signature(state depth, P * e_bits))
        ``eps`` of block ``nb`` at point ``p``, address ``nb*T*B + p``.
    lookup : Out(1)
        A look-up is issued this cycle (for the counters).
    w_rd : In(ReadPort.Signature(weight depth, P * w_bits))
    w_wr : In(WritePort.Signature(weight depth, P * w_bits))
        Weights, read and updated in place (address ``nb*n_in + j``; lanes of neurons ``>= n_out``
        are written back unchanged).
    dw_wr : In(WritePort.Signature(weight depth, P * wgrad_acc_bits))
        The weight gradient ``dW`` (same layout; lanes of neurons ``>= n_out`` are 0).
    """

    def __init__(self, design):
        mm, cfg = require_design(design).memmap, design.cfg
        P = mm.P
        waw = addr_bits(mm.weight_depth)
        super().__init__(design, design.hw.wue_group, {
            "x_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.spike_depth),
                                          shape=mm.spike_width)),
            "eps_stall": In(1),
            "eps_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.state_depth),
                                            shape=P * cfg.e_bits)),
            "w_rd": In(ReadPort.Signature(addr_width=waw, shape=P * cfg.w_bits)),
            "lookup": Out(1),
            "w_wr": In(WritePort.Signature(addr_width=waw, shape=P * cfg.w_bits)),
            "dw_wr": In(WritePort.Signature(addr_width=waw, shape=P * cfg.wgrad_acc_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self.cfg, self.memmap
        P, G, TB = self.pes, self.group, lay.NP
        A, S = cfg.wgrad_acc_bits, lay.spike_width

        ctl, luts = lut_bank(m, G, cfg.e_bits, P, table=self.hw.table, latency=2)
        rc = self.run_control(m, ctl)
        n_in, n_out, bank, lk_active = rc.n_in, rc.n_out, rc.bank, rc.lk_active

        # builder task: (block, point group)
        b_nbase = Signal(range(lay.n_out_max + P + 1))
        b_qbase = Signal(range(TB + G + 1))
        b_ebase = Signal(range(lay.state_depth + TB + 1))
        b_wbase = Signal(range(lay.weight_depth + lay.n_in_max + 1))
        m.d.comb += [rc.last_group.eq(b_qbase + G >= TB), rc.last_block.eq(b_nbase + P >= n_out)]

        lk_j = Signal(range(max(lay.n_in_max, 2)))
        lk_first = Signal()
        lk_last = Signal()
        lk_wbase = Signal.like(b_wbase)
        x_shadow = [Signal(S, name=f"x_shadow{s}") for s in range(G)]
        x_active = [Signal(S, name=f"x_active{s}") for s in range(G)]

        with m.If(rc.start_ok):
            m.d.sync += [b_nbase.eq(0), b_qbase.eq(0), b_ebase.eq(0), b_wbase.eq(0)]
        with m.If(rc.take):
            m.d.sync += [lk_j.eq(0), lk_first.eq(b_qbase == 0), lk_last.eq(rc.last_group),
                         lk_wbase.eq(b_wbase)]
            m.d.sync += [a.eq(s) for a, s in zip(x_active, x_shadow)]
            with m.If(rc.last_group):
                m.d.sync += [
                    b_qbase.eq(0), b_nbase.eq(b_nbase + P), b_ebase.eq(b_ebase + TB),
                    b_wbase.eq(b_wbase + n_in),
                ]
            with m.Else():
                m.d.sync += b_qbase.eq(b_qbase + G)

        # ---- table build: fetch G eps words and G spike words, then build into ~bank -----------
        # read data are registered (one fabric register after each block RAM) before use
        point_ok = [Signal(name=f"point_ok{i}") for i in range(2)]
        x_q = Signal.like(self.x_rd.data)
        eps_q = Signal.like(self.eps_rd.data)
        m.d.comb += [
            ctl.stall.eq(self.eps_stall),
            self.eps_rd.addr.eq(b_ebase + b_qbase + ctl.fetch_idx),
            self.eps_rd.en.eq(ctl.fetch_en),
            self.x_rd.addr.eq(b_qbase + ctl.fetch_idx),
            self.x_rd.en.eq(ctl.fetch_en),
        ]
        m.d.sync += [point_ok[0].eq(b_qbase + ctl.fetch_idx < TB), point_ok[1].eq(point_ok[0]),
                     x_q.eq(self.x_rd.data), eps_q.eq(self.eps_rd.data)]
        with m.If(ctl.load_en):
            m.d.sync += Cat(*x_shadow).word_select(ctl.load_idx, S).eq(
                Mux(point_ok[1], x_q, 0))
        for k, lut in enumerate(luts):
            eps = eps_q[k * cfg.e_bits:(k + 1) * cfg.e_bits].as_signed()
            alive = Signal(name=f"alive{k}")
            m.d.comb += alive.eq(b_nbase + k < n_out)
            drive_lut(m, lut, ctl, Mux(point_ok[1] & alive, eps, 0), ~bank)

        # ---- accumulators ----------------------------------------------------------------------
        acc_rd, acc_wr = [], []
        dist = self.hw.dist_ram
        for k in range(P):
            mem = Memory(shape=signed(A), init=[],
                         depth=lane_depth(lay.wgrad_acc_depth) if dist else lay.wgrad_acc_depth)
            m.submodules[f"acc{k}"] = mem
            wr = mem.write_port()
            # distributed RAM: read asynchronously in the accumulate stage; block RAM: a stage
            # earlier
            acc_rd.append(mem.read_port(domain="comb") if self.hw.dist_ram else
                          mem.read_port(transparent_for=(wr,)))
            acc_wr.append(wr)

        # ---- stage 0: the pattern of input j over the G points, one register copy per lane ------
        s0_valid, s0_first, s0_last = Signal(), Signal(), Signal()
        s0_j = Signal.like(lk_j)
        s0_waddr = Signal(range(lay.weight_depth + 2 * lay.n_in_max + 1))
        lane_selects(m, luts, Cat(*[x[0] for x in x_active]), bank, lk_active, "s0_sel")
        m.d.comb += self.lookup.eq(lk_active)
        m.d.sync += s0_valid.eq(lk_active)
        with m.If(lk_active):
            m.d.sync += [
                s0_j.eq(lk_j), s0_first.eq(lk_first), s0_last.eq(lk_last),
                s0_waddr.eq(lk_wbase + lk_j), lk_j.eq(lk_j + 1),
            ]
            m.d.sync += [x.eq(x >> 1) for x in x_active]
            with m.If(lk_j == n_in - 1):
                m.d.sync += lk_active.eq(0)

        # ---- stage 0b: look-up, issue reads ------------------------------------------------------
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_j = Signal.like(lk_j)
        s1_waddr = Signal.like(s0_waddr)
        s1_lut = [Signal(signed(luts[0].out.shape().width), name=f"s1_lut{k}") for k in range(P)]

        # the weights are needed only for the update, in the last point group of a block
        m.d.comb += [self.w_rd.addr.eq(s0_waddr), self.w_rd.en.eq(s0_valid & s0_last)]
        m.d.sync += s1_valid.eq(s0_valid)
        with m.If(s0_valid):
            m.d.sync += [s1_j.eq(s0_j), s1_first.eq(s0_first), s1_last.eq(s0_last),
                         s1_waddr.eq(s0_waddr)]
            m.d.sync += [s1_lut[k].eq(luts[k].out) for k in range(P)]

        # ---- stage 1: accumulate ---------------------------------------------------------------
        s2_valid = Signal()
        s2_waddr = Signal.like(s1_waddr)
        s2_dw = [Signal(signed(A), name=f"s2_dw{k}") for k in range(P)]
        s2_w = [Signal(signed(cfg.w_bits), name=f"s2_w{k}") for k in range(P)]
        m.d.sync += s2_valid.eq(s1_valid & s1_last)
        with m.If(s1_valid):
            m.d.sync += s2_waddr.eq(s1_waddr)
        # distributed RAM: each lane's accumulator at its own copy of s1_j
        acc_addr = lane_addresses(m, s0_j, s0_valid, P, lay.wgrad_acc_depth, "s1_j") if dist \
            else [s1_j] * P
        for k in range(P):
            if dist:
                m.d.comb += acc_rd[k].addr.eq(acc_addr[k])
            else:
                m.d.comb += [acc_rd[k].addr.eq(s0_j), acc_rd[k].en.eq(s0_valid)]
            total = Signal(signed(A), name=f"sum{k}")
            m.d.comb += [
                total.eq(Mux(s1_first, 0, acc_rd[k].data) + s1_lut[k]),
                acc_wr[k].addr.eq(acc_addr[k]), acc_wr[k].data.eq(total),
                acc_wr[k].en.eq(s1_valid & ~s1_last),
            ]
            with m.If(s1_valid):
                m.d.sync += [
                    s2_dw[k].eq(total),
                    s2_w[k].eq(self.w_rd.data[k * cfg.w_bits:(k + 1) * cfg.w_bits].as_signed()),
                ]

        # ---- stage 2: SGD update, exactly the golden rounding and saturation ---------------------
        s3_valid = Signal()
        s3_waddr = Signal.like(s2_waddr)
        s3_dw = [Signal(signed(A), name=f"s3_dw{k}") for k in range(P)]
        s3_w = [Signal(signed(cfg.w_bits), name=f"s3_w{k}") for k in range(P)]
        m.d.sync += s3_valid.eq(s2_valid)
        with m.If(s2_valid):
            m.d.sync += s3_waddr.eq(s2_waddr)
            for k in range(P):
                delta = csd(s2_dw[k], cfg.lr_terms, cfg.e_frac - cfg.w_frac)
                m.d.sync += [s3_dw[k].eq(s2_dw[k]),
                             s3_w[k].eq(saturate(s2_w[k] - delta, cfg.w_bits))]

        # ---- stage 3: write W' and dW ------------------------------------------------------------
        m.d.comb += [
            self.w_wr.addr.eq(s3_waddr), self.w_wr.data.eq(Cat(*s3_w)), self.w_wr.en.eq(s3_valid),
            self.dw_wr.addr.eq(s3_waddr), self.dw_wr.data.eq(Cat(*s3_dw)),
            self.dw_wr.en.eq(s3_valid),
        ]

        self.completion(m, rc, [s0_valid, s1_valid, s2_valid, s3_valid])
        return m


def verilog_units(design):
    """``[(module name, component)]`` for ``spikeforge verilog``."""
    return [("sf_weight_update_engine", WeightUpdateEngine(design))]
