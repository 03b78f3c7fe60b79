"""The training job: epochs over the on-chip data set without the host.

With ``hw.data_samples > 0`` the accelerator holds a data set (``data``: a word per sample, its
intensities and its label; :attr:`~spikeforge.hdl.memmap.MemoryMap.data_word`) and two banks of
sample order (``order``). The host uploads the data set once, writes the job registers
(:class:`~spikeforge.hdl.protocol.JobReg`), loads the order of the first epochs and starts
:data:`~spikeforge.hdl.protocol.Op.JOB`. Then, for each epoch ``e``, this unit:

1. takes its order from bank ``e % 2``: a batch may start once the bank is loaded
   (:data:`~spikeforge.hdl.protocol.Op.ORDER`) or, while the host still streams it, once the
   entries of the batch are (each :data:`~spikeforge.hdl.protocol.Op.ORDER_PART` makes
   :data:`~spikeforge.hdl.protocol.ORDER_CHUNK` more entries usable), so the first epoch starts
   after the first chunk instead of the whole order;
2. for each batch of ``B`` consecutive entries of the order (``TRAIN_COUNT // B`` batches; the
   remainder is dropped, as in ``model/train.py``): waits for a free input buffer, encodes the
   samples into it with ``hw.encoder``, the deterministic rate code or the latency code of
   ``model/encode.py`` (a constant table of ``T * 2**value_bits`` bits,
   :meth:`~spikeforge.hdl.memmap.MemoryMap.encoder_table`), writes their
   labels and queues a TRAIN step, exactly as the host driver does;
3. frees the order bank (the host may load the order of epoch ``e + 2`` into it; its streamed
   entries count from 0 again), then infers the
   test samples ``TEST_BASE .. TEST_BASE + TEST_COUNT - 1`` in batches (the last one padded with
   silent samples, as the golden ``evaluate``), counts the predictions the output unit writes that
   equal the labels, and stores the count in ``acc[e]``.

The controller keeps its ordering (a step's forward pass waits for the previous step's weight
update), so the job trains bit for bit as the host would. While the job runs it owns the ``x``
and ``labels`` write ports; the top refuses host writes there (``Err.REFUSED``).

Cycle cost: a sample takes ``T + 2`` cycles to encode (order read, data read, ``T`` writes),
``B * (T + 2) + 3`` cycles a batch, hidden behind the running step.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from .design import require_design
from .memmap import addr_bits
from .protocol import BUFFER_BIT, JOB_EPOCHS_MAX, ORDER_CHUNK, Op

__all__ = ["TrainingJob"]


class TrainingJob(wiring.Component):
    """Runs the epochs of a training job (see the module docstring).

    Members
    -------
    start : In(1)
        Start the job (Op.JOB); ignored while one runs.
    order_set : In(2)
        Order bank ``k`` is loaded (Op.ORDER).
    order_part : In(2)
        ``ORDER_CHUNK`` more entries of order bank ``k`` are loaded (Op.ORDER_PART).
    order_fill0, order_fill1 : Out
        Entries of bank 0 / 1 usable by the job (streamed), ``D`` once the bank is loaded: the
        host may not rewrite them.
    train_count, test_base, test_count, epochs : In
        The job registers.
    active, waiting : Out(1)
        A job runs; it waits for the entries of an order bank (the accelerator idles once
        the steps already queued are done).
    order_free : Out(2)
        Order bank ``k`` may be rewritten by the host.
    epochs_done : Out(16)
    order_rd, data_rd : In(ReadPort.Signature)
        Order and data-set reads (data one cycle after ``en``).
    acc_wr : In(WritePort.Signature)
        The correct count of epoch ``e`` at ``e``.
    x_wr, lab_wr : In(WritePort.Signature)
        Input spikes and labels of the input buffers (the job's while ``active``).
    op_start, op : Out
        A TRAIN/INFER operation for the controller.
    hold : In(1)
        The host starts an operation this cycle: the job's waits.
    wait_ok : In(2)
        Input buffer ``k`` may be rewritten (from the controller).
    ctl_busy : In(1)
    f_buf : In(1)
        The buffer of the forward pass that the output unit is finishing.
    pred_en, pred_addr, pred_data : In
        The output unit's prediction writes (snooped).
    """

    def __init__(self, design):
        mm = require_design(design).memmap
        if not mm.has_data:
            raise ValueError("the training job needs an on-chip data set (hw.data_samples > 0)")
        self.design, self.memmap, self.cfg = design, mm, design.cfg
        D = mm.data_samples
        super().__init__({
            "start": In(1), "order_set": In(2), "order_part": In(2),
            "order_fill0": Out(range(D + 1)), "order_fill1": Out(range(D + 1)),
            "train_count": In(range(D + 1)), "test_base": In(range(D + 1)),
            "test_count": In(range(D + 1)), "epochs": In(range(JOB_EPOCHS_MAX + 1)),
            "active": Out(1), "waiting": Out(1), "order_free": Out(2), "epochs_done": Out(16),
            "order_rd": In(ReadPort.Signature(addr_width=addr_bits(2 * D), shape=mm.order_bits)),
            "data_rd": In(ReadPort.Signature(addr_width=addr_bits(D),
                                             shape=mm.data_word.width)),
            "acc_wr": In(WritePort.Signature(addr_width=addr_bits(JOB_EPOCHS_MAX),
                                             shape=mm.acc_bits)),
            "x_wr": In(WritePort.Signature(addr_width=addr_bits(mm.memories["x"].depth),
                                           shape=mm.memories["x"].width)),
            "lab_wr": In(WritePort.Signature(addr_width=addr_bits(mm.memories["labels"].depth),
                                             shape=8)),
            "op_start": Out(1), "op": Out(8), "hold": In(1), "wait_ok": In(2),
            "ctl_busy": In(1),
            "f_buf": In(1),
            "pred_en": In(1), "pred_addr": In(addr_bits(mm.memories["pred"].depth)),
            "pred_data": In(8),
        })

    def elaborate(self, platform):
        m = Module()
        mm = self.memmap
        T, B, NP, D = mm.T, mm.B, mm.NP, mm.data_samples
        n_in, vb = mm.layers[0], mm.value_bits
        xf, lf = mm.data_word["x"], mm.data_word["label"]

        epoch = Signal(range(JOB_EPOCHS_MAX + 1))
        bank = Signal()
        loaded = Signal(2)
        buf = Signal()
        testing = Signal()
        pos = Signal(range(D + B + 1))           # samples of the epoch (or test set) taken
        b = Signal(range(B + 1))
        t = Signal(range(T + 1))
        correct = Signal(mm.acc_bits)
        sample = Signal(mm.data_word.width)
        valid = Signal()
        m.d.comb += self.epochs_done.eq(epoch)

        # shadow labels of the test batches in flight, per input buffer
        sh_lab = Array(Array(Signal(mm.label_bits, name=f"sh_lab{k}_{i}") for i in range(B))
                       for k in range(2))
        sh_ok = Array(Array(Signal(name=f"sh_ok{k}_{i}") for i in range(B)) for k in range(2))
        sh_test = Array(Signal(name=f"sh_test{k}") for k in range(2))
        hit = Signal()
        m.d.comb += hit.eq(self.pred_en & sh_test[self.f_buf] &
                           sh_ok[self.f_buf][self.pred_addr] &
                           (self.pred_data == sh_lab[self.f_buf][self.pred_addr]))
        with m.If(hit):
            m.d.sync += correct.eq(correct + 1)

        # streamed entries per bank (cleared with the bank; a loaded bank is usable whole)
        fill = [Signal(range(D + 1), name=f"fill{k}") for k in range(2)]
        free_bank = Signal(2)
        for k_ in range(2):
            with m.If(free_bank[k_]):
                m.d.sync += [loaded[k_].eq(0), fill[k_].eq(0)]
            with m.Elif(self.order_set[k_]):
                m.d.sync += loaded[k_].eq(1)
            with m.Elif(self.order_part[k_] & (fill[k_] < D)):
                m.d.sync += fill[k_].eq(Mux(fill[k_] + ORDER_CHUNK > D, D,
                                            fill[k_] + ORDER_CHUNK))
        # a bank may be rewritten once it is neither loaded nor partly streamed
        m.d.comb += self.order_free.eq(Cat(*[~loaded[k_] & (fill[k_] == 0) for k_ in range(2)]))
        m.d.comb += [self.order_fill0.eq(Mux(loaded[0], D, fill[0])),
                     self.order_fill1.eq(Mux(loaded[1], D, fill[1]))]
        # the entries of the next batch are usable (a registered compare: ``pos`` moves only
        # in ISSUE and EPOCH, a cycle before BATCH looks at it)
        ready = Signal()
        m.d.sync += ready.eq(loaded.bit_select(bank, 1) |
                             (pos + B <= Mux(bank, fill[1], fill[0])))

        # the encoder (rate or latency code): one table bit per (t, v), the same function for
        # every input
        table = Const(mm.encoder_table(), T << vb)
        spikes = Cat(*[table.bit_select(Cat(sample[xf.offset + i * vb:xf.offset + (i + 1) * vb],
                                            t[:max(1, (T - 1).bit_length())]) if T > 1 else
                                        sample[xf.offset + i * vb:xf.offset + (i + 1) * vb], 1)
                       for i in range(n_in)])
        label = sample[lf.offset:lf.offset + lf.width]

        m.d.comb += [
            self.x_wr.addr.eq(buf * NP + t * B + b), self.x_wr.data.eq(Mux(valid, spikes, 0)),
            self.lab_wr.addr.eq(buf * mm.label_stride + b), self.lab_wr.data.eq(label),
            self.acc_wr.addr.eq(epoch), self.acc_wr.data.eq(correct),
            self.order_rd.addr.eq(bank * D + pos + b),
            self.data_rd.addr.eq(Mux(testing, self.test_base + pos + b, self.order_rd.data)),
        ]

        with m.FSM(name="job_fsm"):
            with m.State("IDLE"):
                with m.If(self.start & (self.epochs != 0)):
                    m.d.sync += [self.active.eq(1), epoch.eq(0), bank.eq(0), buf.eq(0),
                                 sh_test[0].eq(0), sh_test[1].eq(0)]
                    m.next = "EPOCH"
            with m.State("EPOCH"):
                m.d.sync += [pos.eq(0), testing.eq(0)]
                m.next = "SETTLE"
            with m.State("SETTLE"):
                # ``ready`` follows ``pos``
                m.next = "BATCH"
            with m.State("BATCH"):
                with m.If(~testing & (pos + B > self.train_count)):
                    # the epoch's training steps are queued: free the bank, infer the test set
                    m.d.comb += free_bank.eq(Mux(bank, 0b10, 0b01))
                    m.d.sync += [bank.eq(~bank), testing.eq(1), pos.eq(0), correct.eq(0)]
                with m.Elif(testing & (pos >= self.test_count)):
                    m.next = "DRAIN"
                with m.Elif(~testing & ~ready):
                    m.d.comb += self.waiting.eq(1)
                with m.Elif(self.wait_ok.bit_select(buf, 1)):
                    m.d.sync += [b.eq(0), sh_test[buf].eq(testing)]
                    m.next = "ORDER"
            with m.State("ORDER"):
                m.d.comb += self.order_rd.en.eq(~testing)
                m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += self.data_rd.en.eq(1)
                m.d.sync += [t.eq(0), valid.eq(~testing | (pos + b < self.test_count))]
                m.next = "LATCH"
            with m.State("LATCH"):
                m.d.sync += sample.eq(self.data_rd.data)
                m.next = "ENCODE"
            with m.State("ENCODE"):
                m.d.comb += self.x_wr.en.eq(1)
                with m.If(t == 0):
                    m.d.comb += self.lab_wr.en.eq(1)
                    m.d.sync += [sh_lab[buf][b].eq(label), sh_ok[buf][b].eq(valid)]
                m.d.sync += t.eq(t + 1)
                with m.If(t == T - 1):
                    m.d.sync += b.eq(b + 1)
                    with m.If(b == B - 1):
                        m.next = "ISSUE"
                    with m.Else():
                        m.next = "ORDER"
            with m.State("ISSUE"):
                m.d.comb += self.op.eq(Mux(testing, Op.INFER, Op.TRAIN) | Mux(buf, BUFFER_BIT, 0))
                with m.If(~self.hold):
                    m.d.comb += self.op_start.eq(1)
                    m.d.sync += [buf.eq(~buf), pos.eq(pos + B)]
                    m.next = "SETTLE"
            with m.State("DRAIN"):
                # every queued inference has written its predictions once the controller idles
                with m.If(~self.ctl_busy):
                    m.next = "RECORD"
            with m.State("RECORD"):
                m.d.comb += self.acc_wr.en.eq(1)
                m.d.sync += epoch.eq(epoch + 1)
                with m.If(epoch + 1 >= self.epochs):
                    m.d.sync += self.active.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "EPOCH"
        return m
