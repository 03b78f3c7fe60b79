"""Host driver of the training accelerator (:class:`spikeforge.hdl.top.Accelerator`).

Packs weights, spikes and labels into the accelerator's memory layouts, runs training and inference
steps, reads weights, predictions and counters back. Every size, base and layout comes from the
design's memory map (:mod:`spikeforge.hdl.memmap`). Transport-agnostic
(:mod:`spikeforge.sim.host.transports`): the same driver runs the Amaranth simulator, cocotb on the
generated Verilog, and a board over a serial port.
"""

import numpy as np

from spikeforge.hdl.protocol import BUFFER_BIT, JOB_EPOCHS_MAX, ORDER_CHUNK, JobReg, Op, Wait

from .protocol import Host, ProtocolError

__all__ = ["AcceleratorDriver"]


class AcceleratorDriver:
    """High-level operations; every method is a coroutine over the byte transport.

    Parameters
    ----------
    transport : object with async ``send(bytes)`` and ``recv(n)``
    design : Design
        The design the accelerator was built from.
    """

    def __init__(self, transport, design):
        self.design = design
        self.mm = design.memmap
        self.host = Host(transport, self.mm.host_targets)
        self.buf = 0

    async def connect(self):
        """Check with IDENT that the accelerator was built from this design (its key, memories
        and counters); raise :class:`ProtocolError` saying what to rebuild otherwise."""
        ident = await self.host.ident()
        if ident["key"] != self.design.key():
            raise ProtocolError(
                f"the accelerator was built from design {ident['key']}, this run needs "
                f"{self.design.key()} ({self.design}); program the bitstream that "
                f"`spikeforge synth` built with the same --board/--preset/--set/--hw, or pass "
                f"the same options here")
        if ident["memories"] != len(self.mm.host_targets) or \
                ident["counters"] != len(self.mm.counters):
            raise ProtocolError(f"the accelerator reports {ident['memories']} memories and "
                                f"{ident['counters']} counters, design {self.design.key()} has "
                                f"{len(self.mm.host_targets)} and {len(self.mm.counters)}")
        return ident

    def _matrices(self):
        """``(base, n_out, n_in)`` of every weight matrix in ``Network.weights`` order: ``W`` of
        each layer, then ``V`` of each recurrent layer."""
        mm = self.mm
        return [(mm.wbase[l], mm.n_out(l), mm.n_in(l)) for l in range(mm.L)] + \
            [(mm.vbase[l], mm.n_out(l), mm.n_out(l)) for l in mm.recurrent]

    async def load_weights(self, weights):
        """Write every weight matrix (int codes: ``W`` of each layer, then ``V`` of each
        recurrent layer, as ``Network.weights``)."""
        mm = self.mm
        shapes = self._matrices()
        if len(weights) != len(shapes):
            raise ProtocolError(f"the design has {len(shapes)} weight matrices, got "
                                f"{len(weights)}")
        for (base, _, _), w in zip(shapes, weights):
            words = mm.pack_matrix(np.asarray(w), mm.cfg.w_bits)
            await self.host.write("w", words, addr=base)
        await self.host.start(Op.SYNC)
        await self.host.wait(Wait.IDLE)

    async def read_weights(self):
        """Weights of every layer as int64 arrays (call when idle)."""
        mm = self.mm
        out = []
        for base, n_out, n_in in self._matrices():
            raw = await self.host.read("w", mm.matrix_words(n_out, n_in), addr=base)
            out.append(mm.unpack_matrix(raw, n_out, n_in, mm.cfg.w_bits))
        return out

    async def _stage(self, x, labels):
        """Wait for the next input buffer to be free, then write a batch into it."""
        mm = self.mm
        buf = self.buf
        await self.host.wait(Wait.BUFFER1 if buf else Wait.BUFFER0)
        await self.host.write("x", mm.pack_spikes(np.asarray(x)), addr=buf * mm.NP)
        if labels is not None:
            await self.host.write("labels", np.asarray(labels, dtype=np.int64),
                                  addr=buf * mm.label_stride)
        self.buf ^= 1
        return buf

    async def queue_train(self, x, labels):
        """Queue a training step on ``x`` (T, B, n_in) spikes; returns without waiting."""
        buf = await self._stage(x, labels)
        await self.host.start(Op.TRAIN | (BUFFER_BIT if buf else 0))

    async def train_step(self, x, labels):
        await self.queue_train(x, labels)
        await self.host.wait(Wait.IDLE)

    async def infer(self, x):
        """Predicted classes of one batch (forward pass and class read-out only)."""
        buf = await self._stage(x, None)
        await self.host.start(Op.INFER | (BUFFER_BIT if buf else 0))
        await self.host.wait(Wait.IDLE)
        return await self.host.read("pred", self.mm.B)

    async def forward(self, x):
        """Run the forward pass of one batch and read back what the backward pass needs:
        ``(predictions, states)``, ``states[l]`` a dict of int64 arrays of shape ``(T, B, n_l)``:
        ``o`` and ``h`` (spikes and surrogate bits), and ``u`` instead of ``h`` with the
        reset-path gradient (the accelerator's ``state`` target, read while idle)."""
        pred = await self.infer(x)
        return pred, await self.read_state()

    async def read_state(self):
        """The state of the last forward pass (see :meth:`forward`; call when idle)."""
        mm, cfg = self.mm, self.mm.cfg
        sb = mm.state_bits
        out = []
        for l in range(mm.L):
            raw = await self.host.read("state", mm.blocks[l] * mm.NP, addr=mm.sbase[l])
            lanes = mm.unpack_points(raw, mm.n_out(l), sb)       # signed lanes
            if cfg.reset_grad:
                out.append({"o": (lanes > cfg.vth_int).astype(np.int64), "u": lanes})
            else:                    # two unsigned bits per lane: o, then h
                out.append({"o": lanes & 1, "h": (lanes >> 1) & 1})
        return out

    async def wait(self):
        await self.host.wait(Wait.IDLE)

    async def counters(self):
        values = await self.host.counters(len(self.mm.counters))
        return dict(zip(self.mm.counters, values))

    async def set_pipeline(self, enabled):
        """Switch pipelining between the engines on or off (takes effect when idle)."""
        await self.host.wait(Wait.IDLE)
        await self.host.start(Op.MODE | (BUFFER_BIT if enabled else 0))

    async def clear_counters(self):
        await self.host.start(Op.CLEAR)

    # ---- the training job of the on-chip data set (designs with hw.data_samples > 0) -----------

    def _need_data(self):
        if not self.mm.has_data:
            raise ProtocolError(f"design {self.design.key()} has no on-chip data set; build one "
                                f"with --hw data_samples=N (the boards of `spikeforge synth` "
                                f"that train by themselves have it)")

    async def upload_dataset(self, x, y):
        """Write the intensities ``x`` (N, n_in) and labels ``y`` of every sample (training
        samples first, then test samples) into the data set (once; call when no job runs)."""
        self._need_data()
        words = self.mm.pack_samples(x, y)
        if len(words) > self.mm.data_samples:
            raise ProtocolError(f"{len(words)} samples do not fit the on-chip data set of "
                                f"{self.mm.data_samples}; rebuild with --hw data_samples="
                                f"{len(words)}")
        await self.host.write("data", words)

    async def load_order(self, bank, order, stream=False):
        """Wait until order bank ``bank`` is free, write ``order`` (data-set indices) into it and
        mark it loaded. ``stream``: in chunks of ``ORDER_CHUNK`` entries, each made usable
        (``Op.ORDER_PART``) as soon as it is written, so a running job starts training on the
        first chunk while the rest is still on the wire."""
        self._need_data()
        order = np.asarray(order, dtype=np.int64)
        D = self.mm.data_samples
        if len(order) > D or (order.size and (order.min() < 0 or order.max() >= D)):
            raise ProtocolError(f"an order holds at most {D} indices in 0..{D - 1}")
        await self.host.wait(Wait.ORDER1 if bank else Wait.ORDER0)
        sel = BUFFER_BIT if bank else 0
        if stream:
            for i in range(0, len(order), ORDER_CHUNK):
                chunk = order[i:i + ORDER_CHUNK]
                await self.host.write("order", chunk, addr=bank * D + i)
                if len(chunk) == ORDER_CHUNK:        # a shorter tail waits for ORDER below
                    await self.host.start(Op.ORDER_PART | sel)
        else:
            await self.host.write("order", order, addr=bank * D)
        await self.host.start(Op.ORDER | sel)

    async def start_job(self, train_count, test_base, test_count, epochs):
        self._need_data()
        D, B = self.mm.data_samples, self.mm.B
        if not B <= train_count <= D:
            raise ProtocolError(f"train_count must be in {B}..{D}, got {train_count}")
        if test_count < 0 or test_base < 0 or test_base + test_count > D:
            raise ProtocolError(f"test samples {test_base}..{test_base + test_count - 1} are "
                                f"outside the data set of {D}")
        if not 1 <= epochs <= JOB_EPOCHS_MAX:
            raise ProtocolError(f"a job runs 1..{JOB_EPOCHS_MAX} epochs, got {epochs}")
        await self.host.wait(Wait.JOB)
        for reg, value in ((JobReg.TRAIN_COUNT, train_count), (JobReg.TEST_BASE, test_base),
                           (JobReg.TEST_COUNT, test_count), (JobReg.EPOCHS, epochs)):
            await self.host.write("job", [value], addr=reg)
        await self.host.start(Op.JOB)

    async def job_status(self):
        status, = await self.host.read("job", 1, addr=JobReg.STATUS)
        return {"running": bool(status & 1), "waiting": bool(status & 2),
                "epochs_done": int(status) >> 16}

    async def job_accuracy(self, epochs):
        """Correct test predictions of each of the first ``epochs`` epochs of the last job."""
        return [int(v) for v in await self.host.read("acc", epochs)]

    async def run_job(self, orders, train_count, test_base, test_count, on_epoch=None,
                      after_start=None):
        """Run ``len(orders)`` epochs, one order each, loading each order while an earlier
        epoch trains; returns the correct test predictions per epoch. ``on_epoch(e)`` is awaited
        once epoch ``e``'s training steps are queued (its order bank came free), and at the end
        for the last two; ``after_start()`` right after the job started."""
        epochs = len(orders)
        # the job starts first and trains on epoch 0's order as its chunks arrive
        await self.start_job(train_count, test_base, test_count, epochs)
        await self.load_order(0, orders[0], stream=True)
        if after_start is not None:
            await after_start()
        # epoch 1's order loads while epoch 0 trains; epoch e's once epoch e - 2 freed its bank
        for e in range(1, epochs):
            await self.load_order(e % 2, orders[e])
            if on_epoch is not None and e >= 2:
                await on_epoch(e - 2)
        await self.host.wait(Wait.JOB)
        if on_epoch is not None:
            for e in range(max(0, epochs - 2), epochs):
                await on_epoch(e)
        return await self.job_accuracy(epochs)
