"""Host driver of the training accelerator (:class:`spikeforge.hdl.top.Accelerator`).

Packs weights, spikes and labels into the accelerator's memory layouts, runs training and inference
steps, reads weights, predictions and counters back. Every size, base and layout comes from the
design's memory map (:mod:`spikeforge.hdl.memmap`). Transport-agnostic
(:mod:`spikeforge.sim.host.transports`): the same driver runs the Amaranth simulator, cocotb on the
generated Verilog, and a board over a serial port.
"""

import numpy as np

from spikeforge.hdl.protocol import BUFFER_BIT, Op, Wait

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

    async def load_weights(self, weights):
        """Write every layer's weights (int codes) and refresh the Backward Engine's copy."""
        mm = self.mm
        for l, w in enumerate(weights):
            words = mm.pack_matrix(np.asarray(w), mm.cfg.w_bits)
            await self.host.write("w", words, addr=mm.wbase[l])
        await self.host.start(Op.SYNC)
        await self.host.wait(Wait.IDLE)

    async def read_weights(self):
        """Weights of every layer as int64 arrays (call when idle)."""
        mm = self.mm
        out = []
        for l in range(mm.L):
            n_in, n_out = mm.n_in(l), mm.n_out(l)
            raw = await self.host.read("w", mm.matrix_words(n_out, n_in), addr=mm.wbase[l])
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
