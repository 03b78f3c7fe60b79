"""The training accelerator: engines, on-chip memories, controller and host bridge in one component.

One Forward Engine, one Backward Engine, one Weight Update Engine and the output unit serve every
layer in turn; the host only streams spikes and labels in and results out
through the byte protocol of :mod:`spikeforge.hdl.protocol` (over a UART on a board). The order in
which the engines run, and pipelining between them, is the :class:`~spikeforge.hdl.controller.
Controller`'s; this module holds the memories and the wiring.

**Memories** (sizes, regions and bases: :mod:`spikeforge.hdl.memmap`; ``P`` lanes per word,
``NP = T*B`` points, each layer has its own region):

=======  =================================  ===========================================
memory   words                              written by / read by
=======  =================================  ===========================================
x        2 buffers x NP, ``S*P`` bits       host (write only) / FE(0), WUE(0)
labels   2 buffers x B, 8 bits              host (write only) / output unit
spk      L regions x NP                     FE (output spikes) / FE, WUE, output unit
hb       L-1 regions x NP                   surrogate bits of hidden layers, taken from the
                                            FE's membrane writes / BE (``h_below``)
u        sum_l blocks_l x NP, P*state_bits  FE / BE, host ("state", read while idle)
eps      as u, ``P*e_bits``                 BE / BE, WUE (one read port, the BE first)
g        P banks, as u, ``e_bits``          output unit, BE (``g_below``) / BE
w        sum_l blocks_l x n_in_l            host, WUE / FE, WUE, BE, host (one layout:
                                            the BE sums the P lanes of a word; one read
                                            port, the WUE first, the FE's fetch waits)
pred     B, 8 bits                          output unit / host
=======  =================================  ===========================================

**Host operations** (:class:`~spikeforge.hdl.protocol.Op`, in a START frame): TRAIN and INFER take
the input buffer in :data:`~spikeforge.hdl.protocol.BUFFER_BIT`; SYNC is accepted and does nothing
(the Backward Engine reads the weights the host wrote: there is no copy to refresh); CLEAR clears the counters; MODE sets
pipelining (the reset value is ``hw.pipeline``). WAIT conditions:
:class:`~spikeforge.hdl.protocol.Wait`. Weights may be written or read only while idle. The
counters are ``design.memmap.counters``.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .backward import BackwardEngine
from .controller import Controller, attach, layer_table
from .design import require_design
from .forward import ForwardEngine
from .host import HostBridge
from .job import TrainingJob
from .splitmem import make_memory
from .protocol import BUFFER_BIT, OP_MASK, JobReg, Op
from .outgrad import OutputUnit
from .wupdate import WeightUpdateEngine

__all__ = ["Accelerator", "verilog_units"]


def _popcount(m, value, name):
    """Pipelined population count of ``value`` (off the datapath: its input is a register).

    Returns ``(count, latency)``: ``count`` is the number of set bits of ``value`` as it was
    ``latency`` cycles earlier. Bits are summed four at a time (one LUT level), then pairwise with
    a register after every adder level."""
    width = len(value)
    q = Signal(width, name=f"{name}_in")
    m.d.sync += q.eq(value)
    latency = 1
    terms = []
    for i in range(0, width, 4):
        chunk = q[i:i + 4]
        t = Signal(range(len(chunk) + 1), name=f"{name}_c{i // 4}")
        m.d.sync += t.eq(sum(chunk[j] for j in range(len(chunk))))
        terms.append(t)
    latency += 1
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms), 2):
            if i + 1 < len(terms):
                t = Signal(range(2 ** len(terms[i]) + 2 ** len(terms[i + 1])),
                           name=f"{name}_l{level}_{i // 2}")
                m.d.sync += t.eq(terms[i] + terms[i + 1])
            else:
                t = Signal.like(terms[i], name=f"{name}_l{level}_{i // 2}")
                m.d.sync += t.eq(terms[i])
            nxt.append(t)
        terms = nxt
        latency += 1
        level += 1
    return terms[0], latency


class Accelerator(wiring.Component):
    """The whole training accelerator behind a host byte stream.

    Parameters
    ----------
    design : Design

    Members
    -------
    rx : In(stream.Signature(8))
        Host command bytes.
    tx : Out(stream.Signature(8))
        Reply bytes.
    link_error : In(1)
        The UART in front lost a byte or saw a frame error (reported in the next reply).
    """

    def __init__(self, design):
        require_design(design)
        self.design, self.cfg, self.hw = design, design.cfg, design.hw
        self.memmap = mm = design.memmap
        self.counters = mm.counters
        self.controller = Controller(design)
        self.fe = ForwardEngine(design)
        # an inference-only design (hw.learn off) has neither
        self.wue = WeightUpdateEngine(design) if mm.learn else None
        self.be = BackwardEngine(design) if mm.learn else None
        self.out = OutputUnit(design)
        self.job = TrainingJob(design) if mm.has_data else None
        self.bridge = HostBridge(mm.host_targets, len(mm.counters),
                                 n_conditions=5 if mm.has_data else 2, key=design.key_bytes())
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
                          "link_error": In(1)})

    def set_link(self, divisor):
        """The host link is a UART of ``divisor`` cycles per bit (the bridge's error-recovery
        and timeout times scale with it)."""
        self.bridge.set_link(10 * divisor)

    def elaborate(self, platform):
        m = Module()
        cfg, mm = self.cfg, self.memmap
        P, L, NP, S = mm.P, mm.L, mm.NP, mm.S
        ctl, fe, wue, be = self.controller, self.fe, self.wue, self.be
        out, br = self.out, self.bridge
        learn = mm.learn
        for name in ("controller", "fe", "wue", "be", "out", "bridge"):
            if getattr(self, name) is not None:
                m.submodules[name] = getattr(self, name)
        wiring.connect(m, wiring.flipped(self.rx), br.rx)
        wiring.connect(m, br.tx, wiring.flipped(self.tx))
        m.d.comb += br.link_error.eq(self.link_error)
        target = {t.name: i for i, t in enumerate(mm.host_targets)}
        deny_w = [Const(0) for _ in mm.host_targets]
        deny_r = [Const(0) for _ in mm.host_targets]

        # ---- controller: host operations (or the training job's) in, engine runs out -----------
        job = self.job
        if job is None:
            m.d.comb += [ctl.start.eq(br.start), ctl.op.eq(br.op), br.wait_ok.eq(ctl.wait_ok)]
        for port, engine in ((ctl.fe, fe), (ctl.out, out), (ctl.be, be), (ctl.wue, wue)):
            if engine is not None:      # (without one its ``done`` stays 0: never started)
                attach(m, port, engine)

        # ---- memories (sizes from the memory map) ------------------------------------------------
        self.memories = {}                      # by name, for simulation introspection

        def mem(name, spec):
            memory = make_memory(spec, name)
            m.submodules[f"mem_{name}"] = memory
            self.memories[name] = memory
            return memory

        spec = mm.memories
        x_mem, lab_mem, pred_mem = mem("x", spec["x"]), mem("labels", spec["labels"]), \
            mem("pred", spec["pred"])
        spk_mem = mem("spk", spec["spk"])
        hb_mem = mem("hb", spec["hb"]) if learn else None
        u_mem = mem("u", spec["u"])
        eps_mem = mem("eps", spec["eps"]) if learn else None
        w_mem = mem("w", spec["w"])
        g_mem = mem("g", spec["g"]) if learn else None

        # per-layer bases, indexed by a thread's layer register
        sbase_t = layer_table(mm.sbase + [0])
        wbase_t = layer_table(mm.wbase + [0])

        # ---- memory ports -----------------------------------------------------------------------
        # x: host write/read, FE(0) read, WUE(0) read
        x_wr = x_mem.write_port()
        # (the host cannot read x or labels back: each read port costs a block-RAM copy)
        # (the port names come from these assignments)
        if learn:
            x_fe, x_wue = x_mem.read_port(), x_mem.read_port()
        else:
            x_fe, x_wue = x_mem.read_port(), None
        # the output unit runs only while the FE is idle: it shares the FE's read port
        if learn:
            spk_fe, spk_wue = spk_mem.read_port(), spk_mem.read_port()
        else:
            spk_fe, spk_wue = spk_mem.read_port(), None
        out_reads = out.busy
        rec_hw = mm.has_rec
        if rec_hw:
            # a recurrent layer's FE also reads its own spikes of the step before, and its
            # WUE's V pass reads them as inputs shifted by one step (0 at t = 0)
            x_self_q = Signal()
            v_ok_q = Signal()
            m.d.sync += [x_self_q.eq(fe.x_self), v_ok_q.eq(wue.x_rd.addr >= mm.B)
                         if learn else v_ok_q.eq(0)]
            fe_src = Mux(fe.x_self, ctl.f_layer, ctl.f_layer - 1)
            fe_from_x = (ctl.f_layer == 0) & ~x_self_q
        else:
            fe_src, fe_from_x = ctl.f_layer - 1, ctl.f_layer == 0
        if learn and rec_hw:
            wue_x = [spk_wue.addr.eq(Mux(ctl.w_vrun, ctl.w_layer * NP + wue.x_rd.addr - mm.B,
                                         (ctl.w_layer - 1) * NP + wue.x_rd.addr)),
                     spk_wue.en.eq(wue.x_rd.en),
                     wue.x_rd.data.eq(Mux(ctl.w_vrun, Mux(v_ok_q, spk_wue.data, 0),
                                          Mux(ctl.w_layer == 0, x_wue.data, spk_wue.data)))]
        elif learn:
            wue_x = [spk_wue.addr.eq((ctl.w_layer - 1) * NP + wue.x_rd.addr),
                     spk_wue.en.eq(wue.x_rd.en),
                     wue.x_rd.data.eq(Mux(ctl.w_layer == 0, x_wue.data, spk_wue.data))]
        m.d.comb += [
            x_fe.addr.eq(ctl.f_buf * NP + fe.x_rd.addr), x_fe.en.eq(fe.x_rd.en),
            spk_fe.addr.eq(Mux(out_reads, (L - 1) * NP + out.x_rd.addr,
                               fe_src * NP + fe.x_rd.addr)),
            spk_fe.en.eq(Mux(out_reads, out.x_rd.en, fe.x_rd.en)),
            # x words are as wide as the input layer; the engines see them zero-extended
            fe.x_rd.data.eq(Mux(fe_from_x, x_fe.data, spk_fe.data)),
            *([x_wue.addr.eq(ctl.w_buf * NP + wue.x_rd.addr), x_wue.en.eq(wue.x_rd.en),
               *wue_x] if learn else []),
            out.x_rd.data.eq(spk_fe.data),
        ]
        # labels and predictions
        lab_wr = lab_mem.write_port()
        lab_out = lab_mem.read_port()
        m.d.comb += [lab_out.addr.eq(ctl.f_buf * mm.label_stride + out.label_rd.addr),
                     lab_out.en.eq(out.label_rd.en), out.label_rd.data.eq(lab_out.data)]
        pred_wr = pred_mem.write_port()
        wiring.connect(m, out.pred_wr, pred_wr)
        wiring.connect(m, br.r_pred, pred_mem.read_port())
        # output spikes (granular by block) and the surrogate bits of hidden layers
        spk_wr = spk_mem.write_port(granularity=P)
        if learn:
            hb_wr = hb_mem.write_port(granularity=P)
        shifted_en = fe.o_wr.en << ctl.f_nb
        lanes = [fe.u_wr.data.word_select(q, cfg.u_bits).as_signed() for q in range(P)]
        h_bits = Cat(*[(lane > cfg.vth_int - cfg.half_window_int) &
                       (lane < cfg.vth_int + cfg.half_window_int) for lane in lanes])
        m.d.comb += [
            spk_wr.addr.eq(ctl.f_layer * NP + fe.o_wr.addr), spk_wr.data.eq(fe.o_wr.data),
            spk_wr.en.eq(shifted_en),
            *([hb_wr.addr.eq(ctl.f_layer * NP + fe.o_wr.addr),
               hb_wr.data.eq(Cat(*([h_bits] * S))),
               # no hidden layer (L = 1): hb is never written
               hb_wr.en.eq(Mux(ctl.f_layer < L - 1, shifted_en, 0) if L > 1 else 0)]
              if learn else []),
        ]
        if learn:
            hb_be = hb_mem.read_port()
            m.d.comb += [hb_be.addr.eq((ctl.b_layer - 1) * NP + be.hb_rd.addr),
                         hb_be.en.eq(be.hb_rd.en), be.hb_rd.data.eq(hb_be.data)]
        if learn and rec_hw:
            # the second copy of hb: a recurrent layer's own h, read beside h_below
            hr_mem = mem("hr", spec["hr"])
            hr_wr, hr_be = hr_mem.write_port(granularity=P), hr_mem.read_port()
            m.d.comb += [hr_wr.addr.eq(hb_wr.addr), hr_wr.data.eq(hb_wr.data),
                         hr_wr.en.eq(hb_wr.en),
                         hr_be.addr.eq(ctl.b_layer * NP + be.hr_rd.addr),
                         hr_be.en.eq(be.hr_rd.en), be.hr_rd.data.eq(hr_be.data)]
            r_mem = mem("r", spec["r"])
            r_wr, r_be = r_mem.write_port(granularity=cfg.e_bits), r_mem.read_port()
            m.d.comb += [r_wr.addr.eq(be.r_wr.addr), r_wr.data.eq(be.r_wr.data),
                         r_wr.en.eq(be.r_wr.en),
                         r_be.addr.eq(be.r_rd.addr), r_be.en.eq(be.r_rd.en),
                         be.r_rd.data.eq(r_be.data)]
        # membrane state
        u_wr = u_mem.write_port()
        u_be = u_mem.read_port()
        if cfg.reset_grad:
            state_word = fe.u_wr.data
        else:                           # o (bit 0) and h (bit 1) of each lane, not u
            state_word = Cat(*[Cat(lane > cfg.vth_int, h_bits[q]) for q, lane in enumerate(lanes)])
        # the host reads the state (hardware in the loop) only while idle, on the BE's port
        m.d.comb += [u_wr.addr.eq(ctl.f_soff + fe.u_wr.addr), u_wr.data.eq(state_word),
                     u_wr.en.eq(fe.u_wr.en),
                     *([u_be.addr.eq(Mux(be.busy, sbase_t[ctl.b_layer] + be.u_rd.addr,
                                         br.r_state.addr)),
                        u_be.en.eq(Mux(be.busy, be.u_rd.en, br.r_state.en)),
                        be.u_rd.data.eq(u_be.data)] if learn else
                       [u_be.addr.eq(br.r_state.addr), u_be.en.eq(br.r_state.en)]),
                     br.r_state.data.eq(u_be.data)]
        if learn:
            self._learning_memories(m, ctl, be, wue, out, eps_mem, g_mem, sbase_t)
        # weights (one layout): WUE or host write; FE, WUE, BE and host read
        w_wr = w_mem.write_port()
        # (the host writes only while idle: the bridge refuses its words otherwise)
        with m.If(wue.w_wr.en if learn else 0):
            m.d.comb += [w_wr.addr.eq((Mux(ctl.w_vrun, ctl.w_voff, ctl.w_woff) if rec_hw else
                                       ctl.w_woff) + wue.w_wr.addr), w_wr.data.eq(wue.w_wr.data),
                         w_wr.en.eq(1)] if learn else []
        with m.Else():
            m.d.comb += [w_wr.addr.eq(br.w_w.addr), w_wr.data.eq(br.w_w.data),
                         w_wr.en.eq(br.w_w.en)]
        # one read port (one block-RAM copy): the WUE reads only during the last point group
        # of a block and cannot wait, so it has priority; the FE's table fetch waits for it
        # (``w_stall``; the fetch overlaps the look-ups of the previous table). The BE never reads
        # at the same time as the FE (the BE runs after the forward pass of its step, and the
        # next step's forward pass waits for the weight update, which waits for the BE) nor as
        # the WUE (the controller starts a BE that reads weights only once the WUE of the layer
        # above is done); the host reads only while idle
        w_rd = w_mem.read_port()
        if not learn:
            m.d.comb += [w_rd.addr.eq(Mux(fe.busy, ctl.f_woff + fe.w_rd.addr, br.r_w.addr)),
                         w_rd.en.eq(Mux(fe.busy, fe.w_rd.en, br.r_w.en)), fe.w_stall.eq(0),
                         fe.w_rd.data.eq(w_rd.data), br.r_w.data.eq(w_rd.data)]
        if rec_hw:
            # V's region for the FE's recurrent groups, the BE's R terms and the WUE's V pass
            vbase_t = layer_table(mm.vbase + [0])
            f_base = Mux(fe.w_v, ctl.f_voff, ctl.f_woff)
            b_base = Mux(be.w_v, vbase_t[ctl.b_layer], wbase_t[ctl.b_layer]) if learn else 0
            w_base = Mux(ctl.w_vrun, ctl.w_voff, ctl.w_woff) if learn else 0
        else:
            f_base, b_base, w_base = ctl.f_woff, wbase_t[ctl.b_layer], ctl.w_woff
        if not learn and rec_hw:
            m.d.comb += w_rd.addr.eq(Mux(fe.busy, f_base + fe.w_rd.addr, br.r_w.addr))
        m.d.comb += [] if not learn else [
            w_rd.addr.eq(Mux(wue.w_rd.en, w_base + wue.w_rd.addr,
                             Mux(be.busy, b_base + be.w_rd.addr,
                                 Mux(fe.busy, f_base + fe.w_rd.addr, br.r_w.addr)))),
            w_rd.en.eq(wue.w_rd.en | Mux(be.busy, be.w_rd.en,
                                          Mux(fe.busy, fe.w_rd.en, br.r_w.en))),
            fe.w_stall.eq(wue.w_rd.en),
            fe.w_rd.data.eq(w_rd.data), be.w_rd.data.eq(w_rd.data), br.r_w.data.eq(w_rd.data),
            wue.w_rd.data.eq(w_rd.data),
        ]

        # ---- counters: off the datapath. Every event is registered first, a count of bits goes
        # through a pipelined popcount, and the bridge sees the accelerator busy until the last
        # event of a run has reached its counter ------------------------------------------------
        events = {
            "active_cycles": ctl.busy, "steps": out.done, "fe_busy": fe.busy,
            "out_busy": out.busy, "fe_x_reads": fe.x_rd.en, "fe_w_reads": fe.w_rd.en,
            "fe_writes": fe.u_wr.en, "out_reads": out.x_rd.en, "out_writes": out.g_wr.en}
        if learn:
            events.update({
                "be_busy": be.busy, "wue_busy": wue.busy,
                "wue_x_reads": wue.x_rd.en, "wue_eps_reads": wue.eps_rd.en,
                "wue_lookups": wue.lookup,
                "wue_w_reads": wue.w_rd.en, "wue_w_writes": wue.w_wr.en,
                "be_u_reads": be.u_rd.en, "be_g_reads": be.g_rd.en,
                "be_eps_reads": be.eps_rd.en, "be_eps_writes": be.eps_wr.en,
                "be_w_reads": be.w_rd.en, "be_g_writes": be.gb_wr.en})
        for l in range(L):
            events[f"spikes{l}"] = Mux(fe.u_wr.en & (ctl.f_layer == l), fe.o_wr.data[:P], 0)
            if learn:
                events[f"eps_nonzero{l}"] = Mux(be.nz_wr.en & (ctl.b_layer == l),
                                                be.nz_wr.data, 0)
        depth = 1
        counts = {}
        for name in self.counters:
            value = events[name]
            if len(value) == 1:
                q = Signal(name=f"ev_{name}")
                m.d.sync += q.eq(value)
                counts[name], latency = q, 1
            else:
                counts[name], latency = _popcount(m, value, f"ev_{name}")
            depth = max(depth, latency)
        for index, name in enumerate(self.counters):
            counter = Signal(32, name=f"count_{name}")
            with m.If(ctl.clear):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + counts[name])
            m.d.comb += br.counters[index].eq(counter)
        settle = Signal(depth + 1)
        m.d.sync += settle.eq(Cat(ctl.busy, settle[:-1]))
        busy = ctl.busy | settle.any()
        if job is not None:
            # a job waiting for its order leaves the accelerator idle: the host may read
            # weights then (a checkpoint)
            busy = busy | (job.active & ~job.waiting)
        m.d.comb += br.busy.eq(busy)

        # ---- host accesses that would conflict with a running engine are refused ------------
        # weights: only while idle (the engines hold the one read port, the WUE writes); an
        # input buffer or its labels: only while no queued or running step reads it
        deny_w[target["w"]] = deny_r[target["w"]] = busy
        deny_w[target["x"]] = ~ctl.wait_ok.bit_select(br.w_x.addr >= NP, 1)
        deny_w[target["labels"]] = ~ctl.wait_ok.bit_select(br.w_labels.addr >= mm.label_stride, 1)
        deny_r[target["pred"]] = ctl.busy
        deny_r[target["state"]] = busy
        deny_w[target["state"]] = Const(1)       # read only
        # an inference-only design refuses TRAIN
        deny_start = Const(0) if learn else ((br.op & OP_MASK) == Op.TRAIN)
        if job is not None:
            deny_start = self._attach_job(m, x_wr, lab_wr, pred_wr, target, deny_w)
        else:
            m.d.comb += [x_wr.addr.eq(br.w_x.addr), x_wr.data.eq(br.w_x.data),
                         x_wr.en.eq(br.w_x.en), lab_wr.addr.eq(br.w_labels.addr),
                         lab_wr.data.eq(br.w_labels.data), lab_wr.en.eq(br.w_labels.en)]
        m.d.comb += [br.deny_w.eq(Cat(*deny_w)), br.deny_r.eq(Cat(*deny_r)),
                     br.deny_start.eq(deny_start)]
        return m

    def _learning_memories(self, m, ctl, be, wue, out, eps_mem, g_mem, sbase_t):
        """eps and g: the Backward Engine's, read by the Weight Update Engine."""
        cfg, mm = self.cfg, self.memmap
        P, L = mm.P, mm.L
        # eps
        eps_wr = eps_mem.write_port()
        # one read port: the BE's reads (its recurrence reads eps of t+1 back) cannot wait, the
        # WUE's table fetch waits for them (``eps_stall``)
        eps_rd = eps_mem.read_port()
        m.d.comb += [eps_wr.addr.eq(sbase_t[ctl.b_layer] + be.eps_wr.addr),
                     eps_wr.data.eq(be.eps_wr.data), eps_wr.en.eq(be.eps_wr.en),
                     eps_rd.addr.eq(Mux(be.eps_rd.en, sbase_t[ctl.b_layer] + be.eps_rd.addr,
                                        ctl.w_soff + wue.eps_rd.addr)),
                     eps_rd.en.eq(be.eps_rd.en | wue.eps_rd.en),
                     wue.eps_stall.eq(be.eps_rd.en),
                     be.eps_rd.data.eq(eps_rd.data), wue.eps_rd.data.eq(eps_rd.data)]
        # gradient: the output unit writes whole words of the last layer, the BE writes g_below
        # one lane at a time (a write enable per lane); the BE reads whole words
        g_wr, g_be = g_mem.write_port(granularity=cfg.e_bits), g_mem.read_port()
        with m.If(be.gb_wr.en.any()):
            m.d.comb += [g_wr.addr.eq(sbase_t[(ctl.b_layer - 1).as_unsigned()] + be.gb_wr.addr),
                         g_wr.data.eq(be.gb_wr.data), g_wr.en.eq(be.gb_wr.en)]
        with m.Else():
            m.d.comb += [g_wr.addr.eq(mm.sbase[L - 1] + out.g_wr.addr),
                         g_wr.data.eq(out.g_wr.data),
                         g_wr.en.eq(Mux(out.g_wr.en, (1 << P) - 1, 0))]
        m.d.comb += [g_be.addr.eq(sbase_t[ctl.b_layer] + be.g_rd.addr), g_be.en.eq(be.g_rd.en),
                     be.g_rd.data.eq(g_be.data)]

    def _attach_job(self, m, x_wr, lab_wr, pred_wr, target, deny_w):
        """The on-chip data set, its order banks, the job registers and the training job;
        returns the refusal of the host's START (TRAIN/INFER or JOB while a job runs)."""
        mm, ctl, br, job = self.memmap, self.controller, self.bridge, self.job
        D = mm.data_samples
        m.submodules.job = job
        spec = mm.memories
        data_mem, order_mem, acc_mem = (make_memory(spec[k], k) for k in ("data", "order", "acc"))
        for name, memory in (("data", data_mem), ("order", order_mem), ("acc", acc_mem)):
            m.submodules[f"mem_{name}"] = memory
            self.memories[name] = memory

        # operations: JOB and ORDER go to the job; the job's own operations wait for a cycle
        # without a host START
        code = br.op & OP_MASK
        host_step = (code == Op.TRAIN) | (code == Op.INFER) | (code == Op.JOB)
        m.d.comb += [
            job.start.eq(br.start & (code == Op.JOB)),
            job.order_set.eq(Mux(br.start & (code == Op.ORDER),
                                 Mux(br.op & BUFFER_BIT, 0b10, 0b01), 0)),
            job.order_part.eq(Mux(br.start & (code == Op.ORDER_PART),
                                  Mux(br.op & BUFFER_BIT, 0b10, 0b01), 0)),
            ctl.start.eq(br.start | job.op_start),
            ctl.op.eq(Mux(br.start, br.op, job.op)),
            job.wait_ok.eq(ctl.wait_ok), job.hold.eq(br.start),
            job.ctl_busy.eq(ctl.busy), job.f_buf.eq(ctl.f_buf),
            job.pred_en.eq(pred_wr.en), job.pred_addr.eq(pred_wr.addr),
            job.pred_data.eq(pred_wr.data),
            br.wait_ok.eq(Cat(ctl.wait_ok, job.order_free, ~job.active)),
        ]
        # input buffers: the job's while it runs (the host's writes are refused then)
        for port, host, job_port in ((x_wr, br.w_x, job.x_wr), (lab_wr, br.w_labels, job.lab_wr)):
            m.d.comb += [port.addr.eq(Mux(job.active, job_port.addr, host.addr)),
                         port.data.eq(Mux(job.active, job_port.data, host.data)),
                         port.en.eq(Mux(job.active, job_port.en, host.en))]
        for name in ("x", "labels"):
            deny_w[target[name]] = deny_w[target[name]] | job.active
        # data set: the host writes while no job runs; the job reads
        data_wr, data_rd = data_mem.write_port(), data_mem.read_port()
        wiring.connect(m, br.w_data, data_wr)
        deny_w[target["data"]] = job.active
        wiring.connect(m, job.data_rd, data_rd)
        # order: the host writes the entries of a bank that the job may not use yet (all of
        # a bank that is not loaded, the rest of a streamed one); the job reads
        order_wr, order_rd = order_mem.write_port(), order_mem.read_port()
        wiring.connect(m, br.w_order, order_wr)
        deny_w[target["order"]] = Mux(br.w_order.addr >= D,
                                      br.w_order.addr - D < job.order_fill1,
                                      br.w_order.addr < job.order_fill0)
        wiring.connect(m, job.order_rd, order_rd)
        # correct counts per epoch: the job writes, the host reads
        wiring.connect(m, job.acc_wr, acc_mem.write_port())
        wiring.connect(m, br.r_acc, acc_mem.read_port())
        # job registers (the "job" target): four written by the host while no job runs, the
        # status read
        deny_w[target["job"]] = job.active
        regs = {r: Signal(32, name=f"job_{r.name.lower()}") for r in
                (JobReg.TRAIN_COUNT, JobReg.TEST_BASE, JobReg.TEST_COUNT, JobReg.EPOCHS)}
        with m.If(br.w_job.en):
            with m.Switch(br.w_job.addr):
                for r, reg in regs.items():
                    with m.Case(r):
                        m.d.sync += reg.eq(br.w_job.data)
        m.d.comb += [job.train_count.eq(regs[JobReg.TRAIN_COUNT]),
                     job.test_base.eq(regs[JobReg.TEST_BASE]),
                     job.test_count.eq(regs[JobReg.TEST_COUNT]),
                     job.epochs.eq(regs[JobReg.EPOCHS])]
        status = Cat(job.active, job.waiting, Const(0, 14), job.epochs_done)
        with m.If(br.r_job.en):
            with m.Switch(br.r_job.addr):
                for r, reg in regs.items():
                    with m.Case(r):
                        m.d.sync += br.r_job.data.eq(reg)
                with m.Case(JobReg.STATUS):
                    m.d.sync += br.r_job.data.eq(status)
                with m.Default():
                    m.d.sync += br.r_job.data.eq(0)
        return job.active & host_step


def verilog_units(design):
    return [("sf_accelerator", Accelerator(design))]
