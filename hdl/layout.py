"""Memory layout shared by the Forward Engine, the Weight Update Engine and the host.

The engines keep no copy of weights, spikes, membrane states or gradients: they read and write
memories owned by whoever instantiates them (a test harness now, the accelerator top later) through
``lib.memory`` port interfaces. Every such memory has one of four layouts, sized for the largest
layer of the :class:`~spikeforge.model.config.Config` and a PE count ``P``. A *point* is one
(time step, sample) pair, ``p = t * B + b`` (``T * B`` points per training step). A *block* is
``P`` consecutive neurons of a layer, ``nb = i // P``; PE (lane) ``k`` of block ``nb`` is neuron
``i = nb * P + k``.

=========  =====================  ============================  ===================================
memory     word                   address                       holds
=========  =====================  ============================  ===================================
spikes     ``spike_width`` bits   ``p``                         bit ``i`` = spike of neuron ``i``
weights    P lanes x ``w_bits``   ``nb * n_in + j``             lane ``k`` = ``W[nb*P + k, j]``
state      P lanes x ``u_bits``   ``nb * T*B + p``              lane ``k`` = ``u[p, nb*P + k]``
eps        P lanes x ``e_bits``   ``nb * T*B + p``              lane ``k`` = ``eps[p, nb*P + k]``
dW         P lanes x acc bits     ``nb * n_in + j``             lane ``k`` = ``dW[nb*P + k, j]``
=========  =====================  ============================  ===================================

Lanes are packed little-end first (lane 0 in the low bits), each a two's complement field.
``n_in``/``n_out`` are the run-time dimensions of the layer being processed, so one memory of the
maximal size serves every layer (at different base addresses in the top). The spike memory is
written with a write granularity of ``P`` bits (one block at a time), so the output spikes of one
layer form, unchanged, the input spikes of the next.
"""

import numpy as np

__all__ = ["EngineLayout"]


def _cdiv(a, b):
    return -(-a // b)


class EngineLayout:
    """Sizes of the shared memories and host-side packing for ``cfg`` and ``pes`` lanes.

    Attributes
    ----------
    pes, points : int
        P and ``T * B``.
    n_in_max, n_out_max : int
        Largest fan-in and largest layer over the network.
    spike_width, spike_depth : int
    weight_depth, state_depth : int
        Depths of the weights/dW memories and of the state/eps memories.
    """

    def __init__(self, cfg, pes):
        if not isinstance(pes, int) or pes < 1:
            raise ValueError(f"pes must be a positive int, got {pes!r}")
        self.cfg = cfg
        self.pes = pes
        self.points = cfg.timesteps * cfg.batch
        self.n_in_max = max(cfg.layers[:-1])
        self.n_out_max = max(cfg.layers[1:])
        n_max = max(cfg.layers)
        self.spike_width = _cdiv(n_max, pes) * pes
        self.out_blocks_max = _cdiv(self.n_out_max, pes)
        # depth >= 2 keeps every address port at least one bit wide
        self.spike_depth = max(self.points, 2)
        self.weight_depth = max(self.out_blocks_max * self.n_in_max, 2)
        self.state_depth = max(self.out_blocks_max * self.points, 2)

    # ---- host-side packing (numpy <-> memory words as Python ints) ------------------------------

    def pack_spikes(self, x):
        """``x`` (T, B, n) or (T*B, n) of 0/1 -> list of ``points`` words."""
        x = np.asarray(x).reshape(self.points, -1)
        words = []
        for row in x:
            bits = np.nonzero(row)[0]
            words.append(sum(1 << int(i) for i in bits))
        return words

    def unpack_spikes(self, words, n):
        """Words -> (T, B, n) int64 array of 0/1."""
        out = np.array([[(int(w) >> i) & 1 for i in range(n)] for w in words], dtype=np.int64)
        return out.reshape(self.cfg.timesteps, self.cfg.batch, n)

    def _pack_lanes(self, values, bits):
        mask = (1 << bits) - 1
        word = 0
        for k, v in enumerate(values):
            word |= (int(v) & mask) << (k * bits)
        return word

    def _unpack_lanes(self, word, bits):
        mask = (1 << bits) - 1
        vals = []
        for k in range(self.pes):
            v = (int(word) >> (k * bits)) & mask
            vals.append(v - (1 << bits) if v >> (bits - 1) else v)
        return vals

    def pack_matrix(self, w, bits):
        """``w`` (n_out, n_in) -> words at ``nb * n_in + j`` (weights or dW layout)."""
        w = np.asarray(w)
        n_out, n_in = w.shape
        words = []
        for nb in range(_cdiv(n_out, self.pes)):
            rows = w[nb * self.pes:(nb + 1) * self.pes]
            for j in range(n_in):
                words.append(self._pack_lanes(rows[:, j], bits))
        return words

    def unpack_matrix(self, words, n_out, n_in, bits):
        out = np.zeros((_cdiv(n_out, self.pes) * self.pes, n_in), dtype=np.int64)
        for addr, word in enumerate(words):
            nb, j = divmod(addr, n_in)
            out[nb * self.pes:(nb + 1) * self.pes, j] = self._unpack_lanes(word, bits)
        return out[:n_out]

    def pack_points(self, v, bits):
        """``v`` (T, B, n) -> words at ``nb * T*B + p`` (state or eps layout)."""
        v = np.asarray(v).reshape(self.points, -1)
        n = v.shape[1]
        words = []
        for nb in range(_cdiv(n, self.pes)):
            cols = v[:, nb * self.pes:(nb + 1) * self.pes]
            for p in range(self.points):
                words.append(self._pack_lanes(cols[p], bits))
        return words

    def unpack_points(self, words, n, bits):
        blocks = _cdiv(n, self.pes)
        out = np.zeros((self.points, blocks * self.pes), dtype=np.int64)
        for addr, word in enumerate(words):
            nb, p = divmod(addr, self.points)
            out[p, nb * self.pes:(nb + 1) * self.pes] = self._unpack_lanes(word, bits)
        return out[:, :n].reshape(self.cfg.timesteps, self.cfg.batch, n)

    def matrix_words(self, n_out, n_in):
        return _cdiv(n_out, self.pes) * n_in

    def point_words(self, n):
        return _cdiv(n, self.pes) * self.points
