"""Host driver of the training accelerator (:class:`spikeforge.hdl.top.Accelerator`).

Packs weights, spikes and labels into the accelerator's memory layouts, runs training and inference
steps, reads weights, predictions and counters back. Transport-agnostic (see
:mod:`spikeforge.sim.host`): the same driver runs the Amaranth simulator, cocotb on the generated
Verilog, and a board over a serial port.
"""

import numpy as np

from spikeforge.hdl.layout import EngineLayout
from spikeforge.hdl.top import (BUFFER_BIT, OP_CLEAR, OP_INFER, OP_MODE, OP_SYNC, OP_TRAIN,
                                counter_names)

from .host import Host

__all__ = ["AcceleratorGeometry", "AcceleratorDriver"]


class AcceleratorGeometry:
    """Everything the host needs to know of an accelerator built for ``cfg`` and ``hw``, computed
    without elaborating it (the same figures :class:`Accelerator` uses)."""

    def __init__(self, cfg, hw):
        from spikeforge.hdl.host import MemTarget

        self.cfg, self.hw = cfg, hw
        P = self.P = hw.fe_pes
        self.layout = EngineLayout(cfg, P)
        self.L = cfg.n_layers
        self.NP = cfg.timesteps * cfg.batch
        n = cfg.layers
        blocks = [-(-n[l + 1] // P) for l in range(self.L)]
        self.wbase = [sum(blocks[k] * n[k] for k in range(l)) for l in range(self.L)]
        w_depth = sum(blocks[k] * n[k] for k in range(self.L))
        self.label_stride = max(cfg.batch, 2)
        self.targets = [MemTarget("x", 2 * self.NP, self.layout.spike_width),
                        MemTarget("labels", 2 * self.label_stride, 8),
                        MemTarget("w", w_depth, P * cfg.w_bits),
                        MemTarget("pred", self.label_stride, 8)]
        self.counters = counter_names(cfg, hw)


class AcceleratorDriver:
    """High-level operations; every method is a coroutine over the byte transport."""

    def __init__(self, transport, geometry):
        self.geo = geometry
        self.host = Host(transport, geometry.targets)
        self.buf = 0

    async def load_weights(self, weights):
        """Write every layer's weights (int codes) and refresh the Backward Engine's copy."""
        g = self.geo
        for l, w in enumerate(weights):
            words = g.layout.pack_matrix(np.asarray(w), g.cfg.w_bits)
            await self.host.write("w", words, addr=g.wbase[l])
        await self.host.start(OP_SYNC)
        await self.host.wait(0)

    async def read_weights(self):
        """Weights of every layer as int64 arrays (call when idle)."""
        g = self.geo
        out = []
        for l in range(g.L):
            n_in, n_out = g.cfg.layers[l], g.cfg.layers[l + 1]
            count = g.layout.matrix_words(n_out, n_in)
            raw = await self.host.read("w", count, addr=g.wbase[l])
            out.append(g.layout.unpack_matrix(raw, n_out, n_in, g.cfg.w_bits))
        return out

    async def _stage(self, x, labels):
        """Wait for the next input buffer to be free, then write a batch into it."""
        g = self.geo
        buf = self.buf
        await self.host.wait(1 + buf)
        await self.host.write("x", g.layout.pack_spikes(np.asarray(x)), addr=buf * g.NP)
        if labels is not None:
            await self.host.write("labels", np.asarray(labels, dtype=np.int64),
                                  addr=buf * g.label_stride)
        self.buf ^= 1
        return buf

    async def queue_train(self, x, labels):
        """Queue a training step on ``x`` (T, B, n_in) spikes; returns without waiting."""
        buf = await self._stage(x, labels)
        await self.host.start(OP_TRAIN | (BUFFER_BIT if buf else 0))

    async def train_step(self, x, labels):
        await self.queue_train(x, labels)
        await self.host.wait(0)

    async def infer(self, x):
        """Predicted classes of one batch (forward pass and class read-out only)."""
        buf = await self._stage(x, None)
        await self.host.start(OP_INFER | (BUFFER_BIT if buf else 0))
        await self.host.wait(0)
        return await self.host.read("pred", self.geo.cfg.batch)

    async def wait(self):
        await self.host.wait(0)

    async def counters(self):
        values = await self.host.counters(len(self.geo.counters))
        return dict(zip(self.geo.counters, values))

    async def set_pipeline(self, enabled):
        """Switch pipelining between the engines on or off (takes effect when idle)."""
        await self.host.wait(0)
        await self.host.start(OP_MODE | (BUFFER_BIT if enabled else 0))

    async def clear_counters(self):
        await self.host.start(OP_CLEAR)
