"""The training accelerator: engines, on-chip memories, controller and host bridge in one component.

One Forward Engine, one Backward Engine, one Weight Update Engine, the output unit and the weight
mirror serve every layer in turn; the host only streams spikes and labels in and results out
through the byte protocol of :mod:`spikeforge.hdl.host` (over a UART on a board).

**Training step** (a batch of ``B`` samples, ``T`` steps each) for layers ``l = 0 .. L-1``::

    FE(0) .. FE(L-1) -> OUT (counts, prediction, output gradient)
      -> BE(L-1) -> WUE(L-1) -> MIRROR(L-1) -> BE(L-2) -> WUE(L-2) -> ... -> WUE(0) -> MIRROR(0)

The Forward and Weight Update Engines run one block of ``P`` output neurons per run, so the
controller knows block by block when weights are final.

**Pipelining** (``hw.pipeline``). Four controller threads run concurrently and wait only for their
data:

- *F* (forward + output unit), step by step; FE(0) of step ``n+1`` starts block ``nb`` as soon as
  the WUE has written block ``nb`` of layer 0 for step ``n`` (it chases the update);
- *B* (backward): BE(l) once the gradient of layer ``l`` exists and the mirror of ``W_l`` from the
  previous step is done;
- *W* (weight update): WUE(l) per block once BE(l) is done, so WUE(l) overlaps BE(l-1);
- *M* (mirror): refreshes the Backward Engine's copy of ``W_l`` after WUE(l).

With pipelining off, each engine runs alone in the order above and step ``n+1`` starts after step
``n`` is complete, so the two modes are measured on the same hardware and data.

**Memories** (``P`` = PEs of every engine, ``NP = T*B`` points, ``S = ceil(max(layers)/P)``; the
layouts of :mod:`spikeforge.hdl.layout`; each layer has its own region):

=======  =================================  ===========================================
memory   words                              written by / read by
=======  =================================  ===========================================
x        2 buffers x NP, ``S*P`` bits       host (write only) / FE(0), WUE(0)
labels   2 buffers x B, 8 bits              host (write only) / output unit
spk      L regions x NP                     FE (output spikes) / FE, WUE, output unit
hb       L-1 regions x NP                   surrogate bits of hidden layers, taken from the
                                            FE's membrane writes / BE (``h_below``)
u        sum_l blocks_l x NP, ``P*u_bits``  FE / BE
eps      as u, ``P*e_bits``                 BE / BE, WUE
g        P banks, as u, ``e_bits``          output unit, BE (``g_below``) / BE
w        sum_l blocks_l x n_in_l            host, WUE / FE, WUE, mirror, host
wb       P banks, sum_l n_out_l x S         mirror / BE
pred     B, 8 bits                          output unit / host
=======  =================================  ===========================================

**Host operations** (``START op``): ``op & 0x7f`` = 1 train step, 2 inference step, 3 mirror every
layer (after the host wrote weights), 4 clear the counters, 5 set the mode (bit 7: pipelining on;
the reset value is ``hw.pipeline``); for steps, bit 7 selects the input buffer. One step
may be queued while another runs. ``WAIT 0`` waits until everything is idle; ``WAIT 1``/``WAIT 2``
until input buffer 0/1 may be rewritten (no queued, running or updating step still reads it).
Weights may be written or read only while idle. The counters are listed in :data:`COUNTERS`.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.model.config import Config

from .backward import BackwardEngine
from .forward import ForwardEngine
from .host import HostBridge, MemTarget
from .layout import EngineLayout
from .mirror import WeightMirror
from .outgrad import OutputUnit
from .params import DEFAULT_HW, HwParams
from .wupdate import WeightUpdateEngine

__all__ = ["Accelerator", "OP_TRAIN", "OP_INFER", "OP_SYNC", "OP_CLEAR", "OP_MODE", "BUFFER_BIT",
           "counter_names", "verilog_units"]

OP_TRAIN, OP_INFER, OP_SYNC, OP_CLEAR, OP_MODE = 1, 2, 3, 4, 5
BUFFER_BIT = 0x80

ENGINE_COUNTERS = [
    "active_cycles", "steps", "fe_busy", "out_busy", "be_busy", "wue_busy", "mirror_busy",
    "fe_x_reads", "fe_w_reads", "fe_writes",
    "wue_x_reads", "wue_eps_reads", "wue_w_reads", "wue_w_writes",
    "be_u_reads", "be_g_reads", "be_eps_reads", "be_eps_writes", "be_w_reads", "be_g_writes",
    "mirror_reads", "mirror_writes", "out_reads", "out_writes",
]


def counter_names(cfg, hw=None):
    """Names of the counters, in the order ``COUNT`` returns them."""
    if hw is not None and not hw.counters:
        return ["active_cycles", "steps"]
    L = cfg.n_layers
    return (ENGINE_COUNTERS + [f"spikes{l}" for l in range(L)] +
            [f"eps_nonzero{l}" for l in range(L)])


def _cdiv(a, b):
    return -(-a // b)


def _popcount(value, width):
    total = Const(0, 1)
    for i in range(width):
        total = total + value[i]
    return total


class Accelerator(wiring.Component):
    """The whole training accelerator behind a host byte stream.

    Parameters
    ----------
    cfg : Config
    hw : HwParams
        ``fe_pes``, ``wue_pes`` and ``be_pes`` must be equal (the engines share memory words).

    Members
    -------
    rx : In(stream.Signature(8))
        Host command bytes.
    tx : Out(stream.Signature(8))
        Reply bytes.
    """

    def __init__(self, cfg, hw=DEFAULT_HW):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, got {type(cfg).__name__}")
        if not isinstance(hw, HwParams):
            raise TypeError(f"hw must be HwParams, got {type(hw).__name__}")
        self.cfg, self.hw = cfg.validate(), hw.validate()
        if not hw.fe_pes == hw.wue_pes == hw.be_pes:
            raise ValueError(f"the accelerator needs fe_pes == wue_pes == be_pes (shared memory "
                             f"words), got {hw.fe_pes}, {hw.wue_pes}, {hw.be_pes}")
        if cfg.layers[-1] > 255:
            raise ValueError(f"at most 255 output classes (8-bit labels), got {cfg.layers[-1]}")
        P = self.P = hw.fe_pes
        self.layout = lay = EngineLayout(cfg, P)
        L = self.L = cfg.n_layers
        NP = self.NP = cfg.timesteps * cfg.batch
        self.SW = lay.spike_width
        self.S = lay.spike_width // P
        n = cfg.layers
        self.blocks = [_cdiv(n[l + 1], P) for l in range(L)]
        self.wbase, self.sbase, self.wbbase = [], [], []
        w_acc = s_acc = wb_acc = 0
        for l in range(L):
            self.wbase.append(w_acc)
            self.sbase.append(s_acc)
            self.wbbase.append(wb_acc)
            w_acc += self.blocks[l] * n[l]
            s_acc += self.blocks[l] * NP
            wb_acc += n[l + 1] * self.S
        self.w_depth, self.s_depth, self.wb_depth = w_acc, s_acc, wb_acc
        B = cfg.batch
        self.targets = [MemTarget("x", 2 * NP, self.SW), MemTarget("labels", 2 * max(B, 2), 8),
                        MemTarget("w", self.w_depth, P * cfg.w_bits),
                        MemTarget("pred", max(B, 2), 8)]
        self.counters = counter_names(cfg, hw)
        self.fe = ForwardEngine(cfg, hw)
        self.wue = WeightUpdateEngine(cfg, hw)
        self.be = BackwardEngine(cfg, hw)
        self.out = OutputUnit(cfg, P, self.SW, NP, self.blocks[-1] * NP)
        self.mirror = WeightMirror(cfg, P, lay.weight_depth, lay.n_out_max * self.S + P)
        self.bridge = HostBridge(self.targets, len(self.counters), n_conditions=2)
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8))})

    # ---- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _table(values, width=None):
        width = width or max(1, max(int(v) for v in values).bit_length())
        return Array(Const(int(v), width) for v in values)

    def elaborate(self, platform):
        m = Module()
        cfg, hw, P, L, NP, S, SW = self.cfg, self.hw, self.P, self.L, self.NP, self.S, self.SW
        B = cfg.batch
        n = cfg.layers
        fe, wue, be, out, mir, br = self.fe, self.wue, self.be, self.out, self.mirror, self.bridge
        for name in ("fe", "wue", "be", "out", "mirror", "bridge"):
            m.submodules[name] = getattr(self, name)
        wiring.connect(m, wiring.flipped(self.rx), br.rx)
        wiring.connect(m, br.tx, wiring.flipped(self.tx))

        # ---- memories ---------------------------------------------------------------------------
        self.memories = {}                      # by name, for simulation introspection

        def mem(name, width, depth):
            memory = Memory(shape=width, depth=max(depth, 2), init=[])
            m.submodules[f"mem_{name}"] = memory
            self.memories[name] = memory
            return memory

        x_mem = mem("x", SW, 2 * NP)
        lab_mem = mem("labels", 8, 2 * max(B, 2))
        pred_mem = mem("pred", 8, max(B, 2))
        spk_mem = mem("spk", SW, L * NP)
        hb_mem = mem("hb", SW, max(1, L - 1) * NP)
        u_mem = mem("u", P * cfg.u_bits, self.s_depth)
        eps_mem = mem("eps", P * cfg.e_bits, self.s_depth)
        g_mems = [mem(f"g{q}", cfg.e_bits, self.s_depth) for q in range(P)]
        w_mem = mem("w", P * cfg.w_bits, self.w_depth)
        wb_mems = [mem(f"wb{q}", cfg.w_bits, self.wb_depth) for q in range(P)]

        # per-layer constants, indexed by a layer register
        n_in_t = self._table([n[l] for l in range(L)])
        n_out_t = self._table([n[l + 1] for l in range(L)])
        blocks_t = self._table(self.blocks)
        wbase_t = self._table(self.wbase + [0])
        sbase_t = self._table(self.sbase + [0])
        wbbase_t = self._table(self.wbbase + [0])

        # ---- controller state -------------------------------------------------------------------
        pending = Signal()
        pending_op = Signal(8)
        pipeline = Signal(init=int(hw.pipeline))

        # F thread (forward + output unit)
        f_active = Signal()
        f_train = Signal()
        f_buf = Signal()
        f_layer = Signal(range(max(L, 2)))
        f_nb = Signal(range(max(self.blocks) + 1))
        f_rem = Signal(range(max(n) + 1))         # neurons of the layer from block f_nb on
        f_woff = Signal(range(self.w_depth + 1))
        f_soff = Signal(range(self.s_depth + 1))
        # B thread (backward)
        b_active = Signal()
        b_start_req = Signal()
        b_buf = Signal()
        b_layer = Signal(range(max(L, 2)))
        be_done = Signal(L)                      # BE(l) finished for the step in the W thread
        # W thread (weight update)
        w_active = Signal()
        w_buf = Signal()
        w_layer = Signal(range(max(L, 2)))
        w_nb = Signal(range(max(self.blocks) + 1))
        w_rem = Signal(range(max(n) + 1))
        w_woff = Signal(range(self.w_depth + 1))
        w_soff = Signal(range(self.s_depth + 1))
        owed = Signal()                          # a training step's layer-0 update is unfinished
        owed_buf = Signal()
        w0_blocks = Signal(range(max(self.blocks) + 1))
        # M thread (mirror)
        m_req = Signal(L)                        # layers whose BE copy is stale
        m_active = Signal()
        m_layer = Signal(range(max(L, 2)))

        any_busy = pending | f_active | b_active | w_active | owed | (m_req != 0) | m_active
        m.d.comb += br.busy.eq(any_busy)
        for buf in range(2):
            # a new step may only be queued into an empty slot, hence ``pending`` for both
            in_use = pending | (f_active & (f_buf == buf)) | (owed & (owed_buf == buf))
            m.d.comb += br.wait_ok[buf].eq(~in_use)

        # ---- host command decoding ----------------------------------------------------------------
        clear = Signal()
        m_set = Signal(L)                        # mirror requests raised this cycle
        m_clr = Signal(L)                        # and taken this cycle
        m.d.sync += m_req.eq((m_req | m_set) & ~m_clr)
        w_done = Signal(L)                       # WUE(l) finished for the step in the W thread
        with m.If(br.start):
            with m.Switch(br.op & 0x7F):
                with m.Case(OP_TRAIN, OP_INFER):
                    m.d.sync += [pending.eq(1), pending_op.eq(br.op)]
                with m.Case(OP_SYNC):
                    m.d.comb += m_set.eq((1 << L) - 1)
                with m.Case(OP_CLEAR):
                    m.d.comb += clear.eq(1)
                with m.Case(OP_MODE):
                    m.d.sync += pipeline.eq(br.op[7])

        # ---- F thread ---------------------------------------------------------------------------
        # FE(l, nb) may run when (pipelined) the weights of block nb are final, or (sequential)
        # when every other thread is idle
        w_final = Signal()
        m.d.comb += w_final.eq(Mux(f_layer == 0, ~owed | (f_nb < w0_blocks), ~owed))
        seq_idle = ~(b_active | w_active | owed | (m_req != 0) | m_active)
        fe_n_out = Mux(f_rem > P, P, f_rem)
        with m.FSM(name="f_fsm"):
            with m.State("IDLE"):
                with m.If(pending & (pipeline | seq_idle)):
                    m.d.sync += [pending.eq(0), f_active.eq(1),
                                 f_train.eq((pending_op & 0x7F) == OP_TRAIN),
                                 f_buf.eq(pending_op[7]), f_layer.eq(0), f_nb.eq(0),
                                 f_rem.eq(n[1]), f_woff.eq(0), f_soff.eq(0)]
                    m.next = "FE_GATE"
            with m.State("FE_GATE"):
                with m.If(w_final):
                    m.d.comb += fe.start.eq(1)
                    m.next = "FE_RUN"
            with m.State("FE_RUN"):
                with m.If(fe.done):
                    with m.If(f_rem > P):
                        m.d.sync += [f_nb.eq(f_nb + 1), f_rem.eq(f_rem - P),
                                     f_woff.eq(f_woff + n_in_t[f_layer]), f_soff.eq(f_soff + NP)]
                        m.next = "FE_GATE"
                    with m.Elif(f_layer != L - 1):
                        m.d.sync += [f_layer.eq(f_layer + 1), f_nb.eq(0),
                                     f_rem.eq(n_out_t[f_layer + 1]),
                                     f_woff.eq(wbase_t[f_layer + 1]),
                                     f_soff.eq(sbase_t[f_layer + 1])]
                        m.next = "FE_GATE"
                    with m.Else():
                        m.next = "OUT_START"
            with m.State("OUT_START"):
                # the output gradient overwrites g of the last layer: the previous BE must be done
                with m.If(~b_active):
                    m.d.comb += out.start.eq(1)
                    m.next = "OUT_RUN"
            with m.State("OUT_RUN"):
                with m.If(out.done):
                    m.next = "HANDOFF"
            with m.State("HANDOFF"):
                with m.If(~f_train):
                    m.d.sync += f_active.eq(0)
                    m.next = "IDLE"
                with m.Elif(~b_active & ~w_active & ~owed):
                    m.d.sync += [f_active.eq(0), b_start_req.eq(1), b_buf.eq(f_buf),
                                 owed.eq(1), owed_buf.eq(f_buf), w0_blocks.eq(0),
                                 be_done.eq(0), w_done.eq(0)]
                    m.next = "IDLE"
        m.d.comb += [fe.n_in.eq(n_in_t[f_layer]), fe.n_out.eq(fe_n_out),
                     out.train.eq(f_train)]

        # ---- B thread ---------------------------------------------------------------------------
        with m.FSM(name="b_fsm"):
            with m.State("IDLE"):
                with m.If(b_start_req):
                    m.d.sync += [b_start_req.eq(0), b_active.eq(1), b_layer.eq(L - 1)]
                    m.next = "GATE"
            with m.State("GATE"):
                mirror_ready = ~m_req.bit_select(b_layer, 1) & ~(m_active & (m_layer == b_layer))
                # sequential: BE(l) only after WUE(l+1) and its mirror have finished
                above = b_layer + 1
                seq_ok = pipeline | (b_layer == L - 1) | (
                    w_done.bit_select(above, 1) & ~m_req.bit_select(above, 1) &
                    ~(m_active & (m_layer == above)))
                with m.If(mirror_ready & seq_ok):
                    m.d.comb += be.start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(be.done):
                    m.d.sync += be_done.eq(be_done | (1 << b_layer))
                    with m.If(b_layer == 0):
                        m.d.sync += b_active.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += b_layer.eq(b_layer - 1)
                        m.next = "GATE"
        m.d.comb += [be.n_out.eq(n_out_t[b_layer]), be.n_in.eq(n_in_t[b_layer]),
                     be.timesteps.eq(cfg.timesteps), be.batch.eq(B),
                     be.has_below.eq(b_layer != 0), be.sparse.eq(int(hw.be_sparse))]

        # ---- W thread ---------------------------------------------------------------------------
        wue_n_out = Mux(w_rem > P, P, w_rem)
        with m.FSM(name="w_fsm"):
            with m.State("IDLE"):
                with m.If(owed & ~w_active):
                    m.d.sync += [w_active.eq(1), w_buf.eq(owed_buf), w_layer.eq(L - 1),
                                 w_nb.eq(0), w_rem.eq(n[L]), w_woff.eq(self.wbase[L - 1]),
                                 w_soff.eq(self.sbase[L - 1])]
                    m.next = "GATE"
            with m.State("GATE"):
                with m.If(be_done.bit_select(w_layer, 1)):
                    m.d.comb += wue.start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(wue.done):
                    with m.If(w_layer == 0):
                        m.d.sync += w0_blocks.eq(w0_blocks + 1)
                    with m.If(w_rem > P):
                        m.d.sync += [w_nb.eq(w_nb + 1), w_rem.eq(w_rem - P),
                                     w_woff.eq(w_woff + n_in_t[w_layer]), w_soff.eq(w_soff + NP)]
                        m.next = "GATE"
                    with m.Else():
                        m.d.comb += m_set.eq(1 << w_layer)
                        m.d.sync += w_done.eq(w_done | (1 << w_layer))
                        with m.If(w_layer == 0):
                            m.d.sync += [w_active.eq(0), owed.eq(0)]
                            m.next = "IDLE"
                        with m.Else():
                            m.d.sync += [w_layer.eq(w_layer - 1), w_nb.eq(0),
                                         w_rem.eq(n_out_t[(w_layer - 1).as_unsigned()]),
                                         w_woff.eq(wbase_t[(w_layer - 1).as_unsigned()]),
                                         w_soff.eq(sbase_t[(w_layer - 1).as_unsigned()])]
                            m.next = "GATE"
        m.d.comb += [wue.n_in.eq(n_in_t[w_layer]), wue.n_out.eq(wue_n_out)]

        # ---- M thread ---------------------------------------------------------------------------
        with m.FSM(name="m_fsm"):
            with m.State("IDLE"):
                with m.If(m_req != 0):
                    # serve the highest requested layer first (the order the BE needs them)
                    for l in range(L):
                        with m.If(m_req[l]):
                            m.d.sync += m_layer.eq(l)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [mir.start.eq(1), m_clr.eq(1 << m_layer)]
                m.d.sync += m_active.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(mir.done):
                    m.d.sync += m_active.eq(0)
                    m.next = "IDLE"
        m.d.comb += [mir.n_in.eq(n_in_t[m_layer]), mir.n_out.eq(n_out_t[m_layer])]

        # ---- memory ports -----------------------------------------------------------------------
        # x: host write/read, FE(0) read, WUE(0) read
        wiring.connect(m, br.w_x, x_mem.write_port())
        # (the host cannot read x or labels back: each read port costs a block-RAM copy)
        x_fe, x_wue = x_mem.read_port(), x_mem.read_port()
        # the output unit runs only while the FE is idle: it shares the FE's read port
        spk_fe, spk_wue = spk_mem.read_port(), spk_mem.read_port()
        out_reads = out.busy
        m.d.comb += [
            x_fe.addr.eq(f_buf * NP + fe.x_rd.addr), x_fe.en.eq(fe.x_rd.en),
            spk_fe.addr.eq(Mux(out_reads, (L - 1) * NP + out.x_rd.addr,
                               (f_layer - 1) * NP + fe.x_rd.addr)),
            spk_fe.en.eq(Mux(out_reads, out.x_rd.en, fe.x_rd.en)),
            fe.x_rd.data.eq(Mux(f_layer == 0, x_fe.data, spk_fe.data)),
            x_wue.addr.eq(w_buf * NP + wue.x_rd.addr), x_wue.en.eq(wue.x_rd.en),
            spk_wue.addr.eq((w_layer - 1) * NP + wue.x_rd.addr), spk_wue.en.eq(wue.x_rd.en),
            wue.x_rd.data.eq(Mux(w_layer == 0, x_wue.data, spk_wue.data)),
            out.x_rd.data.eq(spk_fe.data),
        ]
        # labels and predictions
        wiring.connect(m, br.w_labels, lab_mem.write_port())
        lab_out = lab_mem.read_port()
        m.d.comb += [lab_out.addr.eq(f_buf * max(B, 2) + out.label_rd.addr),
                     lab_out.en.eq(out.label_rd.en), out.label_rd.data.eq(lab_out.data)]
        wiring.connect(m, out.pred_wr, pred_mem.write_port())
        wiring.connect(m, br.r_pred, pred_mem.read_port())
        # output spikes (granular by block) and the surrogate bits of hidden layers
        spk_wr = spk_mem.write_port(granularity=P)
        hb_wr = hb_mem.write_port(granularity=P)
        shifted_en = fe.o_wr.en << f_nb
        lanes = [fe.u_wr.data.word_select(q, cfg.u_bits).as_signed() for q in range(P)]
        h_bits = Cat(*[(lane > cfg.vth_int - cfg.half_window_int) &
                       (lane < cfg.vth_int + cfg.half_window_int) for lane in lanes])
        m.d.comb += [
            spk_wr.addr.eq(f_layer * NP + fe.o_wr.addr), spk_wr.data.eq(fe.o_wr.data),
            spk_wr.en.eq(shifted_en),
            hb_wr.addr.eq(f_layer * NP + fe.o_wr.addr), hb_wr.data.eq(Cat(*([h_bits] * S))),
            hb_wr.en.eq(Mux(f_layer < L - 1, shifted_en, 0)),
        ]
        hb_be = hb_mem.read_port()
        m.d.comb += [hb_be.addr.eq((b_layer - 1) * NP + be.hb_rd.addr), hb_be.en.eq(be.hb_rd.en),
                     be.hb_rd.data.eq(hb_be.data)]
        # membrane state
        u_wr = u_mem.write_port()
        u_be = u_mem.read_port()
        m.d.comb += [u_wr.addr.eq(f_soff + fe.u_wr.addr), u_wr.data.eq(fe.u_wr.data),
                     u_wr.en.eq(fe.u_wr.en),
                     u_be.addr.eq(sbase_t[b_layer] + be.u_rd.addr), u_be.en.eq(be.u_rd.en),
                     be.u_rd.data.eq(u_be.data)]
        # eps
        eps_wr = eps_mem.write_port()
        eps_be, eps_wue = eps_mem.read_port(), eps_mem.read_port()
        m.d.comb += [eps_wr.addr.eq(sbase_t[b_layer] + be.eps_wr.addr),
                     eps_wr.data.eq(be.eps_wr.data), eps_wr.en.eq(be.eps_wr.en),
                     eps_be.addr.eq(sbase_t[b_layer] + be.eps_rd.addr), eps_be.en.eq(be.eps_rd.en),
                     be.eps_rd.data.eq(eps_be.data),
                     eps_wue.addr.eq(w_soff + wue.eps_rd.addr), eps_wue.en.eq(wue.eps_rd.en),
                     wue.eps_rd.data.eq(eps_wue.data)]
        # gradient banks: the output unit writes whole words of the last layer, the BE writes
        # g_below lane by lane; the BE reads whole words
        g_reads = []
        for q, gm in enumerate(g_mems):
            wr, rd = gm.write_port(), gm.read_port()
            g_reads.append(rd)
            lane_out = out.g_wr.data.word_select(q, cfg.e_bits)
            with m.If(be.gb_wr[q].en):
                m.d.comb += [wr.addr.eq(sbase_t[(b_layer - 1).as_unsigned()] + be.gb_wr[q].addr),
                             wr.data.eq(be.gb_wr[q].data), wr.en.eq(1)]
            with m.Else():
                m.d.comb += [wr.addr.eq(self.sbase[L - 1] + out.g_wr.addr),
                             wr.data.eq(lane_out), wr.en.eq(out.g_wr.en)]
            m.d.comb += [rd.addr.eq(sbase_t[b_layer] + be.g_rd.addr), rd.en.eq(be.g_rd.en)]
        m.d.comb += be.g_rd.data.eq(Cat(*[rd.data for rd in g_reads]))
        # weights (FE/WUE layout): WUE or host write; FE, WUE, mirror and host read
        w_wr = w_mem.write_port()
        with m.If(wue.w_wr.en):
            m.d.comb += [w_wr.addr.eq(w_woff + wue.w_wr.addr), w_wr.data.eq(wue.w_wr.data),
                         w_wr.en.eq(1)]
        with m.Else():
            m.d.comb += [w_wr.addr.eq(br.w_w.addr), w_wr.data.eq(br.w_w.data),
                         w_wr.en.eq(br.w_w.en)]
        # the host reads weights only while idle: it shares the mirror's read port
        w_fe, w_wue, w_mir = w_mem.read_port(), w_mem.read_port(), w_mem.read_port()
        m.d.comb += br.r_w.data.eq(w_mir.data)
        m.d.comb += [w_fe.addr.eq(f_woff + fe.w_rd.addr), w_fe.en.eq(fe.w_rd.en),
                     fe.w_rd.data.eq(w_fe.data),
                     w_wue.addr.eq(w_woff + wue.w_rd.addr), w_wue.en.eq(wue.w_rd.en),
                     wue.w_rd.data.eq(w_wue.data),
                     w_mir.addr.eq(Mux(mir.busy, wbase_t[m_layer] + mir.w_rd.addr, br.r_w.addr)),
                     w_mir.en.eq(Mux(mir.busy, mir.w_rd.en, br.r_w.en)),
                     mir.w_rd.data.eq(w_mir.data)]
        # weight banks of the BE: mirror writes, BE reads
        for q, wm in enumerate(wb_mems):
            wr, rd = wm.write_port(), wm.read_port()
            m.d.comb += [wr.addr.eq(wbbase_t[m_layer] + mir.wb_wr[q].addr),
                         wr.data.eq(mir.wb_wr[q].data), wr.en.eq(mir.wb_wr[q].en),
                         rd.addr.eq(wbbase_t[b_layer] + be.w_rd[q].addr), rd.en.eq(be.w_rd[q].en),
                         be.w_rd[q].data.eq(rd.data)]

        # ---- counters ---------------------------------------------------------------------------
        events = {
            "active_cycles": any_busy, "steps": out.done,
            "fe_busy": fe.busy, "out_busy": out.busy, "be_busy": be.busy,
            "wue_busy": wue.busy, "mirror_busy": mir.busy,
            "fe_x_reads": fe.x_rd.en, "fe_w_reads": fe.w_rd.en, "fe_writes": fe.u_wr.en,
            "wue_x_reads": wue.x_rd.en, "wue_eps_reads": wue.eps_rd.en,
            "wue_w_reads": wue.w_rd.en, "wue_w_writes": wue.w_wr.en,
            "be_u_reads": be.u_rd.en, "be_g_reads": be.g_rd.en, "be_eps_reads": be.eps_rd.en,
            "be_eps_writes": be.eps_wr.en,
            "be_w_reads": _popcount(Cat(*[be.w_rd[q].en for q in range(P)]), P),
            "be_g_writes": _popcount(Cat(*[be.gb_wr[q].en for q in range(P)]), P),
            "mirror_reads": mir.w_rd.en,
            "mirror_writes": _popcount(Cat(*[mir.wb_wr[q].en for q in range(P)]), P),
            "out_reads": out.x_rd.en, "out_writes": out.g_wr.en,
        }
        spike_count = _popcount(fe.o_wr.data[:P], P)
        for l in range(L):
            events[f"spikes{l}"] = Mux(fe.u_wr.en & (f_layer == l), spike_count, 0)
            events[f"eps_nonzero{l}"] = Mux(be.nz_wr.en & (b_layer == l),
                                            _popcount(be.nz_wr.data, len(be.nz_wr.data)), 0)
        for index, name in enumerate(self.counters):
            counter = Signal(32, name=f"count_{name}")
            with m.If(clear):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + events[name])
            m.d.comb += br.counters[index].eq(counter)
        return m


def verilog_units(cfg):
    from spikeforge.hdl.params import DEFAULT_HW
    return [("sf_accelerator", Accelerator(cfg, DEFAULT_HW))]
