"""Forward Engine: LUT-based synaptic integration and the LIF update of one layer.

``P`` processing elements (PEs) work on ``P`` consecutive postsynaptic neurons (a *block*). For each
group of ``G`` presynaptic neurons, every PE builds once the ``2**G`` subset sums of its ``G``
weights (:mod:`spikeforge.hdl.lut`), then, for each of the ``T * B`` points, the G-bit spike pattern
of the group at that point selects one entry: one look-up and one addition into the point's partial
sum replace up to ``G`` additions, and the table is reused for all ``T * B`` points. Tables are
double-buffered, so the next group's table is built while the current one is looked up.

The forward accumulator of ``model/SPEC.md`` is validated never to overflow, so summing group by
group (in any order) equals the golden ``I = W x`` exactly. During the look-ups of the last group
the complete ``I[p]`` goes straight into the LIF stage (decay by shifts and adds, reset, saturation,
strict threshold), which writes ``u`` and ``o``: the LIF pass costs no extra cycles.

Cycle behaviour (per run, one layer): after ``start`` the engine processes tasks
``(block, group)``, block-major; a task takes ``T * B`` look-up cycles plus one hand-over cycle.
The first table costs ``G + 2**G + 1`` cycles before the first look-up, and a task stalls only when
``T * B < G + 2**G``. A 4-stage pipeline (issue, look-up + add, LIF, write) drains at the end. So a
layer takes about ``ceil(n_out / P) * ceil(n_in / G) * (T*B + 1) + G + 2**G + 5`` cycles;
``cycles`` reports the measured count.

**Recurrent runs** (a design with ``cfg.recurrent``; ``rec`` high at ``start``): one run covers
every block of a recurrent hidden layer, tasks ``(t, block, group)`` time step first. The groups
are the layer's ``n_in`` inputs (``x[t]``), then its own ``n_out`` spikes of the step before
(``o[t-1]``, read from the layer's spike region at point ``p - B``, ``x_self`` high; masked at
``t = 0``) with weights from V's region (``w_v`` high; word ``nb * n_out + k``). A task looks up
the ``B`` points of its step only, so tables are reused across the batch. The membrane of
``(block, b)`` is carried from ``t-1`` to ``t`` in a ``blocks x B`` memory per PE (``u`` and
``o``), and the first recurrent group of each step waits until the previous step's last spikes
are written. About ``T * ceil(n_out / P) * (ceil(n_in / G) + ceil(n_out / G)) * (B + 1)`` cycles.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from spikeforge.model.fixedpoint import smax

from .fxp import csd, saturate
from .design import require_design
from .lut import LutEngine, drive_lut, lane_addresses, lane_depth, lane_selects, lut_bank
from .memmap import addr_bits

__all__ = ["ForwardEngine", "verilog_units"]


class ForwardEngine(LutEngine):
    """LUT-based Forward Engine for the layers of ``design`` (``hw.pes`` PEs, ``hw.fe_group`` inputs
    per look-up).

    Memory layouts and sizes: :mod:`spikeforge.hdl.memmap` (``design.memmap``). All memory ports
    are synchronous (one cycle read latency), so each memory maps to block RAM.

    Members
    -------
    start, n_in, n_out, busy, done, cycles
        Run control (:class:`~spikeforge.hdl.lut.LutEngine`).
    x_rd : In(ReadPort.Signature(spike depth, spike_width))
        Input spikes, word ``p`` = spikes of all inputs at point ``p``.
    w_rd : In(ReadPort.Signature(weight depth, P * w_bits))
        Weights, read only while building tables.
    w_stall : In(1)
        Another engine reads the weight memory this cycle: the table fetch waits (the weights
        have one read port; see :mod:`spikeforge.hdl.top`).
    u_wr : In(WritePort.Signature(state depth, P * u_bits))
        Membrane potential ``u`` (saturated) of block ``nb`` at point ``p``, address ``nb*T*B + p``;
        lanes of neurons ``>= n_out`` are written 0.
    o_wr : In(WritePort.Signature(spike depth, spike_width, granularity=P))
        Output spikes: word ``p``, block ``nb`` (write enable bit ``nb``); spikes of neurons
        ``>= n_out`` are written 0.
    """

    def __init__(self, design):
        mm, cfg = require_design(design).memmap, design.cfg
        P = mm.P
        super().__init__(design, design.hw.fe_group, {
            "x_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.spike_depth),
                                          shape=mm.spike_width)),
            "w_rd": In(ReadPort.Signature(addr_width=addr_bits(mm.weight_depth),
                                          shape=P * cfg.w_bits)),
            "w_stall": In(1),
            "u_wr": In(WritePort.Signature(addr_width=addr_bits(mm.state_depth),
                                           shape=P * cfg.u_bits)),
            "o_wr": In(WritePort.Signature(addr_width=addr_bits(mm.spike_depth),
                                           shape=mm.spike_width, granularity=P)),
            # recurrent hidden layers (design.memmap.recurrent): a run of a recurrent layer
            # (``rec`` at start) covers every block, time step by time step; its inputs are the
            # layer's ``n_in`` inputs, then its own ``n_out`` spikes of the step before
            **({"rec": In(1), "x_self": Out(1), "w_v": Out(1)} if mm.has_rec else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self.cfg, self.memmap
        P, G, B, TB = self.pes, self.group, cfg.batch, lay.NP
        A = cfg.fwd_acc_bits
        n_groups_max = -(-lay.spike_width // G)
        padded = n_groups_max * G
        blocks_max = lay.out_blocks_max

        ctl, luts = lut_bank(m, G, cfg.w_bits, P, table=self.hw.table, latency=2)
        rec_hw = lay.has_rec
        hold = Signal() if rec_hw else None
        rc = self.run_control(m, ctl, hold=hold)
        n_in, n_out, bank, lk_active = rc.n_in, rc.n_out, rc.bank, rc.lk_active

        # builder task: the (block, group) whose table is being built or is ready (and, in a
        # recurrent run, its time step: tasks (t, block, group))
        b_nb = Signal(range(blocks_max + 1))
        b_nbase = Signal(range(lay.n_out_max + P + 1))
        b_g = Signal(range((2 if rec_hw else 1) * n_groups_max + 1))
        b_gbase = Signal(range(padded + G + 1))
        b_wbase = Signal(range(lay.weight_depth + lay.n_in_max + 1))
        b_ubase = Signal(range(lay.state_depth + TB + 1))
        if rec_hw:
            rec = Signal()                       # this run's layer is recurrent
            with m.If(rc.start_ok):
                m.d.sync += rec.eq(self.rec)
            b_t = Signal(range(max(cfg.timesteps, 2)))
            b_tB = Signal(range(TB + 1))         # t * B
            b_op = Signal()                      # the group is of the recurrent inputs
            b_obase = Signal(range(padded + G + 1))   # its first recurrent input
            b_og = Signal(range(n_groups_max + 1))    # its group within the spike word
            b_vbase = Signal(range(lay.weight_depth + lay.n_out_max + 1))   # nb * n_out
            b_cbase = Signal(range(blocks_max * B + 1))                     # nb * B
            x_last = b_gbase + G >= n_in
            o_last = b_obase + G >= n_out
            m.d.comb += [
                rc.last_group.eq(Mux(rec, b_op & o_last, x_last)),
                rc.last_block.eq((b_nbase + P >= n_out) & (~rec | (b_t == cfg.timesteps - 1))),
            ]
        else:
            m.d.comb += [
                rc.last_group.eq(b_gbase + G >= n_in),
                rc.last_block.eq(b_nbase + P >= n_out),
            ]

        # look-up task
        lk_p = Signal(range(max(TB, 2)))
        lk_g = Signal.like(b_g)
        lk_mask = Signal(G)
        lk_first = Signal()
        lk_last = Signal()
        lk_nb = Signal.like(b_nb)
        lk_nbase = Signal.like(b_nbase)
        lk_ubase = Signal.like(b_ubase)

        with m.If(rc.start_ok):
            m.d.sync += [b_nb.eq(0), b_nbase.eq(0), b_g.eq(0), b_gbase.eq(0), b_wbase.eq(0),
                         b_ubase.eq(0)]
            if rec_hw:
                m.d.sync += [b_t.eq(0), b_tB.eq(0), b_op.eq(0), b_obase.eq(0), b_og.eq(0),
                             b_vbase.eq(0), b_cbase.eq(0)]
        if rec_hw:
            lk_pend = Signal.like(lk_p)          # the task's last point
            lk_op = Signal()
            lk_b = Signal(range(max(B, 2)))
            lk_c = Signal(range(blocks_max * B + 1))   # carry index nb * B + b
            lk_t0 = Signal()                     # the task is of time step 0
        with m.If(rc.take):
            if not rec_hw:
                m.d.sync += [
                    lk_p.eq(0), lk_g.eq(b_g), lk_first.eq(b_g == 0), lk_last.eq(rc.last_group),
                    lk_nb.eq(b_nb), lk_nbase.eq(b_nbase), lk_ubase.eq(b_ubase),
                    lk_mask.eq(Cat(*[(b_gbase + s) < n_in for s in range(G)])),
                ]
            else:
                m.d.sync += [
                    lk_p.eq(Mux(rec, b_tB, 0)), lk_pend.eq(Mux(rec, b_tB + B - 1, TB - 1)),
                    lk_g.eq(Mux(b_op, b_og, b_g)), lk_first.eq(b_g == 0),
                    lk_last.eq(rc.last_group), lk_nb.eq(b_nb), lk_nbase.eq(b_nbase),
                    lk_ubase.eq(b_ubase), lk_op.eq(b_op), lk_b.eq(0), lk_c.eq(b_cbase),
                    lk_t0.eq(b_t == 0),
                    # the recurrent inputs at t = 0 are o[-1] = 0
                    lk_mask.eq(Mux(b_op, Cat(*[((b_obase + s) < n_out) & (b_t != 0)
                                               for s in range(G)]),
                                   Cat(*[(b_gbase + s) < n_in for s in range(G)]))),
                ]
            with m.If(rc.last_group):
                m.d.sync += [
                    b_g.eq(0), b_gbase.eq(0), b_nb.eq(b_nb + 1), b_nbase.eq(b_nbase + P),
                    b_wbase.eq(b_wbase + n_in), b_ubase.eq(b_ubase + TB),
                ]
                if rec_hw:
                    m.d.sync += [b_op.eq(0), b_obase.eq(0), b_og.eq(0),
                                 b_vbase.eq(b_vbase + n_out), b_cbase.eq(b_cbase + B)]
                    with m.If(rec & (b_nbase + P >= n_out)):
                        # the step's last block: the next step from block 0
                        m.d.sync += [b_nb.eq(0), b_nbase.eq(0), b_wbase.eq(0), b_ubase.eq(0),
                                     b_vbase.eq(0), b_cbase.eq(0), b_t.eq(b_t + 1),
                                     b_tB.eq(b_tB + B)]
            with m.Else():
                m.d.sync += [b_g.eq(b_g + 1), b_gbase.eq(b_gbase + G)]
                if rec_hw:
                    with m.If(b_op):
                        m.d.sync += [b_obase.eq(b_obase + G), b_og.eq(b_og + 1)]
                    with m.Elif(rec & x_last):
                        m.d.sync += b_op.eq(1)

        # ---- table build: fetch G weights of each PE (read data registered), build into ~bank ---
        fetch_ok = [Signal(name=f"fetch_ok{i}") for i in range(2)]
        w_q = Signal.like(self.w_rd.data)
        if rec_hw:
            # a recurrent group's weights are V's (word nb * n_out + k of the V region)
            m.d.comb += [
                ctl.stall.eq(self.w_stall),
                self.w_rd.addr.eq(Mux(b_op, b_vbase + b_obase, b_wbase + b_gbase) +
                                  ctl.fetch_idx),
                self.w_rd.en.eq(ctl.fetch_en), self.w_v.eq(b_op),
            ]
            m.d.sync += fetch_ok[0].eq(Mux(b_op, b_obase + ctl.fetch_idx < n_out,
                                           b_gbase + ctl.fetch_idx < n_in))
        else:
            m.d.comb += [
                ctl.stall.eq(self.w_stall),
                self.w_rd.addr.eq(b_wbase + b_gbase + ctl.fetch_idx),
                self.w_rd.en.eq(ctl.fetch_en),
            ]
            m.d.sync += fetch_ok[0].eq(b_gbase + ctl.fetch_idx < n_in)
        m.d.sync += [fetch_ok[1].eq(fetch_ok[0]), w_q.eq(self.w_rd.data)]
        for k, lut in enumerate(luts):
            weight = w_q[k * cfg.w_bits:(k + 1) * cfg.w_bits].as_signed()
            drive_lut(m, lut, ctl, Mux(fetch_ok[1], weight, 0), ~bank)

        # ---- look-up pipeline: L0 issue the x read, L1 register the x word, L2 select the
        # group's pattern (and issue the partial-sum read), L3 look up (registered), L4 add ------
        psum_rd, psum_wr = [], []
        dist = self.hw.dist_ram
        for k in range(P):
            mem = Memory(shape=signed(A), init=[],
                         depth=lane_depth(lay.psum_depth) if dist else lay.psum_depth)
            m.submodules[f"psum{k}"] = mem
            wr = mem.write_port()
            # distributed RAM: read asynchronously in the add stage; block RAM: a stage earlier
            rd = mem.read_port(domain="comb") if self.hw.dist_ram else \
                mem.read_port(transparent_for=(wr,))
            psum_rd.append(rd)
            psum_wr.append(wr)

        def stage(name, src, valid_in):
            """Registers of one look-up stage: a copy of ``src`` (dict) taken when valid."""
            regs = {key: Signal.like(value, name=f"{name}_{key}") for key, value in src.items()}
            valid = Signal(name=f"{name}_valid")
            m.d.sync += valid.eq(valid_in)
            with m.If(valid_in):
                m.d.sync += [regs[key].eq(value) for key, value in src.items()]
            return valid, regs

        l1_fields = {
            "p": lk_p, "g": lk_g, "mask": lk_mask, "first": lk_first, "last": lk_last,
            "bank": bank, "nb": lk_nb, "nbase": lk_nbase, "uaddr": lk_ubase + lk_p,
            "early": lk_p < B}
        if rec_hw:
            # a recurrent group reads the layer's own spikes of the step before (point p - B)
            m.d.comb += [self.x_rd.addr.eq(Mux(lk_op, Mux(lk_t0, 0, lk_p - B), lk_p)),
                         self.x_rd.en.eq(lk_active), self.x_self.eq(lk_active & lk_op)]
            l1_fields["cidx"] = lk_c + lk_b
        else:
            m.d.comb += [self.x_rd.addr.eq(lk_p), self.x_rd.en.eq(lk_active)]
        l1_valid, l1 = stage("l1", l1_fields, lk_active)
        with m.If(lk_active):
            m.d.sync += lk_p.eq(lk_p + 1)
            if rec_hw:
                m.d.sync += lk_b.eq(lk_b + 1)
                with m.If(lk_p == lk_pend):
                    m.d.sync += lk_active.eq(0)
            else:
                with m.If(lk_p == TB - 1):
                    m.d.sync += lk_active.eq(0)
        x_word = Signal(lay.spike_width)
        with m.If(l1_valid):
            m.d.sync += x_word.eq(self.x_rd.data)
        l2_valid, l2 = stage("l2", dict(l1), l1_valid)
        spikes = Cat(x_word, Const(0, padded - lay.spike_width)) \
            if padded > lay.spike_width else x_word
        # the pattern and bank of the look-up, one register copy per lane
        lane_selects(m, luts, spikes.word_select(l2["g"], G) & l2["mask"], l2["bank"], l2_valid,
                     "l3_sel")
        l3_valid, l3 = stage("l3", dict(l2), l2_valid)
        l4_valid, l4 = stage("l4", dict(l3), l3_valid)
        lut_q = [Signal(signed(len(luts[0].out)), name=f"lut_q{k}") for k in range(P)]

        s2_valid = Signal()
        s2_p = Signal.like(lk_p)
        s2_nb = Signal.like(lk_nb)
        s2_nbase = Signal.like(lk_nbase)
        s2_uaddr = Signal.like(l1["uaddr"])
        s2_early = Signal()                       # t == 0: no state carried in
        s2_cur = [Signal(signed(A), name=f"s2_cur{k}") for k in range(P)]
        m.d.sync += s2_valid.eq(l4_valid & l4["last"])
        with m.If(l4_valid):
            m.d.sync += [s2_p.eq(l4["p"]), s2_nb.eq(l4["nb"]), s2_nbase.eq(l4["nbase"]),
                         s2_uaddr.eq(l4["uaddr"]), s2_early.eq(l4["early"])]
        if rec_hw:
            # a recurrent run's state of (block, sample) at t-1: a memory of blocks x B entries
            # (u and o) per PE, read a stage ahead, written by the LIF stage
            s2_cidx = Signal.like(l1["cidx"])
            with m.If(l4_valid):
                m.d.sync += s2_cidx.eq(l4["cidx"])
            carry_rd, carry_wr = [], []
            for k in range(P):
                mem = Memory(shape=cfg.u_bits + 1, depth=max(blocks_max * B, 2), init=[])
                m.submodules[f"carry{k}"] = mem
                carry_wr.append(mem.write_port())
                carry_rd.append(mem.read_port())
                m.d.comb += [carry_rd[k].addr.eq(l4["cidx"]), carry_rd[k].en.eq(l4_valid)]
        # distributed RAM: each lane's partial sums at its own copy of l4["p"]
        psum_addr = lane_addresses(m, l3["p"], l3_valid, P, lay.psum_depth, "l4_p") if dist \
            else [l4["p"]] * P
        for k in range(P):
            lut = luts[k]
            if dist:
                m.d.comb += psum_rd[k].addr.eq(psum_addr[k])
            else:
                m.d.comb += [psum_rd[k].addr.eq(l3["p"]), psum_rd[k].en.eq(l3_valid)]
            with m.If(l3_valid):
                m.d.sync += lut_q[k].eq(lut.out)
            total = Signal(signed(A), name=f"sum{k}")
            # exact: the accumulator is validated to hold every partial sum of the layer; the
            # read of point p in the next group comes T*B + 1 >= 2 cycles later, after this write
            m.d.comb += [
                total.eq(Mux(l4["first"], 0, psum_rd[k].data) + lut_q[k]),
                psum_wr[k].addr.eq(psum_addr[k]), psum_wr[k].data.eq(total),
                psum_wr[k].en.eq(l4_valid & ~l4["last"]),
            ]
            with m.If(l4_valid):
                m.d.sync += s2_cur[k].eq(total)

        # ---- stage 2: LIF (decay, reset, saturate, threshold) ---------------------------------
        # the state of sample b at t-1 comes out of a B-deep shift register per PE
        s3_valid = Signal()
        s3_p = Signal.like(s2_p)
        s3_nb = Signal.like(s2_nb)
        s3_uaddr = Signal.like(s2_uaddr)
        s3_u = [Signal(signed(cfg.u_bits), name=f"s3_u{k}") for k in range(P)]
        s3_o = Signal(P)
        m.d.sync += s3_valid.eq(s2_valid)
        with m.If(s2_valid):
            m.d.sync += [s3_p.eq(s2_p), s3_nb.eq(s2_nb), s3_uaddr.eq(s2_uaddr)]
        first_step = Signal()
        m.d.comb += first_step.eq(s2_early)
        # with B >= 2 the decayed state of the next point (hist[1] now, hist[0] after the shift)
        # is computed a cycle early into ``dec``, so the LIF stage is one addition and the clamp;
        # the threshold compares the unsaturated sum, which gives the same spike since
        # 0 < vth; at vth = smax(u_bits) (the config allows it) no saturated u exceeds it
        early_decay = B >= 2
        vth = cfg.vth_int
        can_fire = vth < smax(cfg.u_bits)
        for k in range(P):
            hist_u = [Signal(signed(cfg.u_bits), name=f"hist_u{k}_{i}") for i in range(B)]
            hist_o = [Signal(name=f"hist_o{k}_{i}") for i in range(B)]
            u_new = Signal(signed(cfg.u_bits), name=f"u{k}")
            o_new = Signal(name=f"o{k}")
            if early_decay:
                nxt = Mux(hist_o[1], 0, hist_u[1])
                decayed = csd(nxt, cfg.alpha_terms)
                dec = Signal(signed(len(decayed)), name=f"dec{k}")
                with m.If(s2_valid):
                    m.d.sync += dec.eq(decayed)
                raw = Mux(first_step, 0, dec) + s2_cur[k]
            else:
                kept = Signal(signed(cfg.u_bits), name=f"kept{k}")
                m.d.comb += kept.eq(Mux(first_step | hist_o[0], 0, hist_u[0]))
                raw = csd(kept, cfg.alpha_terms) + s2_cur[k]
            if rec_hw:
                c_u = carry_rd[k].data[:cfg.u_bits].as_signed()
                c_o = carry_rd[k].data[cfg.u_bits]
                kept_r = Signal(signed(cfg.u_bits), name=f"kept_r{k}")
                m.d.comb += kept_r.eq(Mux(first_step | c_o, 0, c_u))
                raw_r = csd(kept_r, cfg.alpha_terms) + s2_cur[k]
                raw = Mux(rec, raw_r, raw)
            total_u = Signal(signed(len(raw)), name=f"raw{k}")
            m.d.comb += [
                total_u.eq(raw),
                u_new.eq(saturate(total_u, cfg.u_bits)),
                o_new.eq((total_u > vth) if can_fire else 0),
            ]
            alive = Signal(name=f"alive{k}")
            m.d.comb += alive.eq(s2_nbase + k < n_out)
            if rec_hw:
                m.d.comb += [carry_wr[k].addr.eq(s2_cidx), carry_wr[k].data.eq(Cat(u_new, o_new)),
                             carry_wr[k].en.eq(s2_valid & rec)]
            with m.If(s2_valid):
                m.d.sync += [hist_u[i].eq(hist_u[i + 1]) for i in range(B - 1)]
                m.d.sync += [hist_o[i].eq(hist_o[i + 1]) for i in range(B - 1)]
                m.d.sync += [hist_u[B - 1].eq(u_new), hist_o[B - 1].eq(o_new),
                             s3_u[k].eq(Mux(alive, u_new, 0)), s3_o[k].eq(alive & o_new)]

        # ---- stage 3: write u and o ----------------------------------------------------------
        m.d.comb += [
            self.u_wr.addr.eq(s3_uaddr), self.u_wr.data.eq(Cat(*s3_u)),
            self.u_wr.en.eq(s3_valid),
            self.o_wr.addr.eq(s3_p), self.o_wr.data.eq(Cat(*([s3_o] * lay.S))),
            self.o_wr.en.eq(Mux(s3_valid, Const(1, len(self.o_wr.en)) << s3_nb, 0)),
        ]

        stages = [l1_valid, l2_valid, l3_valid, l4_valid, s2_valid, s3_valid]
        if rec_hw:
            # step t's recurrent inputs are the spikes of step t-1: its first recurrent group
            # waits until the last block of t-1 has written them
            m.d.comb += hold.eq(rec & b_op & (b_obase == 0) & (b_nb == 0) & (b_t != 0) &
                                Cat(*stages).any())
        self.completion(m, rc, stages)
        return m


def verilog_units(design):
    """``[(module name, component)]`` for ``spikeforge verilog``."""
    return [("sf_forward_engine", ForwardEngine(design))]
