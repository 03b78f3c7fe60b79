"""The controller of the training accelerator: three threads that start the engines in order.

The accelerator (:mod:`spikeforge.hdl.top`) holds the memories and the wiring; this Component
decides *when* each engine runs and on which layer and block, from the host's START operations
(:class:`~spikeforge.hdl.protocol.Op`) and the engines' ``done`` pulses. It owns no memory.

**Training step** (a batch of ``B`` samples, ``T`` steps each) for layers ``l = 0 .. L-1``::

    FE(0) .. FE(L-1) -> OUT (counts, prediction, output gradient)
      -> BE(L-1) -> WUE(L-1) -> BE(L-2) -> WUE(L-2) -> ... -> BE(0) -> WUE(0)

The Forward and Weight Update Engines run one block of ``P`` output neurons per run, so the
controller knows block by block when weights are final.

**Pipelining** (``pipeline``, reset value ``hw.pipeline``, set by ``Op.MODE``). Four threads run
concurrently and wait only for their data (the Backward Engine reads the one weight memory, so
no copy of the weights has to be refreshed):

- *F* (forward + output unit), step by step; FE(0) of step ``n+1`` starts block ``nb`` as soon as
  the WUE has written block ``nb`` of layer 0 for step ``n`` (it chases the update);
- *B* (backward): BE(l) once the gradient of layer ``l`` exists (the forward pass that made it
  ran after the previous step's updates, so ``W_l`` is final);
- *W* (weight update): WUE(l) per block once BE(l) is done, so WUE(1) overlaps BE(0); a BE
  that reads weights (l >= 1) waits for the WUE of the layer above, since the weights have one
  read port and the WUE holds it while updating.

**Recurrent hidden layers**: the FE runs such a layer in one run over every block (time step by
time step), so FE(0) of the next step waits for the whole update of a recurrent layer 0; a
recurrent BE(0) reads V and waits for WUE(1) like the others; the WUE makes a second pass per
block (``w_vrun``, weights at ``w_voff``) for ``dV``.

With pipelining off, each engine runs alone in the order above and step ``n+1`` starts after step
``n`` is complete, so the two modes are measured on the same hardware and data.

One step may be queued while another runs. ``Wait.IDLE`` holds when nothing is queued or running
(``busy`` low); ``Wait.BUFFER0``/``BUFFER1`` (``wait_ok[0]``/``[1]``) when no queued, running or
updating step still reads that input buffer.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .protocol import OP_MASK, Op

__all__ = ["Controller", "run_signature", "attach", "layer_table"]


def run_signature(**params):
    """An engine's run control seen from the controller: ``start`` out, ``done`` in, the run
    parameters ``params`` out."""
    return wiring.Signature({"start": Out(1), "done": In(1), **params})


def attach(m, port, engine):
    """Join the controller's ``port`` (a :func:`run_signature` interface) to the engine's
    members of the same names."""
    for name, member in port.signature.members.items():
        if member.flow == Out:
            m.d.comb += getattr(engine, name).eq(getattr(port, name))
        else:
            m.d.comb += getattr(port, name).eq(getattr(engine, name))


def layer_table(values, width=None):
    """Constants indexed by a layer register (an ``Array`` of ``Const``)."""
    width = width or max(1, max(int(v) for v in values).bit_length())
    return Array(Const(int(v), width) for v in values)


class Controller(wiring.Component):
    """Starts the engines of the accelerator in order (see the module docstring).

    Parameters
    ----------
    design : Design
        Layer sizes, bases and blocks from ``design.memmap``.

    Members
    -------
    start : In(1)
        START pulse from the host bridge, ``op`` valid with it.
    op : In(8)
    busy : Out(1)
        Something is queued or running.
    wait_ok : Out(2)
        Input buffer 0 / 1 may be rewritten.
    clear : Out(1)
        Pulse: clear the counters.
    fe, out, be, wue : Out(run_signature(...))
        Run control of each engine (``start``/``done`` and its run parameters).
    f_buf, f_layer, f_nb, f_woff, f_soff : Out
        F thread: input buffer, layer, block, weight and state offsets of the FE's run.
    b_layer : Out
        B thread: the BE's layer.
    w_buf, w_layer, w_woff, w_soff : Out
        W thread: input buffer, layer, weight and state offsets of the WUE's run.
    """

    def __init__(self, design):
        self.design, self.cfg, self.hw = design, design.cfg, design.hw
        self.memmap = mm = design.memmap
        nr = range(mm.n_max + 1)
        layer = range(max(mm.L, 2))
        blocks = range(max(mm.blocks) + 1)
        # recurrent hidden layers: the FE and BE are told the layer is recurrent, the FE reads
        # V at f_voff, the WUE runs a second pass per block (w_vrun) for dV
        rec = {"rec": Out(1)} if mm.has_rec else {}
        rec_ports = {"f_voff": Out(range(mm.w_depth + 1)), "w_vrun": Out(1),
                     "w_voff": Out(range(mm.w_depth + 1))} if mm.has_rec else {}
        super().__init__({
            "start": In(1), "op": In(8), "busy": Out(1), "wait_ok": Out(2), "clear": Out(1),
            "fe": Out(run_signature(n_in=Out(nr), n_out=Out(nr), **rec)),
            "out": Out(run_signature(train=Out(1))),
            "be": Out(run_signature(n_in=Out(nr), n_out=Out(nr), timesteps=Out(range(mm.T + 1)),
                                    batch=Out(range(mm.B + 1)), has_below=Out(1),
                                    sparse=Out(1), **rec)),
            **rec_ports,
            "wue": Out(run_signature(n_in=Out(nr), n_out=Out(nr))),
            "f_buf": Out(1), "f_layer": Out(layer), "f_nb": Out(blocks),
            "f_woff": Out(range(mm.w_depth + 1)), "f_soff": Out(range(mm.s_depth + 1)),
            "b_layer": Out(layer),
            "w_buf": Out(1), "w_layer": Out(layer),
            "w_woff": Out(range(mm.w_depth + 1)), "w_soff": Out(range(mm.s_depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, hw, mm = self.cfg, self.hw, self.memmap
        P, L, NP, n = mm.P, mm.L, mm.NP, mm.layers

        # per-layer constants, indexed by a layer register
        n_in_t = layer_table([n[l] for l in range(L)])
        n_out_t = layer_table([n[l + 1] for l in range(L)])
        wbase_t = layer_table(mm.wbase + [0])
        sbase_t = layer_table(mm.sbase + [0])
        rec_hw = mm.has_rec
        if rec_hw:
            rec_t = layer_table([int(l in mm.recurrent) for l in range(L)] + [0], 1)
            vbase_t = layer_table(mm.vbase + [0])

        # ---- controller state -------------------------------------------------------------------
        pending = Signal()
        pending_op = Signal(8)
        pipeline = Signal(init=int(hw.pipeline))

        # F thread (forward + output unit)
        f_active = Signal()
        f_train = Signal()
        f_buf = self.f_buf
        f_layer = self.f_layer
        f_nb = self.f_nb
        f_rem = Signal(range(max(n) + 1))         # neurons of the layer from block f_nb on
        f_woff = self.f_woff
        f_soff = self.f_soff
        # B thread (backward)
        b_active = Signal()
        b_start_req = Signal()
        b_buf = Signal()
        b_layer = self.b_layer
        be_done = Signal(L)                      # BE(l) finished for the step in the W thread
        # W thread (weight update)
        w_active = Signal()
        w_buf = self.w_buf
        w_layer = self.w_layer
        w_nb = Signal(range(max(mm.blocks) + 1))
        w_rem = Signal(range(max(n) + 1))
        w_woff = self.w_woff
        w_soff = self.w_soff
        owed = Signal()                          # a training step's layer-0 update is unfinished
        owed_buf = Signal()
        w0_blocks = Signal(range(max(mm.blocks) + 1))
        any_busy = pending | f_active | b_active | w_active | owed
        m.d.comb += self.busy.eq(any_busy)
        for buf in range(2):
            # a new step may only be queued into an empty slot, hence ``pending`` for both
            in_use = pending | (f_active & (f_buf == buf)) | (owed & (owed_buf == buf))
            m.d.comb += self.wait_ok[buf].eq(~in_use)

        # ---- host command decoding ----------------------------------------------------------------
        clear = self.clear
        w_done = Signal(L)                       # WUE(l) finished for the step in the W thread
        with m.If(self.start):
            with m.Switch(self.op & OP_MASK):
                with m.Case(Op.TRAIN, Op.INFER):
                    m.d.sync += [pending.eq(1), pending_op.eq(self.op)]
                with m.Case(Op.SYNC):
                    pass                # no weight copy to refresh: accepted for older hosts
                with m.Case(Op.CLEAR):
                    m.d.comb += clear.eq(1)
                with m.Case(Op.MODE):
                    m.d.sync += pipeline.eq(self.op[7])

        # ---- F thread ---------------------------------------------------------------------------
        # FE(l, nb) may run when (pipelined) the weights of block nb are final, or (sequential)
        # when every other thread is idle
        w_final = Signal()
        if rec_hw and 0 in mm.recurrent:
            # a recurrent layer 0 runs every block in one run: it waits for the whole update
            m.d.comb += w_final.eq(~owed)
        else:
            m.d.comb += w_final.eq(Mux(f_layer == 0, ~owed | (f_nb < w0_blocks), ~owed))
        seq_idle = ~(b_active | w_active | owed)
        fe_n_out = Mux(f_rem > P, P, f_rem)
        if rec_hw:
            # a recurrent layer's run covers the whole layer, time step by time step
            fe_n_out = Mux(rec_t[f_layer], f_rem, fe_n_out)
            f_more = (f_rem > P) & ~rec_t[f_layer]
        else:
            f_more = f_rem > P
        with m.FSM(name="f_fsm"):
            with m.State("IDLE"):
                with m.If(pending & (pipeline | seq_idle)):
                    m.d.sync += [pending.eq(0), f_active.eq(1),
                                 f_train.eq((pending_op & OP_MASK) == Op.TRAIN),
                                 f_buf.eq(pending_op[7]), f_layer.eq(0), f_nb.eq(0),
                                 f_rem.eq(n[1]), f_woff.eq(0), f_soff.eq(0)]
                    m.next = "FE_GATE"
            with m.State("FE_GATE"):
                with m.If(w_final):
                    m.d.comb += self.fe.start.eq(1)
                    m.next = "FE_RUN"
            with m.State("FE_RUN"):
                with m.If(self.fe.done):
                    with m.If(f_more):
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
                    m.d.comb += self.out.start.eq(1)
                    m.next = "OUT_RUN"
            with m.State("OUT_RUN"):
                with m.If(self.out.done):
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
        m.d.comb += [self.fe.n_in.eq(n_in_t[f_layer]), self.fe.n_out.eq(fe_n_out),
                     self.out.train.eq(f_train)]
        if rec_hw:
            m.d.comb += [self.fe.rec.eq(rec_t[f_layer]), self.f_voff.eq(vbase_t[f_layer])]

        # ---- B thread ---------------------------------------------------------------------------
        with m.FSM(name="b_fsm"):
            with m.State("IDLE"):
                with m.If(b_start_req):
                    m.d.sync += [b_start_req.eq(0), b_active.eq(1), b_layer.eq(L - 1)]
                    m.next = "GATE"
            with m.State("GATE"):
                # BE(l) only after WUE(l+1) has finished: always when sequential; pipelined
                # when BE(l) reads weights (l >= 1: the weights have one read port, and the WUE
                # has it while it updates), so only BE(0) overlaps WUE(1)
                above = b_layer + 1
                # (a recurrent BE(0) reads V: it waits too)
                overlap = (b_layer == 0) & ~rec_t[0] if rec_hw and 0 in mm.recurrent else \
                    (b_layer == 0)
                seq_ok = ((pipeline & overlap) | (b_layer == L - 1) |
                          w_done.bit_select(above, 1))
                with m.If(seq_ok):
                    m.d.comb += self.be.start.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(self.be.done):
                    m.d.sync += be_done.eq(be_done | (1 << b_layer))
                    with m.If(b_layer == 0):
                        m.d.sync += b_active.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += b_layer.eq(b_layer - 1)
                        m.next = "GATE"
        m.d.comb += [self.be.n_out.eq(n_out_t[b_layer]), self.be.n_in.eq(n_in_t[b_layer]),
                     self.be.timesteps.eq(cfg.timesteps), self.be.batch.eq(cfg.batch),
                     self.be.has_below.eq(b_layer != 0), self.be.sparse.eq(int(hw.be_sparse))]
        if rec_hw:
            m.d.comb += self.be.rec.eq(rec_t[b_layer])

        # ---- W thread ---------------------------------------------------------------------------
        wue_n_out = Mux(w_rem > P, P, w_rem)
        with m.FSM(name="w_fsm"):
            with m.State("IDLE"):
                with m.If(owed & ~w_active):
                    m.d.sync += [w_active.eq(1), w_buf.eq(owed_buf), w_layer.eq(L - 1),
                                 w_nb.eq(0), w_rem.eq(n[L]), w_woff.eq(mm.wbase[L - 1]),
                                 w_soff.eq(mm.sbase[L - 1])]
                    if rec_hw:
                        m.d.sync += [self.w_vrun.eq(0), self.w_voff.eq(mm.vbase[L - 1])]
                    m.next = "GATE"
            with m.State("GATE"):
                with m.If(be_done.bit_select(w_layer, 1)):
                    m.d.comb += self.wue.start.eq(1)
                    m.next = "RUN"
            def block_done():
                """A block's update is complete: the next block, the next layer below, or the
                step's end."""
                with m.If(w_layer == 0):
                    m.d.sync += w0_blocks.eq(w0_blocks + 1)
                with m.If(w_rem > P):
                    m.d.sync += [w_nb.eq(w_nb + 1), w_rem.eq(w_rem - P),
                                 w_woff.eq(w_woff + n_in_t[w_layer]), w_soff.eq(w_soff + NP)]
                    m.next = "GATE"
                with m.Else():
                    m.d.sync += w_done.eq(w_done | (1 << w_layer))
                    with m.If(w_layer == 0):
                        m.d.sync += [w_active.eq(0), owed.eq(0)]
                        m.next = "IDLE"
                    with m.Else():
                        below = (w_layer - 1).as_unsigned()
                        m.d.sync += [w_layer.eq(w_layer - 1), w_nb.eq(0),
                                     w_rem.eq(n_out_t[below]), w_woff.eq(wbase_t[below]),
                                     w_soff.eq(sbase_t[below]),
                                     *([self.w_voff.eq(vbase_t[below])] if rec_hw else [])]
                        m.next = "GATE"

            with m.State("RUN"):
                with m.If(self.wue.done):
                    if rec_hw:
                        # a recurrent layer's block: the W pass, then the V pass (dV from the
                        # layer's own spikes of the step before)
                        with m.If(rec_t[w_layer] & ~self.w_vrun):
                            m.d.sync += self.w_vrun.eq(1)
                            m.next = "GATE"
                        with m.Else():
                            m.d.sync += [self.w_vrun.eq(0),
                                         self.w_voff.eq(self.w_voff + n_out_t[w_layer])]
                            block_done()
                    else:
                        block_done()
        if rec_hw:
            m.d.comb += [self.wue.n_in.eq(Mux(self.w_vrun, n_out_t[w_layer], n_in_t[w_layer])),
                         self.wue.n_out.eq(wue_n_out)]
        else:
            m.d.comb += [self.wue.n_in.eq(n_in_t[w_layer]), self.wue.n_out.eq(wue_n_out)]

        return m
