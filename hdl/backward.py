"""Dual-sparsity Backward Engine: the eps recurrence of one layer and ``g_below = h_below * W^T eps``.

Trade-off first. The backward pass has two kinds of zeros (``model/SPEC.md`` section 5): most
``eps`` entries are zero (the surrogate window is empty and the temporal term has died out) and,
in the layer below, every entry whose own surrogate ``h_below`` is zero is *defined* as 0. The
multiply-accumulate work of ``W^T eps`` for one point ``(t, b)`` is therefore only
``nnz(eps) x needed(j)`` instead of ``n_out x n_in``. This engine reads the weights in the
layout the Forward and Weight Update Engines use (word ``nb*n_in + j`` = the ``P`` weights
``W[nb*P .. nb*P+P-1, j]``), so the accelerator keeps one copy of ``W`` and nothing has to be
mirrored: for each **needed** output ``j`` (``h_below = 1``) it reads, one per cycle, only the
weight words of the ``eps`` words that hold a non-zero value, multiplies the ``P`` lanes by their
``eps`` and sums them in an adder tree. Masked ``j`` cost no cycle, all-zero ``eps`` words cost no
cycle; zeros inside a non-zero word cost a lane (``P`` products per cycle). A point costs
``needed(j) x max(1, nonzero words)`` cycles (+1 when nothing is needed).

Two units run concurrently, decoupled by a two-slot buffer of compressed ``eps``:

- **Recurrence unit**: one memory word (``P`` neurons) per cycle, ``t = T-1 .. 0``, ``b = 0..B-1``::

      o = [u > vth]; h = [|u - vth| < a/2]   (stored by the forward pass; derived from u with reset_grad)
      g' = sat_e(g - csd(rshr(u * eps_next, w_frac), alpha))        only with cfg.reset_grad
      eps = sat_e(h * g' + csd(eps_next * (1 - o), alpha))

  ``eps_next`` is read back from the ``eps`` memory (word of point ``(t+1, b)``; 0 at ``t = T-1``),
  forwarded from the three stages after the recurrence when it is not yet written. It writes every ``eps`` word,
  the per-point non-zero bitmask ``nz``, and (when the layer has a layer below) appends the
  word's non-zero entries to the compressed list of the point.
- **Backprop unit**: an output generator streams the point's walked ``j`` (ascending, one per
  cycle, into a small FIFO); for each ``j`` the consumer replays the point's list, reading weight
  word ``k*n_in + j`` for every entry ``k``; a pipeline (weights registered, ``P`` products, an
  adder tree with a register per level, accumulation, round and saturate) writes
  ``g_below[j] = sat_e(rshr(G[j], w_frac))`` after the last word, all exact (``bwd_acc_bits``).

Compressed eps (``be_sparse`` on). Per point, a list of the memory words (groups of ``P``
neurons) that hold at least one non-zero ``eps``: entry ``(k, mask, values, wofs)`` = word index,
``P``-bit non-zero mask, the ``P`` values and ``k * n_in`` (where that word's weights start, so no
multiplier sits in the weight address). The entry's fields and their widths are ``design.memmap.be_list`` (the word
index is as wide as the largest layer's block count, and the register that produces it has exactly
that width, so writer and reader agree on every field for every shape). Two such lists (the point
being consumed and the point being produced) live in a small internal memory. For the rest of the accelerator the engine also writes a persistent
bitmask per point: ``nz[p]`` bit ``i`` = ``eps[p, i] != 0``.

Dense mode (input ``sparse = 0``): the list holds every word with all valid neurons marked and the
generator walks every ``j < n_in``: the same datapath does all ``n_out x n_in`` products, so both modes are
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
w_rd       ``P x w_bits``             ``nb*n_in + j``   lane ``q``: ``W[nb*P + q, j]`` (the FE layout)
gb_wr      ``P x e_bits``, a write    ``r*NP + p``      lane ``q``: ``g_below[t, b, r*P + q]`` (one lane
           enable per lane                              written at a time): the ``eps`` layout of
                                                        the layer below
=========  =========================  ================  ============================================

``spike_width = ceil(max(cfg.layers) / P) * P`` (the spike-memory word: the Forward Engine can
write ``h`` bitmasks exactly as it writes spikes). The words ``gb_wr`` writes are the ``g_rd``
words of the layer below, so the top backs both with one memory (a write enable per lane). Entries of
``g_below`` with ``h_below = 0`` are **not written** in sparse mode
(the spec defines them as 0 and the recurrence of the layer below multiplies them by ``h = 0``;
the dense mode writes them as 0); padding lanes (``i >= n_out``) of ``eps`` words are written as 0.
All read ports are synchronous (data the cycle after the address).

**Recurrent layers** (a design with ``cfg.recurrent``; ``rec`` high at ``start``): the walk of
point ``(t+1, b)`` also covers the layer's own neurons ``k`` whose ``h[t, b, k]`` is set
(``hr_rd``, a second copy of the surrogate bits; indices ``SP + k`` after the layer below's): for
each, the consumer replays the point's list against V (word ``k`` of each entry's block, the
entry's ``vofs``; ``w_v`` high) and writes ``R[t, b, k] = sat_e(rshr(sum_i V[i,k] eps[t+1,i],
w_frac))`` into the ``r`` memory (``r_wr``, the eps layout). The recurrence of ``(t, b)`` reads it
(``r_rd``) and uses ``g = sat_e(g + R)`` (none at ``t = T-1``); it starts a point only once the
point ``B`` earlier in its order is retired (every output of it written), so R is always final.

Cycle behaviour: ``start`` (one cycle, with the run-time dimensions valid) latches the dimensions;
``busy`` is high until the cycle ``done`` pulses; ``cycles`` counts the busy cycles of the last run.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .fxp import csd, rshr, saturate
from amaranth.lib.fifo import SyncFIFOBuffered

from .memmap import addr_bits, bits_for

__all__ = ["BackwardEngine", "control_members", "verilog_units"]


def control_members(design):
    """The engine's run-control members (start, dimensions, switches, busy/done/cycles), also
    re-exported by wrappers such as the test harness."""
    mm, cfg = design.memmap, design.cfg
    rec = {"rec": In(1)} if mm.has_rec else {}
    return {**rec,
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


def _lowest_set(m, value, name):
    """``(onehot, index)`` of the lowest set bit of ``value`` (index 0 when none is set): a
    two's-complement isolate, then an OR per index bit over the one-hot lanes."""
    n = len(value)
    onehot = Signal(n, name=f"{name}_onehot")
    index = Signal(range(max(n, 2)), name=name)
    m.d.comb += [
        onehot.eq(value & (~value + 1)),
        index.eq(Cat(*[Cat(*[onehot[i] for i in range(n) if i >> bit & 1]).any()
                       if any(i >> bit & 1 for i in range(n)) else Const(0, 1)
                       for bit in range(len(index))])),
    ]
    return onehot, index


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
    w_rd : In(ReadPort.Signature)
    gb_wr : In(WritePort.Signature)
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
            "w_rd": rd(addr_bits(mm.weight_depth), P * cfg.w_bits),
            "gb_wr": In(WritePort.Signature(addr_width=sa, shape=P * cfg.e_bits,
                                            granularity=cfg.e_bits)),
            # recurrent hidden layers: R[t] = V^T eps[t+1] (written one lane at a time, read
            # back into the recurrence of t), the layer's own h at t (the needed R lanes), and
            # a flag on weight reads of V
            **({"r_rd": rd(sa, P * cfg.e_bits), "hr_rd": rd(pa, mm.spike_width),
                "r_wr": In(WritePort.Signature(addr_width=sa, shape=P * cfg.e_bits,
                                               granularity=cfg.e_bits)),
                "w_v": Out(1)} if mm.has_rec else {}),
        })

    def elaborate(self, platform):
        cfg, mm = self.cfg, self.memmap
        P, S, n_max, NP = mm.P, mm.S, mm.n_max, mm.NP
        eb, ub = cfg.e_bits, cfg.u_bits
        entry = mm.be_list
        kw = mm.be_list_index_bits
        dist = self.hw.dist_ram
        rec_hw = mm.has_rec
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
        if rec_hw:
            rec = Signal()                                      # the layer is recurrent
            out_valid = Signal(S * P)                           # bit k: k < n_out
            qpt = Signal(range(NP + 1))          # the producer's point, in processing order
            retired = Signal(range(NP + 1))      # points whose g_below and R are all written
            use_list = below | rec
        else:
            use_list = below
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
        wofs = Signal(entry["wofs"].width)       # k * n_in: the word's weights in the layer
        if rec_hw:
            vofs = Signal(entry["vofs"].width)   # k * n_out: the word's weights in V

        # slots of compressed eps: ``claimed`` from the producer's first word of a point until
        # the consumer releases it, ``full`` once the list is complete
        full = Signal(2)
        claimed = Signal(2)
        last_n = [Signal(kw, name=f"last_n{s}") for s in range(2)]   # count - 1
        empty = [Signal(name=f"empty{s}") for s in range(2)]
        WW = (2 if rec_hw else 1) * S * P      # walked outputs (g_below, then R if recurrent)
        slot_walk = [Signal(WW, name=f"slot{s}_walk") for s in range(2)]
        slot_need = [Signal(WW, name=f"slot{s}_need") for s in range(2)]
        walk_empty = [Signal(name=f"walk_empty{s}") for s in range(2)]
        slot_p = [Signal(addr_bits(mm.spike_depth), name=f"slot_p{s}") for s in range(2)]
        lists = memory.Memory(shape=entry.width, depth=mm.be_list_depth, init=[])
        m.submodules.lists = lists
        list_wp = lists.write_port()
        # distributed RAM: an asynchronous read addressed with the consumer's state; block RAM:
        # a synchronous read addressed with its next state. Either way the data belong to the
        # current state.
        list_rp = lists.read_port(domain="comb") if dist else \
            lists.read_port(transparent_for=(list_wp,))

        # ---- producer R0: issue reads ------------------------------------------------------
        last_k = k == n_words - 1
        last_b = b == B - 1
        issue = Signal()
        if rec_hw:
            # a recurrent layer's point (t, b) needs R[t], made from point (t+1, b): B points
            # earlier in this order
            m.d.comb += issue.eq(prod_run & ((k != 0) | ~use_list | ~claimed.bit_select(ps, 1)) &
                                 (~rec | (retired + B > qpt)))
        else:
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
        if rec_hw:
            m.d.comb += [self.r_rd.addr.eq(addr), self.r_rd.en.eq(issue),
                         self.hr_rd.addr.eq(p - B), self.hr_rd.en.eq(issue)]

        def regs(name, fields):
            return {key: Signal.like(value, name=f"{name}_{key}") for key, value in fields.items()}

        # the pipeline R1 .. R5 advances every cycle (valid bits mark the words in it)
        r0 = {"valid": issue, "p": p, "k": k, "first": k == 0, "last": last_k,
              "top": t == T - 1, "slot": ps, "addr": addr, "wofs": wofs}
        if rec_hw:
            r0.update(vofs=vofs, t0=t == 0)
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
            m.d.sync += [k.eq(k + 1), kbase.eq(kbase + NP), wofs.eq(wofs + n_in)]
            if rec_hw:
                m.d.sync += vofs.eq(vofs + n_out)
                with m.If(last_k):
                    m.d.sync += [vofs.eq(0), qpt.eq(qpt + 1)]
            with m.If(last_k):
                m.d.sync += [k.eq(0), kbase.eq(0), wofs.eq(0), b.eq(b + 1), p.eq(p + 1),
                             ps.eq(~ps)]
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
        if rec_hw:
            r_q = Signal(P * eb)
            hr_q = Signal(S * P)
            m.d.sync += [r_q.eq(self.r_rd.data), hr_q.eq(self.hr_rd.data)]

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
            if rec_hw:
                # g[t] += V^T eps[t+1] (saturation point 3a); none at t = T-1
                g = Mux(rec & ~r2["top"],
                        saturate(g + r_q[q * eb:(q + 1) * eb].as_signed(), eb), g)
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
        # the walked and needed outputs of the point (its last word makes the slot)
        if rec_hw:
            # outputs walked: j < SP, g_below[j] of the layer below; SP + k, R[t-1, k] of this
            # layer (its own h at t-1; none at t = 0)
            walk3 = Signal(2 * S * P)
            need3 = Signal(2 * S * P)
            own_ok = Mux(rec & ~r2["t0"], out_valid, 0)
            below_ok = Mux(below, in_valid, 0)
            SPW = S * P                          # (each part exactly SP bits wide)
            m.d.sync += [need3.eq(Cat((hb_q & below_ok)[:SPW], (hr_q & own_ok)[:SPW])),
                         walk3.eq(Cat((Mux(sparse, hb_q, ~0) & below_ok)[:SPW],
                                      (Mux(sparse, hr_q, ~0) & own_ok)[:SPW]))]
        else:
            walk3 = Signal(S * P)
            need3 = Signal(S * P)
            m.d.sync += [need3.eq(hb_q & in_valid),
                         walk3.eq(Mux(sparse, hb_q, ~0) & in_valid)]

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
        append = r3["valid"] & use_list & (keep != 0)
        m.d.comb += [
            list_wp.addr.eq(Cat(cnt_cur[:kw], r3["slot"])),
            # the fields of mm.be_list
            list_wp.data.eq(Cat(r3["k"], keep, eps3, r3["wofs"],
                                *([r3["vofs"]] if rec_hw else []))),
            list_wp.en.eq(append),
        ]
        set_full = Signal(2)
        with m.If(r3["valid"]):
            m.d.sync += [nz_acc.eq(nz_next), cnt_w.eq(cnt_cur + append)]
            with m.If(r3["last"] & use_list):
                m.d.comb += set_full.eq(1 << r3["slot"])
                total = cnt_cur + append
                for s_ in range(2):
                    with m.If(r3["slot"] == s_):
                        m.d.sync += [last_n[s_].eq(total - 1),
                                     empty[s_].eq(total == 0), slot_p[s_].eq(r3["p"])]
                        m.d.sync += [slot_walk[s_].eq(walk3), slot_need[s_].eq(need3),
                                     walk_empty[s_].eq(walk3 == 0)]

        # ---- backprop, 1: the output generator. For the point of slot ``gs`` it emits every
        # walked j in ascending order (one per cycle, into a FIFO), with its h_below bit and a
        # last flag; a point with nothing to walk emits one empty token ---------------------------
        # The walk goes chunk by chunk (CW bits each) so that no carry chain spans the whole
        # mask. A feeder selects the next non-empty chunk into ``nx`` while the emitter emits the
        # bits of the current one (lowest first), so chunks follow each other without a bubble.
        # **Zero points.** When every eps of the point is zero (its list is empty), each walked
        # g_below is 0; with chunks of exactly one g word (``row_tokens``: 4 <= P <= 16) the
        # emitter then sends one *row token* per non-empty chunk, which writes 0 into all its
        # walked lanes at once (the same words and lanes as one token per j would).
        SP = S * P
        jb = bits_for(WW)
        row_tokens = 4 <= P <= 16
        CW = P if row_tokens else min(16, SP)
        C = -(-WW // CW)
        gs = Signal()
        g_busy = Signal()
        gen_done = Signal(2)                     # the generator has finished slot s
        gen_set = Signal(2)
        jm = Signal(C * CW)                      # the point's walked j (padded to C chunks)
        nm = Signal(C * CW)                      # ... and their h_below bits
        nz = Signal(C)                           # non-empty chunks not yet fed
        rows = Signal()                          # this point's list is empty: row tokens
        nx_v = Signal()                          # the next chunk, selected by the feeder
        nx_c = Signal(range(max(C, 2)))
        nx_w = Signal(CW)
        nx_n = Signal(CW)
        cur_v = Signal()                         # the chunk being emitted
        c = Signal(range(max(C, 2)))
        cw = Signal(CW)                          # its walked j not yet emitted
        cn = Signal(CW)                          # its h_below bits
        # FIFO entry: j, need, last, empty, row, lane mask of a row token
        m.submodules.jfifo = jfifo = SyncFIFOBuffered(width=jb + 4 + CW, depth=4)
        onehot, j_lo = _lowest_set(m, cw, "j_lo")            # the lowest walked j of the chunk
        j_idx = Signal(jb)
        m.d.comb += j_idx.eq(c * CW + j_lo)
        rest = Signal(CW)
        m.d.comb += rest.eq(cw & ~onehot)
        lowest_nz, nz_idx = _lowest_set(m, nz, "nz_idx")      # the next non-empty chunk
        take = Signal()                          # the emitter takes ``nx`` this cycle
        feed = Signal()
        m.d.comb += feed.eq(g_busy & (nz != 0) & (~nx_v | take))
        with m.If(feed):
            m.d.sync += [nx_v.eq(1), nx_c.eq(nz_idx), nz.eq(nz & ~lowest_nz),
                         nx_w.eq(Cat(*[Cat(*[jm[i * CW + q] & lowest_nz[i] for i in range(C)]).any()
                                       for q in range(CW)])),
                         nx_n.eq(Cat(*[Cat(*[nm[i * CW + q] & lowest_nz[i] for i in range(C)]).any()
                                       for q in range(CW)]))]
        with m.Elif(take):
            m.d.sync += nx_v.eq(0)
        with m.If(take):
            m.d.sync += [cur_v.eq(1), c.eq(nx_c), cw.eq(nx_w), cn.eq(nx_n)]
        g_load = Signal()
        m.d.comb += g_load.eq(~g_busy & full.bit_select(gs, 1) & ~gen_done.bit_select(gs, 1))
        g_empty = Mux(gs, walk_empty[1], walk_empty[0])
        walk_sel = Signal(C * CW)
        m.d.comb += walk_sel.eq(Mux(gs, slot_walk[1], slot_walk[0]))
        with m.If(g_busy):
            final = ~nx_v & (nz == 0)            # no chunk after the current one
            chunk_end = rows | (rest == 0)
            last = chunk_end & final
            tok_j = Signal(jb)
            m.d.comb += tok_j.eq(Mux(rows, c * CW, j_idx))
            m.d.comb += jfifo.w_data.eq(Cat(tok_j, ~rows & ((onehot & cn) != 0),
                                            last, 0, rows, cw))
            with m.If(cur_v):
                m.d.comb += jfifo.w_en.eq(1)
                with m.If(jfifo.w_rdy):
                    with m.If(~chunk_end):
                        m.d.sync += cw.eq(rest)
                    with m.Elif(last):
                        m.d.sync += [g_busy.eq(0), gs.eq(~gs), cur_v.eq(0)]
                        m.d.comb += gen_set.eq(1 << gs)
                    with m.Else():
                        m.d.comb += take.eq(nx_v)
                        m.d.sync += cur_v.eq(nx_v)
            with m.Else():
                m.d.comb += take.eq(nx_v)
        with m.Elif(g_load):
            with m.If(g_empty):
                m.d.comb += [jfifo.w_en.eq(1), jfifo.w_data.eq(Cat(Const(0, jb), 0, 1, 1,
                                                                    Const(0, 1 + CW)))]
                with m.If(jfifo.w_rdy):
                    m.d.sync += gs.eq(~gs)
                    m.d.comb += gen_set.eq(1 << gs)
            with m.Else():
                m.d.sync += [g_busy.eq(1), jm.eq(walk_sel), cur_v.eq(0), nx_v.eq(0),
                             rows.eq(Mux(gs, empty[1], empty[0]) if row_tokens else 0),
                             nm.eq(Mux(gs, slot_need[1], slot_need[0])),
                             nz.eq(Cat(*[walk_sel[i * CW:(i + 1) * CW].any()
                                         for i in range(C)]))]

        # ---- backprop, 2: the consumer. For each j of the FIFO it replays the point's list (the
        # words with a non-zero eps, or every word in dense mode), one weight word per cycle:
        # g_below[j] = sum over words k, lanes q of W[kP+q, j] * eps[kP+q] --------------------------
        cs = Signal()
        n = Signal(kw)                           # entry index within the point's list
        n_next = Signal.like(n)
        cs_next = Signal()
        m.d.comb += [n_next.eq(n), cs_next.eq(cs)]
        m.d.sync += [n.eq(n_next), cs.eq(cs_next)]
        m.d.comb += list_rp.addr.eq(Cat(n[:kw], cs) if dist else Cat(n_next[:kw], cs_next))

        def field(name):
            f = entry[name]
            return list_rp.data[f.offset:f.offset + f.width]
        head_j = jfifo.r_data[:jb]
        head_need = jfifo.r_data[jb]
        head_last = jfifo.r_data[jb + 1]
        head_empty = jfifo.r_data[jb + 2]
        head_row = jfifo.r_data[jb + 3]
        head_mask = jfifo.r_data[jb + 4:jb + 4 + CW]
        zero_pt = Mux(cs, empty[1], empty[0])
        n_last = n == Mux(cs, last_n[1], last_n[0])
        clr_full = Signal(2)
        mac = Signal()                           # a product word enters the pipeline
        end_j = Signal()
        with m.If(jfifo.r_rdy):
            with m.If(head_empty):
                m.d.comb += [jfifo.r_en.eq(1), clr_full.eq(1 << cs), cs_next.eq(~cs)]
            with m.Else():
                m.d.comb += [mac.eq(1), end_j.eq(zero_pt | n_last)]
                with m.If(zero_pt | n_last):
                    m.d.comb += [jfifo.r_en.eq(1), n_next.eq(0)]
                    with m.If(head_last):
                        m.d.comb += [clr_full.eq(1 << cs), cs_next.eq(~cs)]
                with m.Else():
                    m.d.comb += n_next.eq(n + 1)
        if rec_hw:
            # a walked index SP + k is R[t-1, k] = sum V[i, k] eps[t, i]: V's word k of the
            # entry's block
            head_v = Signal()
            jj = Signal(jb)
            m.d.comb += [head_v.eq(head_j >= SP), jj.eq(Mux(head_v, head_j - SP, head_j)),
                         self.w_rd.addr.eq(Mux(head_v, field("vofs"), field("wofs")) + jj),
                         self.w_rd.en.eq(mac & ~zero_pt), self.w_v.eq(head_v)]
        else:
            m.d.comb += [self.w_rd.addr.eq(field("wofs") + head_j),
                         self.w_rd.en.eq(mac & ~zero_pt)]

        # C1: weight read in flight; C2: weights registered; C3: products; adder tree; then
        # accumulate, round and saturate, write
        c1 = {"v": mac, "first": n == 0, "last": end_j, "need": head_need,
              "j": jj if rec_hw else head_j,
              "p": Mux(cs, slot_p[1], slot_p[0]),
              "vals": Mux(zero_pt, 0, field("values"))}
        if rec_hw:
            # ``ret``: the point's last token (or its empty one) enters the pipeline, so the
            # point retires when it leaves it, in order
            c1.update(isv=head_v, ret=jfifo.r_rdy & (head_empty | (head_last & end_j)))
        if row_tokens:
            c1.update(row=head_row, mask=head_mask)
        stages = [regs("c1", c1)]
        m.d.sync += [stages[0][key].eq(c1[key]) for key in c1]
        pipe_valid = [stages[0]["v"]]

        def advance(src, name):
            dst = regs(name, src)
            m.d.sync += [dst[key].eq(src[key]) for key in src]
            pipe_valid.append(dst["v"])
            if "ret" in dst:                     # a retirement in flight keeps the run busy
                pipe_valid.append(dst["ret"])
            return dst

        c2 = advance(stages[0], "c2")
        w_q = Signal(P * cfg.w_bits)
        m.d.sync += w_q.eq(self.w_rd.data)
        c3 = advance(c2, "c3")
        pb = cfg.w_bits + eb
        prods = [Signal(signed(pb), name=f"prod{q}") for q in range(P)]
        for q in range(P):
            m.d.sync += prods[q].eq(w_q.word_select(q, cfg.w_bits).as_signed() *
                                    c2["vals"].word_select(q, eb).as_signed())
        terms, ctx, level = prods, c3, 0
        while len(terms) > 1:
            nxt = []
            for i in range(0, len(terms), 2):
                t_ = Signal(signed(len(terms[i]) + 1), name=f"tree{level}_{i // 2}")
                m.d.sync += t_.eq(terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i])
                nxt.append(t_)
            terms, level = nxt, level + 1
            ctx = advance(ctx, f"t{level}")
        total = terms[0]
        acc = Signal(signed(cfg.bwd_acc_bits))
        with m.If(ctx["v"]):
            m.d.sync += acc.eq(Mux(ctx["first"], 0, acc) + total)
        # after the last word of j, acc holds G[j] for one cycle
        a1 = advance(ctx, "a1")
        gb = Signal(signed(eb))
        out_v = Signal()
        out_addr = Signal(addr_bits(mm.state_depth))
        out_en = Signal(P)                       # the lanes written (one, or a row token's)
        if P & (P - 1) == 0:
            lane, row = a1["j"][:P.bit_length() - 1], a1["j"] >> (P.bit_length() - 1)
        else:
            lane = Array(Const(j % P, range(max(P, 2))) for j in range(SP))[a1["j"]]
            row = Array(Const(j // P, range(max(S, 2))) for j in range(SP))[a1["j"]]
        lanes_en = Cat(*[lane == q for q in range(P)])
        if row_tokens:
            lanes_en = Mux(a1["row"], a1["mask"], lanes_en)
        m.d.sync += [out_v.eq(a1["v"] & a1["last"]),
                     out_en.eq(Mux(a1["v"] & a1["last"], lanes_en, 0)),
                     *([] if rec_hw else [out_addr.eq(row * NP + a1["p"])]),
                     # dense mode computes masked entries too; h_below = 0 still writes 0
                     gb.eq(Mux(a1["need"], saturate(rshr(acc, cfg.w_frac), eb), 0))]
        if rec_hw:
            # R[t-1] goes to point p - B of this layer's R memory; g_below as before
            out_isv = Signal()
            out_ret = Signal()
            m.d.sync += [out_isv.eq(a1["isv"]), out_ret.eq(a1["ret"]),
                         out_addr.eq(row * NP + a1["p"] - Mux(a1["isv"], B, 0))]
            m.d.comb += [self.gb_wr.en.eq(Mux(out_isv, 0, out_en)),
                         self.gb_wr.addr.eq(out_addr), self.gb_wr.data.eq(Cat(*([gb] * P))),
                         self.r_wr.en.eq(Mux(out_isv, out_en, 0)),
                         self.r_wr.addr.eq(out_addr), self.r_wr.data.eq(Cat(*([gb] * P)))]
            # a point is retired once its last output is written (or it had none to walk)
            m.d.sync += retired.eq(retired + out_ret)
        else:
            m.d.comb += [self.gb_wr.en.eq(out_en),
                         self.gb_wr.addr.eq(out_addr), self.gb_wr.data.eq(Cat(*([gb] * P)))]
        pipe_valid.append(out_v)
        if rec_hw:
            pipe_valid += [stages[0]["ret"], out_ret]
        m.d.sync += [full.eq((full | set_full) & ~clr_full),
                     gen_done.eq((gen_done | gen_set) & ~clr_full),
                     claimed.eq((claimed | Mux(issue & (k == 0) & use_list, 1 << ps, 0))
                                & ~clr_full)]

        # ---- start / done ------------------------------------------------------------------
        in_flight = Cat(r1["valid"], r2["valid"], r3["valid"])
        idle = ~prod_run & (in_flight == 0) & (full == 0) & ~g_busy & ~jfifo.r_rdy & \
            (Cat(*pipe_valid) == 0)
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
                in_valid.eq(Cat(*[self.n_in > j if j < mm.n_in_max else Const(0, 1)
                                  for j in range(S * P)])),
                busy.eq(1), cycles.eq(0), prod_run.eq(1), t.eq(self.timesteps - 1), b.eq(0),
                p.eq((self.timesteps - 1) * self.batch), kbase.eq(0),
                k.eq(0), ps.eq(0), full.eq(0), claimed.eq(0), wofs.eq(0),
                gs.eq(0), g_busy.eq(0), gen_done.eq(0),
            ]
            if rec_hw:
                m.d.sync += [rec.eq(self.rec), qpt.eq(0), retired.eq(0), vofs.eq(0),
                             out_valid.eq(Cat(*[self.n_out > j if j < mm.n_out_max
                                                else Const(0, 1) for j in range(S * P)]))]
            m.d.comb += cs_next.eq(0)
        return m


def verilog_units(design):
    """``spikeforge verilog`` entry: the Backward Engine of ``design``."""
    return [("sf_backward_engine", BackwardEngine(design))]
