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

      o = [u > vth]; h = [|u - vth| < a/2]   (stored by the forward pass; derived from u with reset_grad)
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
  ``g_below[j] = sat_e(rshr(G[j], w_frac))`` after the last one. Rounds follow each other with
  no idle cycle; a point ends one cycle after its last round (its lanes are seen done from
  their registered masks).

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
u_rd       ``P x state_bits``         ``nb*NP + p``     ``u`` of this layer with ``reset_grad``
                                                        (``o``, ``h`` derived), else ``o`` (bit 0)
                                                        and ``h`` (bit 1) of each lane
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
            "u_rd": rd(sa, P * mm.state_bits),
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
        dist = self.hw.dist_ram
        m = Module()

        # ---- run-time parameters and control ------------------------------------------------
        n_out = Signal.like(self.n_out)
        n_in = Signal.like(self.n_in)
        T = Signal.like(self.timesteps)
        B = Signal.like(self.batch)
        below = Signal()
        sparse = Signal()
        n_words = Signal(range(mm.out_blocks_max + 1))          # ceil(n_out / P)
        in_valid = Signal(S * P)                                # bit j: j < n_in
        busy = Signal()
        cycles = Signal(32)
        m.d.comb += [self.busy.eq(busy), self.cycles.eq(cycles)]

        # producer (recurrence) iteration state; p = t*B + b and k*NP are kept as registers
        prod_run = Signal()
        t = Signal(range(max(2, cfg.timesteps)))
        b = Signal(range(max(2, cfg.batch)))
        k = Signal(entry["k"].width)              # word (block) index: the list entry's field
        ps = Signal()                            # slot being produced
        p = Signal(addr_bits(mm.spike_depth))
        kbase = Signal(addr_bits(mm.state_depth) + 1)

        # slots of compressed eps: ``claimed`` from the producer's first word of a point until
        # the walker releases it, ``full`` once the list is complete
        full = Signal(2)
        claimed = Signal(2)
        count = [Signal(range(mm.out_blocks_max + 1), name=f"count{s}") for s in range(2)]
        last_n = [Signal(kw, name=f"last_n{s}") for s in range(2)]   # count - 1
        empty = [Signal(name=f"empty{s}") for s in range(2)]
        slot_walk = [[Signal(S, name=f"slot{s}_walk{q}") for q in range(P)] for s in range(2)]
        slot_need = [[Signal(S, name=f"slot{s}_need{q}") for q in range(P)] for s in range(2)]
        slot_p = [Signal(addr_bits(mm.spike_depth), name=f"slot_p{s}") for s in range(2)]
        lists = memory.Memory(shape=entry.width, depth=mm.be_list_depth, init=[])
        m.submodules.lists = lists
        list_wp = lists.write_port()
        # distributed RAM: an asynchronous read addressed with the walker's state; block RAM:
        # a synchronous read addressed with its next state. Either way the data belong to the
        # current state.
        list_rp = lists.read_port(domain="comb") if dist else \
            lists.read_port(transparent_for=(list_wp,))

        # ---- producer R0: issue reads ------------------------------------------------------
        last_k = k == n_words - 1
        last_b = b == B - 1
        issue = Signal()
        m.d.comb += issue.eq(prod_run & ((k != 0) | ~below | ~claimed.bit_select(ps, 1)))
        addr = Signal(addr_bits(mm.state_depth))
        m.d.comb += addr.eq(kbase + p)
        next_addr = Signal(addr_bits(mm.state_depth) + 1)
        m.d.comb += next_addr.eq(kbase + p + B)
        m.d.comb += [
            self.u_rd.addr.eq(addr), self.u_rd.en.eq(issue),
            self.g_rd.addr.eq(addr), self.g_rd.en.eq(issue),
            self.eps_rd.addr.eq(next_addr), self.eps_rd.en.eq(issue),
            self.hb_rd.addr.eq(p), self.hb_rd.en.eq(issue),
        ]

        def regs(name, fields):
            return {key: Signal.like(value, name=f"{name}_{key}") for key, value in fields.items()}

        # the pipeline R1 .. R5 advances every cycle (valid bits mark the words in it)
        r0 = {"valid": issue, "p": p, "k": k, "first": k == 0, "last": last_k,
              "top": t == T - 1, "slot": ps, "addr": addr}
        r1, r2, r3, r4, r5 = (regs(f"r{i}", r0) for i in range(1, 6))
        for dst, src in ((r1, r0), (r2, r1), (r3, r2), (r4, r3), (r5, r4)):
            m.d.sync += [dst[key].eq(src[key]) for key in r0]
        # forwarding: eps_next is the word of point (t+1, b), written up to three cycles too
        # late for this read; the flags say which later stage will hold it when it is needed
        fwd = [Signal(name=f"fwd{i}_r1") for i in range(3)]
        fwd2 = [Signal(name=f"fwd{i}_r2") for i in range(3)]
        m.d.sync += [f.eq(stage["valid"] & (stage["addr"] == next_addr))
                     for f, stage in zip(fwd, (r1, r2, r3))]
        m.d.sync += [a.eq(f) for a, f in zip(fwd2, fwd)]
        with m.If(issue):
            m.d.sync += [k.eq(k + 1), kbase.eq(kbase + NP)]
            with m.If(last_k):
                m.d.sync += [k.eq(0), kbase.eq(0), b.eq(b + 1), p.eq(p + 1), ps.eq(~ps)]
                with m.If(last_b):
                    m.d.sync += [b.eq(0), p.eq(p + 1 - 2 * B)]
                    with m.If(t == 0):
                        m.d.sync += prod_run.eq(0)
                    with m.Else():
                        m.d.sync += t.eq(t - 1)

        # ---- producer R1: read data, registered -----------------------------------------------
        sb = mm.state_bits
        u_q = Signal(P * sb)
        g_q = Signal(P * eb)
        e_q = Signal(P * eb)
        hb_q = Signal(S * P)
        m.d.sync += [u_q.eq(self.u_rd.data), g_q.eq(self.g_rd.data), e_q.eq(self.eps_rd.data),
                     hb_q.eq(self.hb_rd.data)]

        # ---- producer R2: the recurrence, P neurons, from registers only --------------------
        eps3, eps4, eps5 = Signal(P * eb), Signal(P * eb), Signal(P * eb)
        m.d.sync += [eps4.eq(eps3), eps5.eq(eps4)]
        eps_prev_word = Mux(fwd2[0], eps3, Mux(fwd2[1], eps4, Mux(fwd2[2], eps5, e_q)))
        lo, hi = cfg.vth_int - cfg.half_window_int, cfg.vth_int + cfg.half_window_int
        lane_valid = Signal(P)
        m.d.sync += lane_valid.eq(Cat(*[(r1["k"] * P + q) < n_out for q in range(P)]))
        eps_lanes = []
        for q in range(P):
            g = g_q[q * eb:(q + 1) * eb].as_signed()
            e_next = Mux(r2["top"], 0, eps_prev_word[q * eb:(q + 1) * eb].as_signed())
            if cfg.reset_grad:
                u = u_q[q * ub:(q + 1) * ub].as_signed()
                o = u > cfg.vth_int
                h = (u > lo) & (u < hi)
            else:                       # the forward pass stored o and h
                o, h = u_q[q * sb], u_q[q * sb + 1]
            if cfg.reset_grad:
                g = saturate(g - csd(rshr(u * e_next, cfg.w_frac), cfg.alpha_terms), eb)
            carried = csd(Mux(o, 0, e_next), cfg.alpha_terms)
            eps_q = Signal(signed(eb), name=f"eps_r2_{q}")
            m.d.comb += eps_q.eq(Mux(lane_valid[q], saturate(Mux(h, g, 0) + carried, eb), 0))
            eps_lanes.append(eps_q)
        m.d.sync += eps3.eq(Cat(*eps_lanes))
        # the lane masks of the point's h_below (its last word makes the slot)
        walk3 = [Signal(S, name=f"walk_r3_{q}") for q in range(P)]
        need3 = [Signal(S, name=f"need_r3_{q}") for q in range(P)]
        hb_valid = hb_q & in_valid
        for q in range(P):
            m.d.sync += [
                need3[q].eq(Cat(*[hb_valid[r * P + q] for r in range(S)])),
                walk3[q].eq(Cat(*[(hb_q[r * P + q] | ~sparse) & in_valid[r * P + q]
                                  for r in range(S)])),
            ]

        # ---- producer R3: write eps, the non-zero mask and the list entry -------------------
        nz_word = Cat(*[eps3[q * eb:(q + 1) * eb] != 0 for q in range(P)])
        lane_valid3 = Signal(P)
        m.d.sync += lane_valid3.eq(lane_valid)
        keep = Mux(sparse, nz_word, lane_valid3)
        m.d.comb += [
            self.eps_wr.addr.eq(r3["addr"]),
            self.eps_wr.data.eq(eps3),
            self.eps_wr.en.eq(r3["valid"]),
        ]
        nz_acc = Signal(S * P)
        nz_next = Signal(S * P)
        m.d.comb += nz_next.eq(Mux(r3["first"], 0, nz_acc) | (nz_word << (r3["k"] * P)))
        m.d.comb += [
            self.nz_wr.addr.eq(r3["p"]), self.nz_wr.data.eq(nz_next),
            self.nz_wr.en.eq(r3["valid"] & r3["last"]),
        ]
        cnt_w = Signal(range(mm.out_blocks_max + 1))
        cnt_cur = Mux(r3["first"], 0, cnt_w)
        append = r3["valid"] & below & (keep != 0)
        m.d.comb += [
            list_wp.addr.eq(Cat(cnt_cur[:kw], r3["slot"])),
            list_wp.data.eq(Cat(r3["k"], keep, eps3)),     # the fields of mm.be_list
            list_wp.en.eq(append),
        ]
        set_full = Signal(2)
        with m.If(r3["valid"]):
            m.d.sync += [nz_acc.eq(nz_next), cnt_w.eq(cnt_cur + append)]
            with m.If(r3["last"] & below):
                m.d.comb += set_full.eq(1 << r3["slot"])
                total = cnt_cur + append
                for s_ in range(2):
                    with m.If(r3["slot"] == s_):
                        m.d.sync += [count[s_].eq(total), last_n[s_].eq(total - 1),
                                     empty[s_].eq(total == 0), slot_p[s_].eq(r3["p"])]
                        m.d.sync += [slot_walk[s_][q].eq(walk3[q]) for q in range(P)]
                        m.d.sync += [slot_need[s_][q].eq(need3[q]) for q in range(P)]

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
        m.d.comb += list_rp.addr.eq(Cat(n[:kw], cs) if dist else Cat(n_next[:kw], cs_next))

        def field(name):
            f = entry[name]
            return list_rp.data[f.offset:f.offset + f.width]
        e_k = field("k")
        e_mask = field("mask")
        e_vals = Array(field("values").word_select(q, eb).as_signed() for q in range(P))
        zero_pt = Mux(cs, empty[1], empty[0])
        n_last = n == Mux(cs, last_n[1], last_n[0])
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
            item_last.eq(zero_pt | ((eff_rest == 0) & n_last)),
        ]
        any_lane = Cat(*[x != 0 for x in lm]) != 0
        emit = Signal()
        m.d.comb += emit.eq(active & any_lane)

        lm_after = [Signal(S, name=f"lm_after{q}") for q in range(P)]
        for q in range(P):
            m.d.comb += lm_after[q].eq(Mux(item_last, lm[q] & (lm[q] - 1), lm[q]))
        # the consumed point is finished once no lane has work left (seen from the registered
        # lane masks: one cycle after its last round)
        point_end = Signal()
        m.d.comb += point_end.eq(active & ~any_lane)
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
        lh = [Signal(S, name=f"lh{q}") for q in range(P)]
        with m.If(load):
            m.d.sync += [lm[q].eq(Mux(load_slot, slot_walk[1][q], slot_walk[0][q]))
                         for q in range(P)]
            m.d.sync += [lh[q].eq(Mux(load_slot, slot_need[1][q], slot_need[0][q]))
                         for q in range(P)]
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
        m.d.sync += [full.eq((full | set_full) & ~clr_full),
                     claimed.eq((claimed | Mux(issue & (k == 0) & below, 1 << ps, 0))
                                & ~clr_full)]

        # ---- backprop: lanes (L0 weight read, L1 registered weight, L2 multiply-accumulate,
        # L3 round and saturate, L4 write) -------------------------------------------------------
        l1 = {"eps": Signal(signed(eb), name="l1_eps"), "first": Signal(name="l1_first"),
              "last": Signal(name="l1_last"), "p": Signal(addr_bits(mm.spike_depth), name="l1_p")}
        l2 = regs("l2", l1)
        m.d.sync += [l1["eps"].eq(item_eps), l1["first"].eq(item_first),
                     l1["last"].eq(item_last), l1["p"].eq(Mux(cs, slot_p[1], slot_p[0]))]
        m.d.sync += [l2[key].eq(l1[key]) for key in l1]
        pipe_busy = []
        for q in range(P):
            r_q, _ = _lowest(lm[q], S)
            lane_v = emit & (lm[q] != 0)
            m.d.comb += [
                self.w_rd[q].addr.eq(item_i * S + r_q),
                self.w_rd[q].en.eq(lane_v),
            ]
            v = [Signal(name=f"v{i}_{q}") for i in range(1, 5)]
            r = [Signal(range(max(2, S)), name=f"r{i}_{q}") for i in range(1, 4)]
            h = [Signal(name=f"h{i}_{q}") for i in range(1, 5)]
            w_q = Signal(signed(cfg.w_bits), name=f"w_q{q}")
            m.d.sync += [v[0].eq(lane_v), r[0].eq(r_q), h[0].eq(lh[q].bit_select(r_q, 1)),
                         v[1].eq(v[0]), r[1].eq(r[0]), h[1].eq(h[0]), w_q.eq(self.w_rd[q].data)]
            acc = Signal(signed(cfg.bwd_acc_bits), name=f"acc{q}")
            with m.If(v[1]):
                m.d.sync += acc.eq(Mux(l2["first"], 0, acc) + w_q * l2["eps"])
            # after the last product of a round, acc holds G[j] for one cycle
            addr3 = Signal(addr_bits(mm.state_depth), name=f"gb_addr3_{q}")
            addr4 = Signal(addr_bits(mm.state_depth), name=f"gb_addr4_{q}")
            p3 = Signal.like(l2["p"], name=f"p3_{q}")
            gb4 = Signal(signed(eb), name=f"gb4_{q}")
            m.d.sync += [v[2].eq(v[1] & l2["last"]), r[2].eq(r[1]), h[2].eq(h[1]),
                         p3.eq(l2["p"]), v[3].eq(v[2]),
                         addr4.eq(addr3),
                         # dense mode computes masked entries too; h_below = 0 still writes 0
                         gb4.eq(Mux(h[2], saturate(rshr(acc, cfg.w_frac), eb), 0))]
            m.d.comb += addr3.eq(r[2] * NP + p3)
            m.d.comb += [
                self.gb_wr[q].en.eq(v[3]),
                self.gb_wr[q].addr.eq(addr4),
                self.gb_wr[q].data.eq(gb4),
            ]
            pipe_busy += v

        # ---- start / done ------------------------------------------------------------------
        in_flight = Cat(r1["valid"], r2["valid"], r3["valid"])
        idle = ~prod_run & (in_flight == 0) & ~active & (full == 0) & (Cat(*pipe_busy) == 0)
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
                in_valid.eq(Cat(*[self.n_in > j if j < n_max else Const(0, 1)
                                  for j in range(S * P)])),
                busy.eq(1), cycles.eq(0), prod_run.eq(1), t.eq(self.timesteps - 1), b.eq(0),
                p.eq((self.timesteps - 1) * self.batch), kbase.eq(0),
                k.eq(0), ps.eq(0), active.eq(0), full.eq(0), claimed.eq(0),
            ]
            m.d.comb += cs_next.eq(0)
        return m


def verilog_units(design):
    """``spikeforge verilog`` entry: the Backward Engine of ``design``."""
    return [("sf_backward_engine", BackwardEngine(design))]
