"""Dual-sparsity Backward Engine: the eps recurrence of one layer and ``g_below = h_below * W^T eps``.

Trade-off first. The backward pass has two kinds of zeros (``model/SPEC.md`` section 5): most
``eps`` entries are zero (the surrogate window is empty and the temporal term has died out) and,
in the layer below, every entry whose own surrogate ``h_below`` is zero is *defined* as 0. The
multiply-accumulate work of ``W^T eps`` for one point ``(t, b)`` is therefore only
``nnz(eps) x needed(j)`` instead of ``n_out x n_in``. This engine spends its ``P`` multipliers only
on that product set: a **walker** streams the non-zero ``eps`` of the point, one per cycle, and
each **lane** (lane ``k`` owns the neurons ``j = r*P + k`` of the layer below and its own weight
bank) walks only its needed ``j``, by a priority encoder over the point's surrogate bitmask. Zero
``eps`` cost no cycle, masked ``j`` cost no cycle. The price is lane imbalance (a point lasts as long
as its busiest lane) and one cycle per needed output when a point has no non-zero ``eps`` at all
(those outputs must still be written as 0).

Two units run concurrently, decoupled by a two-slot buffer of compressed ``eps``:

- **Recurrence unit**: one memory word (``P`` neurons) per cycle, ``t = T-1 .. 0``, ``b = 0..B-1``::

      o = [u > vth]; h = [|u - vth| < a/2]              (o and h are derived from the stored u)
      g' = sat_e(g - csd(rshr(u * eps_next, w_frac), alpha))        only with cfg.reset_grad
      eps = sat_e(h * g' + csd(eps_next * (1 - o), alpha))

  ``eps_next`` is read back from the ``eps`` memory (word of point ``(t+1, b)``; 0 at ``t = T-1``),
  with internal forwarding of the word written in the same cycle. It writes every ``eps`` word,
  the per-point non-zero bitmask ``nz``, and (when the layer has a layer below) appends the
  word's non-zero entries to the compressed list of the point.
- **Backprop unit** (walker + ``P`` lanes, 3-stage pipeline: select/weight read, multiply-
  accumulate, round/saturate/write): for each point, in rounds: every lane with a needed ``j``
  left takes its lowest one, the walker replays the point's non-zero ``eps``, lanes accumulate
  ``W[i, j] * eps[i]`` exactly (``bwd_acc_bits``) and write
  ``g_below[j] = sat_e(rshr(G[j], w_frac))`` after the last one. Rounds and points follow each
  other with no idle cycle.

Compressed eps (``be_sparse`` on). Per point, a list of the memory words (groups of ``P``
neurons) that hold at least one non-zero ``eps``: entry ``(k, mask, values)`` = word index, ``P``-bit
non-zero mask, the ``P`` values. The walker emits ``i = k*P + q`` for every set bit ``q`` of
``mask`` in turn. The entry's fields and their widths are ``design.memmap.be_list`` (the word
index is as wide as the largest layer's block count, and the register that produces it has exactly
that width, so writer and reader agree on every field for every shape). Two such lists (the point
being consumed and the point being produced) live in a small internal memory. For the rest of the accelerator the engine also writes a persistent
bitmask per point: ``nz[p]`` bit ``i`` = ``eps[p, i] != 0``.

Dense mode (input ``sparse = 0``): the list holds every word with all valid neurons marked and every
lane walks every ``j < n_in``: the same datapath does all ``n_out x n_in`` products, so both modes are
measured on the same data with the same hardware.

Memory layouts: those of :mod:`spikeforge.hdl.memmap` (shared with the Forward and Weight Update
Engines). ``P`` lanes; point ``p = t * B + b``; ``NP = cfg.timesteps * cfg.batch`` (the maximum,
a constant stride); a block ``nb`` holds neurons ``nb*P .. nb*P + P-1`` (lane ``q`` = neuron
``nb*P + q``, lane 0 in the low bits); ``n_out``/``n_in`` are this run's dimensions.

=========  =========================  ================  ============================================
port       word                       address           content
=========  =========================  ================  ============================================
u_rd       ``P x u_bits`` (state)     ``nb*NP + p``     ``u`` of this layer (``o``, ``h`` derived)
g_rd       ``P x e_bits`` (eps)       ``nb*NP + p``     ``dL/do`` of this layer (``g``)
eps_rd/wr  ``P x e_bits`` (eps)       ``nb*NP + p``     ``eps`` of this layer (read back for t+1)
nz_wr      ``spike_width`` bits       ``p``             bit ``i``: ``eps[t, b, i] != 0``
hb_rd      ``spike_width`` bits       ``p``             bit ``j``: ``h_below[t, b, j]``
w_rd[q]    ``w_bits`` (bank ``q``)    ``i*S + r``       ``W[i, r*P + q]``, ``S = ceil(n_max / P)``
                                                        (filled by ``hdl/mirror.py``)
gb_wr[q]   ``e_bits`` (bank ``q``)    ``r*NP + p``      ``g_below[t, b, r*P + q]``: the banks side by
                                                        side are the ``eps`` layout of the layer below
=========  =========================  ================  ============================================

``spike_width = ceil(max(cfg.layers) / P) * P`` (the spike-memory word: the Forward Engine can
write ``h`` bitmasks exactly as it writes spikes). The ``P`` banks of ``gb_wr`` read side by side
form the ``g_rd`` word of the layer below, so the top can back both with the same ``P`` banks (one
write port each). Entries of ``g_below`` with ``h_below = 0`` are **not written** in sparse mode
(the spec defines them as 0 and the recurrence of the layer below multiplies them by ``h = 0``;
the dense mode writes them as 0); padding lanes (``i >= n_out``) of ``eps`` words are written as 0.
All read ports are synchronous (data the cycle after the address).

Cycle behaviour: ``start`` (one cycle, with the run-time dimensions valid) latches the dimensions;
``busy`` is high until the cycle ``done`` pulses; ``cycles`` counts the busy cycles of the last run.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .fxp import csd, rshr, saturate
from .memmap import addr_bits

__all__ = ["BackwardEngine", "control_members", "verilog_units"]


def control_members(design):
    """The engine's run-control members (start, dimensions, switches, busy/done/cycles), also
    re-exported by wrappers such as the test harness."""
    mm, cfg = design.memmap, design.cfg
    return {
        "start": In(1),
        "n_out": In(range(mm.n_max + 1)),
        "n_in": In(range(mm.n_max + 1)),
        "timesteps": In(range(cfg.timesteps + 1)),
        "batch": In(range(cfg.batch + 1)),
        "has_below": In(1),
        "sparse": In(1),
        "busy": Out(1),
        "done": Out(1),
        "cycles": Out(32),
    }


def _lowest(mask, width):
    """(index of the lowest set bit, mask with it cleared); index 0 for an empty mask."""
    index = Const(0, range(max(2, width)))
    for q in reversed(range(width)):
        index = Mux(mask[q], q, index)
    return index, mask & (mask - 1)


class BackwardEngine(wiring.Component):
    """Dual-sparsity Backward Engine of one layer, sized for the largest layer of the design.

    Parameters
    ----------
    design : Design
        ``alpha``, ``vth``, ``window``, ``reset_grad`` and every width are fixed at elaboration;
        layer sizes, ``T`` and ``B`` are run-time inputs up to the maxima of the config.
        ``hw.pes`` = number of lanes ``P``. ``hw.be_sparse`` is the default the top drives on
        ``sparse``; the engine itself takes it at run time. Sizes and the compressed-eps list
        entry (``memmap.be_list``) come from ``design.memmap``.

    Members
    -------
    start : In(1)
        Pulse: latch the run-time inputs below and run one layer.
    n_out, n_in : In
        Neurons of this layer and of the layer below (``n_in`` is ignored without ``has_below``).
    timesteps, batch : In
        ``T`` and ``B`` of this run.
    has_below : In(1)
        Compute ``g_below`` (0 for the first layer: recurrence only).
    sparse : In(1)
        1: skip zero ``eps`` and masked outputs; 0: dense.
    busy, done : Out(1)
        ``busy`` from the cycle after ``start`` to ``done`` (one-cycle pulse) included.
    cycles : Out(32)
        Busy cycles of the last run (measured by the hardware).
    u_rd, g_rd, eps_rd, hb_rd : In(ReadPort.Signature)
    eps_wr, nz_wr : In(WritePort.Signature)
    w_rd : In(ReadPort.Signature).array(P)
    gb_wr : In(WritePort.Signature).array(P)
        Memory ports (``lib.memory`` signatures, so ``wiring.connect`` joins them to memory
        ports); layouts in the module docstring.
    """

    def __init__(self, design):
        from .design import require_design
        require_design(design)
        self.design, self.cfg, self.hw = design, design.cfg, design.hw
        self.memmap = mm = design.memmap
        cfg, P = self.cfg, mm.P
        sa, pa = addr_bits(mm.state_depth), addr_bits(mm.spike_depth)

        def rd(aw, width):
            return In(ReadPort.Signature(addr_width=aw, shape=width))

        def wr(aw, width):
            return In(WritePort.Signature(addr_width=aw, shape=width))

        super().__init__({
            **control_members(design),
            "u_rd": rd(sa, P * cfg.u_bits),
            "g_rd": rd(sa, P * cfg.e_bits),
            "eps_rd": rd(sa, P * cfg.e_bits),
            "eps_wr": wr(sa, P * cfg.e_bits),
            "nz_wr": wr(pa, mm.spike_width),
            "hb_rd": rd(pa, mm.spike_width),
            "w_rd": rd(addr_bits(mm.bank_depth), cfg.w_bits).array(P),
            "gb_wr": wr(sa, cfg.e_bits).array(P),
        })

    def elaborate(self, platform):
        cfg, mm = self.cfg, self.memmap
        P, S, n_max, NP = mm.P, mm.S, mm.n_max, mm.NP
        eb, ub = cfg.e_bits, cfg.u_bits
        entry = mm.be_list
        kw = mm.be_list_index_bits
        m = Module()

        # ---- run-time parameters and control ------------------------------------------------
        n_out = Signal.like(self.n_out)
        n_in = Signal.like(self.n_in)
        T = Signal.like(self.timesteps)
        B = Signal.like(self.batch)
        below = Signal()
        sparse = Signal()
        n_words = Signal(range(mm.out_blocks_max + 1))          # ceil(n_out / P)
        busy = Signal()
        cycles = Signal(32)
        m.d.comb += [self.busy.eq(busy), self.cycles.eq(cycles)]

        # producer (recurrence) iteration state
        prod_run = Signal()
        t = Signal(range(max(2, cfg.timesteps)))
        b = Signal(range(max(2, cfg.batch)))
        k = Signal(entry["k"].width)              # word (block) index: the list entry's field
        ps = Signal()                            # slot being produced

        # slots of compressed eps
        full = Signal(2)
        count = [Signal(range(mm.out_blocks_max + 1), name=f"count{s}") for s in range(2)]
        slot_hb = [Signal(S * P, name=f"slot_hb{s}") for s in range(2)]
        slot_p = [Signal(addr_bits(mm.spike_depth), name=f"slot_p{s}") for s in range(2)]
        lists = memory.Memory(shape=entry.width, depth=mm.be_list_depth, init=[])
        m.submodules.lists = lists
        list_wp = lists.write_port()
        # synchronous (block RAM on every FPGA): addressed with the walker's next state, so its
        # data always belongs to the current state, exactly as an asynchronous read would
        list_rp = lists.read_port(transparent_for=(list_wp,))

        # ---- producer stage R0: issue reads ------------------------------------------------
        p = Signal(addr_bits(mm.spike_depth))
        m.d.comb += p.eq(t * B + b)
        last_k = k == n_words - 1
        last_b = b == B - 1
        issue = Signal()
        m.d.comb += issue.eq(prod_run & ((k != 0) | ~below | ~full.bit_select(ps, 1)))
        addr = Signal(addr_bits(mm.state_depth))
        m.d.comb += addr.eq(k * NP + p)
        next_addr = Signal(addr_bits(mm.state_depth) + 1)
        m.d.comb += next_addr.eq(k * NP + p + B)
        m.d.comb += [
            self.u_rd.addr.eq(addr), self.u_rd.en.eq(issue),
            self.g_rd.addr.eq(addr), self.g_rd.en.eq(issue),
            self.eps_rd.addr.eq(next_addr), self.eps_rd.en.eq(issue),
            self.hb_rd.addr.eq(p), self.hb_rd.en.eq(issue),
        ]
        r1_valid = Signal()
        r1_p = Signal.like(p)
        r1_k = Signal.like(k)
        r1_first = Signal()
        r1_last = Signal()
        r1_top = Signal()                        # t == T-1: eps_next = 0
        r1_slot = Signal()
        fwd_hit = Signal()
        fwd_data = Signal(P * eb)
        m.d.sync += [
            r1_valid.eq(issue), r1_p.eq(p), r1_k.eq(k), r1_first.eq(k == 0),
            r1_last.eq(last_k), r1_top.eq(t == T - 1), r1_slot.eq(ps),
            fwd_hit.eq(self.eps_wr.en & (self.eps_wr.addr == next_addr)),
            fwd_data.eq(self.eps_wr.data),
        ]
        with m.If(issue):
            m.d.sync += k.eq(k + 1)
            with m.If(last_k):
                m.d.sync += [k.eq(0), b.eq(b + 1), ps.eq(~ps)]
                with m.If(last_b):
                    m.d.sync += b.eq(0)
                    with m.If(t == 0):
                        m.d.sync += prod_run.eq(0)
                    with m.Else():
                        m.d.sync += t.eq(t - 1)

        # ---- producer stage R1: the recurrence, P neurons ----------------------------------
        eps_prev_word = Mux(fwd_hit, fwd_data, self.eps_rd.data)
        lo, hi = cfg.vth_int - cfg.half_window_int, cfg.vth_int + cfg.half_window_int
        eps_lanes, nz_bits, keep_bits = [], [], []
        for q in range(P):
            u = self.u_rd.data[q * ub:(q + 1) * ub].as_signed()
            g = self.g_rd.data[q * eb:(q + 1) * eb].as_signed()
            e_next = Mux(r1_top, 0, eps_prev_word[q * eb:(q + 1) * eb].as_signed())
            o = u > cfg.vth_int
            h = (u > lo) & (u < hi)
            if cfg.reset_grad:
                g = saturate(g - csd(rshr(u * e_next, cfg.w_frac), cfg.alpha_terms), eb)
            carried = csd(Mux(o, 0, e_next), cfg.alpha_terms)
            eps_q = Signal(signed(eb), name=f"eps_r1_{q}")
            valid_q = (r1_k * P + q) < n_out
            m.d.comb += eps_q.eq(Mux(valid_q, saturate(Mux(h, g, 0) + carried, eb), 0))
            eps_lanes.append(eps_q)
            nz_bits.append(eps_q != 0)
            keep_bits.append(Mux(sparse, eps_q != 0, valid_q))
        eps_word = Cat(*eps_lanes)
        nz_word = Cat(*nz_bits)
        keep = Cat(*keep_bits)
        m.d.comb += [
            self.eps_wr.addr.eq(r1_k * NP + r1_p),
            self.eps_wr.data.eq(eps_word),
            self.eps_wr.en.eq(r1_valid),
        ]
        nz_acc = Signal(S * P)
        nz_next = Signal(S * P)
        m.d.comb += nz_next.eq(Mux(r1_first, 0, nz_acc) | (nz_word << (r1_k * P)))
        m.d.comb += [
            self.nz_wr.addr.eq(r1_p), self.nz_wr.data.eq(nz_next),
            self.nz_wr.en.eq(r1_valid & r1_last),
        ]
        cnt_w = Signal(range(mm.out_blocks_max + 1))
        cnt_cur = Mux(r1_first, 0, cnt_w)
        append = r1_valid & below & (keep != 0)
        m.d.comb += [
            list_wp.addr.eq(Cat(cnt_cur[:kw], r1_slot)),
            list_wp.data.eq(Cat(r1_k, keep, eps_word)),     # the fields of mm.be_list
            list_wp.en.eq(append),
        ]
        set_full = Signal(2)
        with m.If(r1_valid):
            m.d.sync += [nz_acc.eq(nz_next), cnt_w.eq(cnt_cur + append)]
            with m.If(r1_last & below):
                m.d.comb += set_full.eq(1 << r1_slot)
                for s in range(2):
                    with m.If(r1_slot == s):
                        m.d.sync += [
                            count[s].eq(cnt_cur + append),
                            slot_hb[s].eq(self.hb_rd.data),
                            slot_p[s].eq(r1_p),
                        ]

        # ---- backprop: walker ----------------------------------------------------------------
        active = Signal()
        cs = Signal()
        n = Signal(kw)                           # entry index within the point's list
        rem = Signal(P)
        started = Signal()
        lm = [Signal(S, name=f"lm{q}") for q in range(P)]
        n_next = Signal.like(n)
        cs_next = Signal()
        m.d.comb += [n_next.eq(n), cs_next.eq(cs)]
        m.d.sync += [n.eq(n_next), cs.eq(cs_next)]
        m.d.comb += list_rp.addr.eq(Cat(n_next[:kw], cs_next))
        def field(name):
            f = entry[name]
            return list_rp.data[f.offset:f.offset + f.width]
        e_k = field("k")
        e_mask = field("mask")
        e_vals = Array(field("values").word_select(q, eb).as_signed() for q in range(P))
        cnt = Mux(cs, count[1], count[0])
        zero_pt = cnt == 0
        eff = Mux(started, rem, e_mask)
        q_low, eff_rest = _lowest(eff, P)
        item_i = Signal(range(S * P))
        item_eps = Signal(signed(eb))
        item_first = Signal()
        item_last = Signal()
        m.d.comb += [
            item_i.eq(Mux(zero_pt, 0, e_k * P + q_low)),
            item_eps.eq(Mux(zero_pt, 0, e_vals[q_low])),
            item_first.eq(zero_pt | (~started & (n == 0))),
            item_last.eq(zero_pt | ((eff_rest == 0) & (n == cnt - 1))),
        ]
        any_lane = Cat(*[x != 0 for x in lm]) != 0
        emit = Signal()
        m.d.comb += emit.eq(active & any_lane)

        # lane masks of a slot: bit r of lane q = h_below[r*P + q] and r*P + q < n_in
        # lane q's share of a slot's h_below: bit r = h_below[r*P + q] and r*P + q < n_in;
        # walked: the same (sparse) or every r*P + q < n_in (dense)
        def lane_masks(slot):
            hb = Mux(slot, slot_hb[1], slot_hb[0])
            walk, need = [], []
            for q in range(P):
                w_bits, n_bits = [], []
                for r in range(S):
                    j = r * P + q
                    if j < n_max:
                        n_bits.append((j < n_in) & hb[j])
                        w_bits.append((j < n_in) & (hb[j] | ~sparse))
                    else:
                        n_bits.append(Const(0, 1))
                        w_bits.append(Const(0, 1))
                walk.append(Cat(*w_bits))
                need.append(Cat(*n_bits))
            return walk, need

        lm_after = [Signal(S, name=f"lm_after{q}") for q in range(P)]
        for q in range(P):
            m.d.comb += lm_after[q].eq(Mux(item_last, lm[q] & (lm[q] - 1), lm[q]))
        point_end = Signal()        # the consumed point is finished this cycle
        m.d.comb += point_end.eq(active & (~any_lane |
                                           (item_last & (Cat(*lm_after) == 0))))
        clr_full = Signal(2)
        load_slot = Signal()
        load = Signal()
        with m.If(point_end):
            m.d.comb += [clr_full.eq(1 << cs), cs_next.eq(~cs)]
            m.d.comb += [load_slot.eq(~cs), load.eq(full.bit_select(~cs, 1))]
            m.d.sync += active.eq(full.bit_select(~cs, 1))
        with m.Elif(~active & busy):
            m.d.comb += [load_slot.eq(cs), load.eq(full.bit_select(cs, 1))]
            m.d.sync += active.eq(full.bit_select(cs, 1))
        new_masks, new_need = lane_masks(load_slot)
        lh = [Signal(S, name=f"lh{q}") for q in range(P)]
        with m.If(load):
            m.d.sync += [lm[q].eq(new_masks[q]) for q in range(P)]
            m.d.sync += [lh[q].eq(new_need[q]) for q in range(P)]
            m.d.sync += started.eq(0)
            m.d.comb += n_next.eq(0)
        with m.Elif(emit):
            m.d.sync += [lm[q].eq(lm_after[q]) for q in range(P)]
            with m.If(item_last):
                m.d.sync += started.eq(0)
                m.d.comb += n_next.eq(0)
            with m.Elif(eff_rest == 0):
                m.d.sync += started.eq(0)
                m.d.comb += n_next.eq(n + 1)
            with m.Else():
                m.d.sync += [rem.eq(eff_rest), started.eq(1)]
        m.d.sync += full.eq((full | set_full) & ~clr_full)

        # ---- backprop: lanes (S0 weight read, S1 multiply-accumulate, S2 write) ------------
        s1_eps = Signal(signed(eb))
        s1_first = Signal()
        s1_last = Signal()
        s1_p = Signal(addr_bits(mm.spike_depth))
        m.d.sync += [s1_eps.eq(item_eps), s1_first.eq(item_first), s1_last.eq(item_last),
                     s1_p.eq(Mux(cs, slot_p[1], slot_p[0]))]
        pipe_busy = []
        for q in range(P):
            r_q, _ = _lowest(lm[q], S)
            lane_v = emit & (lm[q] != 0)
            m.d.comb += [
                self.w_rd[q].addr.eq(item_i * S + r_q),
                self.w_rd[q].en.eq(lane_v),
            ]
            s1_v = Signal(name=f"s1_v{q}")
            s1_r = Signal(range(max(2, S)), name=f"s1_r{q}")
            s1_h = Signal(name=f"s1_h{q}")
            s2_h = Signal(name=f"s2_h{q}")
            m.d.sync += [s1_v.eq(lane_v), s1_r.eq(r_q), s1_h.eq(lh[q].bit_select(r_q, 1)),
                         s2_h.eq(s1_h)]
            acc = Signal(signed(cfg.bwd_acc_bits), name=f"acc{q}")
            prod = self.w_rd[q].data.as_signed() * s1_eps
            with m.If(s1_v):
                m.d.sync += acc.eq(Mux(s1_first, 0, acc) + prod)
            s2_v = Signal(name=f"s2_v{q}")
            s2_addr = Signal(addr_bits(mm.state_depth), name=f"s2_addr{q}")
            m.d.sync += [s2_v.eq(s1_v & s1_last), s2_addr.eq(s1_r * NP + s1_p)]
            m.d.comb += [
                self.gb_wr[q].en.eq(s2_v),
                self.gb_wr[q].addr.eq(s2_addr),
                # dense mode computes masked entries too; h_below = 0 still writes 0 (the spec)
                self.gb_wr[q].data.eq(Mux(s2_h, saturate(rshr(acc, cfg.w_frac), eb), 0)),
            ]
            pipe_busy += [s1_v, s2_v]

        # ---- start / done ------------------------------------------------------------------
        idle = ~prod_run & ~r1_valid & ~active & (full == 0) & (Cat(*pipe_busy) == 0)
        m.d.comb += self.done.eq(busy & idle)
        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(idle):
                m.d.sync += busy.eq(0)
        if P & (P - 1) == 0:
            ceil_words = (self.n_out + (P - 1)) >> (P.bit_length() - 1)
        else:
            ceil_words = (self.n_out + (P - 1)) // P
        with m.If(self.start & ~busy):
            m.d.sync += [
                n_out.eq(self.n_out), n_in.eq(self.n_in), T.eq(self.timesteps),
                B.eq(self.batch), below.eq(self.has_below), sparse.eq(self.sparse),
                n_words.eq(ceil_words),
                busy.eq(1), cycles.eq(0), prod_run.eq(1), t.eq(self.timesteps - 1), b.eq(0),
                k.eq(0), ps.eq(0), active.eq(0), full.eq(0),
            ]
            m.d.comb += cs_next.eq(0)
        return m


def verilog_units(design):
    """``spikeforge verilog`` entry: the Backward Engine of ``design``."""
    return [("sf_backward_engine", BackwardEngine(design))]
