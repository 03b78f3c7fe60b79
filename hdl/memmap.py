"""The memory map of a design: every memory of the accelerator, its size, layout, regions and fields.

This is the one place where a size, a base address or a field width is computed. The engines
(``hdl/forward.py``, ``hdl/wupdate.py``, ``hdl/backward.py``, ``hdl/mirror.py``, ``hdl/outgrad.py``),
the top (``hdl/top.py``), the host driver and the harnesses (``sim/``), the benches, the energy model
and the report take a :class:`MemoryMap` (``design.memmap``) and read their figures from it.
Pure Python: no Amaranth import.

Terms. ``P`` = ``hw.pes`` lanes per word. A *point* is one (time step, sample) pair,
``p = t * B + b`` (``NP = T * B`` points per training step). A *block* is ``P`` consecutive
neurons of a layer, ``nb = i // P``; lane ``k`` of block ``nb`` is neuron ``i = nb * P + k``.
Lanes are packed little-end first (lane 0 in the low bits), each a two's complement field.
``S = ceil(max(layers) / P)`` blocks make a spike word of ``S * P`` bits.

Engine-side layouts (addresses an engine drives; the top adds a per-layer base):

=========  =====================  ============================  ===================================
memory     word                   address                       holds
=========  =====================  ============================  ===================================
spikes     ``spike_width`` bits   ``p``                         bit ``i`` = spike of neuron ``i``
weights    P lanes x ``w_bits``   ``nb * n_in + j``             lane ``k`` = ``W[nb*P + k, j]``
state      P x ``state_bits``     ``nb * NP + p``               lane ``k``: ``u[p, nb*P + k]`` (with
                                                                reset_grad) or its o and h bits
eps        P lanes x ``e_bits``   ``nb * NP + p``               lane ``k`` = ``eps[p, nb*P + k]``
dW         P lanes x acc bits     ``nb * n_in + j``             lane ``k`` = ``dW[nb*P + k, j]``
=========  =====================  ============================  ===================================

A recurrent hidden layer ``l`` (``cfg.recurrent``) keeps ``V`` in the weight layout with its own
``n_out`` outputs as inputs, at :attr:`MemoryMap.vbase` ``[l]`` after every ``W``; its Backward
Engine adds two memories, ``r`` (``V^T eps[t+1]``, the eps layout of the largest recurrent layer)
and ``hr`` (a second copy of ``hb``, read beside it).

Top-level memories (:attr:`MemoryMap.memories`): ``x`` (2 input buffers), ``labels``, ``pred``,
``spk`` (a region of ``NP`` words per layer), ``hb`` (surrogate bits of hidden layers), ``u``,
``eps``, ``g`` (``P`` banks) and ``w`` (one layout, read by the FE, the BE and the WUE: no second
copy); per-layer regions start at :attr:`MemoryMap.wbase` and :attr:`MemoryMap.sbase`. Host
targets, in the bridge's order: :attr:`MemoryMap.host_targets`.
"""

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["MemoryMap", "MemSpec", "HostTarget", "Field", "PackedWord", "addr_bits", "cdiv",
           "ENGINE_COUNTERS"]


def cdiv(a, b):
    return -(-a // b)


def addr_bits(depth):
    """Address bits of a memory of ``depth`` words (at least 1)."""
    return max(1, (depth - 1).bit_length())


def tail_split(depth):
    """Where a memory of ``depth`` words splits under ``hw.dist_spill``: at the power of two
    below it when the tail past it is at most an eighth of that (a 36-bit-wide block RAM holds
    512 words: 576 words would take twice the block RAM of 512); 0 (no split) otherwise, and
    below 256 words, where the block RAM is not the cost."""
    low = 1 << (depth.bit_length() - 1)
    if depth < 256 or low == depth or 8 * (depth - low) > low:
        return 0
    return low


def spills_whole(spec):
    """Whether ``hw.dist_spill`` puts a whole memory into distributed RAM: at most 256 words and
    8 Kbit (a block RAM per 36 bits of width would hold it at a quarter of its 18 Kbit or
    less; in 16 x 4-bit distributed RAMs it costs at most 128 of them per read port)."""
    return spec.depth <= 256 and spec.width * spec.depth <= 8192


def _spill(spec):
    if spills_whole(spec):
        return replace(spec, dist=True)
    # (the on-chip data set and its order keep one memory: the job's ports connect to them
    # whole, and their depths follow the data set, not the blocks)
    if spec.name in ("data", "order"):
        return spec
    return replace(spec, split=tail_split(spec.depth))


def bits_for(n):
    """Bits of an unsigned value in ``0 .. n - 1`` (at least 1)."""
    return addr_bits(n)


@dataclass(frozen=True)
class MemSpec:
    """One memory: ``depth`` words of ``width`` bits, ``banks`` identical memories side by side;
    ``holds`` says what for (the report prints it). ``split``: words ``0 .. split - 1`` in block
    RAM and the tail ``split .. depth - 1`` in distributed RAM (0: one memory; ``hw.dist_spill``,
    :func:`tail_split`); ``dist``: the whole memory in distributed RAM (:func:`spills_whole`)."""
    name: str
    width: int
    depth: int
    banks: int = 1
    holds: str = ""
    split: int = 0
    dist: bool = False

    @property
    def bits(self):
        """Bits allocated (every bank)."""
        return self.width * self.depth * self.banks


@dataclass(frozen=True)
class HostTarget:
    """A memory the host can reach through the bridge: ``depth`` words of ``width`` bits."""
    name: str
    depth: int
    width: int

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"memory target name must be an identifier, got {self.name!r}")
        if self.depth < 1 or self.width < 1:
            raise ValueError(f"memory target {self.name}: depth and width must be >= 1")

    @property
    def nbytes(self):
        return (self.width + 7) // 8

    @property
    def addr_width(self):
        return addr_bits(self.depth)


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int


class PackedWord:
    """A word made of named fields, packed low field first."""

    def __init__(self, *fields):
        out, offset = [], 0
        for name, width in fields:
            out.append(Field(name, offset, width))
            offset += width
        self.fields = {f.name: f for f in out}
        self.width = offset

    def __getitem__(self, name):
        return self.fields[name]

    def pack(self, **values):
        word = 0
        for name, value in values.items():
            f = self.fields[name]
            word |= (int(value) & ((1 << f.width) - 1)) << f.offset
        return word

    def unpack(self, word):
        return {f.name: (int(word) >> f.offset) & ((1 << f.width) - 1)
                for f in self.fields.values()}


ENGINE_COUNTERS = (
    "active_cycles", "steps", "fe_busy", "out_busy", "be_busy", "wue_busy",
    "fe_x_reads", "fe_w_reads", "fe_writes",
    "wue_x_reads", "wue_eps_reads", "wue_lookups", "wue_w_reads", "wue_w_writes",
    "be_u_reads", "be_g_reads", "be_eps_reads", "be_eps_writes", "be_w_reads", "be_g_writes",
    "out_reads", "out_writes",
)


class MemoryMap:
    """Every size, base and field width of a :class:`~spikeforge.hdl.design.Design`.

    Attributes
    ----------
    P, L, T, B, NP : int
        Lanes per word, weight layers, time steps, batch, points per step.
    layers : tuple of int
    S, spike_width : int
        Blocks per spike word and its width ``S * P``.
    blocks : list of int
        ``ceil(n_out / P)`` per weight layer.
    n_in_max, n_out_max, n_max, out_blocks_max : int
    spike_depth, weight_depth, state_depth : int
        Engine-side depths (one layer, the largest): spike words, weight/dW words, state/eps
        words.
    psum_depth, wgrad_acc_depth : int
        Depths of the Forward Engine's per-PE partial sums and of the Weight Update Engine's
        per-PE gradient accumulators.
    wbase, sbase : list of int
        Per-layer bases in the top's ``w`` and state (``u``/``eps``/``g``) memories.
    w_depth, s_depth : int
        Depths of those top memories.
    label_stride : int
        Words of one label/prediction buffer.
    be_list : PackedWord
        The Backward Engine's compressed-eps list entry: ``k`` (word index), ``mask`` (``P``
        non-zero bits), ``values`` (``P`` x ``e_bits``), ``wofs`` (``k * n_in``: where the
        weights of that word's neurons start in the layer's weight region).
    be_list_index_bits : int
        Bits of an entry's index within one point's list (``out_blocks_max`` entries at most).
    """

    def __init__(self, design):
        cfg, hw = design.cfg, design.hw
        self.design, self.cfg, self.hw = design, cfg, hw
        n = self.layers = tuple(cfg.layers)
        P = self.P = hw.pes
        L = self.L = cfg.n_layers
        self.T, self.B = cfg.timesteps, cfg.batch
        NP = self.NP = cfg.timesteps * cfg.batch
        self.n_in_max = max(n[:-1])
        self.n_out_max = max(n[1:])
        self.n_max = max(n)
        S = self.S = cdiv(self.n_max, P)
        self.spike_width = S * P
        self.blocks = [cdiv(n[l + 1], P) for l in range(L)]
        self.out_blocks_max = max(self.blocks)

        # recurrent hidden layers (cfg.recurrent): V (n_out x n_out) in a region of its own
        self.recurrent = tuple(cfg.recurrent)
        self.has_rec = bool(self.recurrent)
        # engine side (one layer at a time); depth >= 2 keeps every address port >= 1 bit wide
        self.spike_depth = max(NP, 2)
        self.weight_depth = max([self.out_blocks_max * self.n_in_max, 2] +
                                [self.blocks[l] * n[l + 1] for l in self.recurrent])
        self.state_depth = max(self.out_blocks_max * NP, 2)
        # the engines' own per-lane accumulator memories: the FE's partial sum of every point,
        # the WUE's dW of every input
        self.psum_depth = max(NP, 2)
        self.wgrad_acc_depth = max(self.n_in_max, 2)

        # top: per-layer regions
        self.wbase, self.sbase = [], []
        w_acc = s_acc = 0
        for l in range(L):
            self.wbase.append(w_acc)
            self.sbase.append(s_acc)
            w_acc += self.blocks[l] * n[l]
            s_acc += self.blocks[l] * NP
        # V of each recurrent layer after every W: word vbase + nb * n_out + k, lane q =
        # V[nb*P + q, k] (the W layout with the layer's own outputs as inputs); 0 for the others
        self.vbase = [0] * L
        for l in self.recurrent:
            self.vbase[l] = w_acc
            w_acc += self.blocks[l] * n[l + 1]
        self.w_depth, self.s_depth = w_acc, s_acc
        # the Backward Engine's V^T eps[t+1] terms of a recurrent layer (state layout, the
        # largest recurrent layer)
        self.r_depth = max([2] + [self.blocks[l] * NP for l in self.recurrent])
        self.label_stride = max(cfg.batch, 2)

        # Backward Engine: compressed-eps list entries (one point's list: out_blocks_max words)
        self.be_list_index_bits = bits_for(self.out_blocks_max)
        self.be_list = PackedWord(*(("k", self.be_list_index_bits), ("mask", P),
                                    ("values", P * cfg.e_bits),
                                    ("wofs", addr_bits(self.weight_depth))) +
                                  ((("vofs", addr_bits(self.weight_depth)),)
                                   if self.has_rec else ()))
        self.be_list_depth = 2 << self.be_list_index_bits

        # what the Backward Engine reads of a neuron's forward state: u itself only for the
        # reset-path gradient; otherwise its spike o (bit 0) and surrogate h (bit 1)
        self.state_bits = cfg.u_bits if cfg.reset_grad else 2
        hidden = max(1, L - 1)
        self.memories = {m.name: m for m in (
            MemSpec("x", n[0], max(2 * NP, 2),
                    holds="input spikes, 2 buffers (as wide as the input layer)"),
            MemSpec("labels", 8, 2 * self.label_stride, holds="labels, 2 buffers"),
            MemSpec("pred", 8, self.label_stride, holds="predicted classes"),
            MemSpec("spk", self.spike_width, max(L * NP, 2), holds="output spikes per layer"),
            MemSpec("hb", self.spike_width, max(hidden * NP, 2),
                    holds="surrogate bits of hidden layers"),
            MemSpec("u", P * self.state_bits, max(self.s_depth, 2),
                    holds="membrane u" if cfg.reset_grad else
                    "spike o and surrogate h (2 bits; u itself only with reset_grad)"),
            MemSpec("eps", P * cfg.e_bits, max(self.s_depth, 2), holds="eps"),
            MemSpec("g", P * cfg.e_bits, max(self.s_depth, 2),
                    holds="dL/do (a write enable per lane)"),
            MemSpec("w", P * cfg.w_bits, max(self.w_depth, 2),
                    holds="weights (one layout for the FE, BE and WUE)"),
        ) + ((MemSpec("r", P * cfg.e_bits, self.r_depth,
                      holds="V^T eps[t+1] of a recurrent layer (a write enable per lane)"),
              MemSpec("hr", self.spike_width, max(hidden * NP, 2),
                      holds="surrogate bits of hidden layers, the Backward Engine's second "
                            "read (a recurrent layer's own h at t-1)"))
             if self.has_rec else ())}
        self.learn = hw.learn
        if not hw.learn:            # inference only: no backward pass, no weight update
            for name in ("hb", "eps", "g", "r", "hr"):
                self.memories.pop(name, None)
        # on-chip data set (hw.data_samples > 0): a word per sample (intensities and label),
        # two banks of sample order, the correct test predictions of each epoch of a job
        self.data_samples = D = hw.data_samples
        self.has_data = D > 0
        self.value_bits = hw.data_vmax.bit_length()
        self.label_bits = bits_for(n[-1])
        self.data_word = PackedWord(("x", n[0] * self.value_bits), ("label", self.label_bits))
        self.order_bits = bits_for(max(D, 2))
        self.acc_bits = bits_for(D + 1)
        if self.has_data:
            from .protocol import JOB_EPOCHS_MAX
            self.memories.update({m.name: m for m in (
                MemSpec("data", self.data_word.width, D,
                        holds=f"on-chip data set: {n[0]} intensities of {self.value_bits} bits "
                              f"and a label per sample"),
                MemSpec("order", self.order_bits, 2 * D, holds="sample order, 2 banks"),
                MemSpec("acc", self.acc_bits, JOB_EPOCHS_MAX,
                        holds="correct test predictions per epoch of a job"),
            )})
        if hw.dist_spill:
            self.memories = {name: _spill(spec) for name, spec in self.memories.items()}
        mem = self.memories
        self.host_targets = (
            HostTarget("x", mem["x"].depth, mem["x"].width),
            HostTarget("labels", mem["labels"].depth, 8),
            HostTarget("w", mem["w"].depth, mem["w"].width),
            HostTarget("pred", mem["pred"].depth, 8),
            # read only: the forward pass's state (o and h of each neuron, or u with the
            # reset-path gradient), for hardware-in-the-loop training
            HostTarget("state", mem["u"].depth, mem["u"].width),
        ) + ((
            HostTarget("data", D, self.data_word.width),
            HostTarget("order", 2 * D, self.order_bits),
            HostTarget("acc", mem["acc"].depth, self.acc_bits),
            HostTarget("job", 8, 32),
        ) if self.has_data else ())
        self.counters = (list(ENGINE_COUNTERS) + [f"spikes{l}" for l in range(L)] +
                         [f"eps_nonzero{l}" for l in range(L)]) if hw.counters \
            else ["active_cycles", "steps"]
        if not hw.learn:
            self.counters = [c for c in self.counters
                             if not c.startswith(("be_", "wue_", "eps_nonzero"))]

    # ---- per-layer facts ------------------------------------------------------------------------

    def n_in(self, layer):
        return self.layers[layer]

    def n_out(self, layer):
        return self.layers[layer + 1]

    def matrix_words(self, n_out, n_in):
        return cdiv(n_out, self.P) * n_in

    def point_words(self, n):
        return cdiv(n, self.P) * self.NP

    # ---- lane packing (Python ints <-> numpy) ---------------------------------------------------

    @staticmethod
    def pack_lanes(values, bits):
        mask = (1 << bits) - 1
        word = 0
        for k, v in enumerate(values):
            word |= (int(v) & mask) << (k * bits)
        return word

    @staticmethod
    def unpack_lanes(word, bits, count):
        mask = (1 << bits) - 1
        vals = []
        for k in range(count):
            v = (int(word) >> (k * bits)) & mask
            vals.append(v - (1 << bits) if v >> (bits - 1) else v)
        return vals

    def pack_spikes(self, x):
        """``x`` (T, B, n) or (T*B, n) of 0/1 -> list of ``NP`` words."""
        x = np.asarray(x).reshape(self.NP, -1)
        return [sum(1 << int(i) for i in np.nonzero(row)[0]) for row in x]

    def unpack_spikes(self, words, n):
        """Words -> (T, B, n) int64 array of 0/1."""
        out = np.array([[(int(w) >> i) & 1 for i in range(n)] for w in words], dtype=np.int64)
        return out.reshape(self.T, self.B, n)

    def pack_matrix(self, w, bits):
        """``w`` (n_out, n_in) -> words at ``nb * n_in + j`` (weights or dW layout)."""
        w = np.asarray(w)
        n_out, n_in = w.shape
        words = []
        for nb in range(cdiv(n_out, self.P)):
            rows = w[nb * self.P:(nb + 1) * self.P]
            words.extend(self.pack_lanes(rows[:, j], bits) for j in range(n_in))
        return words

    def unpack_matrix(self, words, n_out, n_in, bits):
        out = np.zeros((cdiv(n_out, self.P) * self.P, n_in), dtype=np.int64)
        for addr, word in enumerate(words):
            nb, j = divmod(addr, n_in)
            out[nb * self.P:(nb + 1) * self.P, j] = self.unpack_lanes(word, bits, self.P)
        return out[:n_out]

    def pack_points(self, v, bits):
        """``v`` (T, B, n) -> words at ``nb * NP + p`` (state or eps layout)."""
        v = np.asarray(v).reshape(self.NP, -1)
        words = []
        for nb in range(cdiv(v.shape[1], self.P)):
            cols = v[:, nb * self.P:(nb + 1) * self.P]
            words.extend(self.pack_lanes(cols[p], bits) for p in range(self.NP))
        return words

    def unpack_points(self, words, n, bits):
        out = np.zeros((self.NP, cdiv(n, self.P) * self.P), dtype=np.int64)
        for addr, word in enumerate(words):
            nb, p = divmod(addr, self.NP)
            out[p, nb * self.P:(nb + 1) * self.P] = self.unpack_lanes(word, bits, self.P)
        return out[:, :n].reshape(self.T, self.B, n)

    # ---- on-chip data set ------------------------------------------------------------------------

    def pack_samples(self, x, y):
        """Data-set words of intensities ``x`` (N, n_in) in ``0..data_vmax`` and labels ``y``."""
        x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64)
        vb, vmax = self.value_bits, self.hw.data_vmax
        if x.ndim != 2 or x.shape[1] != self.layers[0] or len(y) != len(x):
            raise ValueError(f"the data set needs (N, {self.layers[0]}) intensities and N labels, "
                             f"got {x.shape} and {y.shape}")
        if x.size and (x.min() < 0 or x.max() > vmax):
            raise ValueError(f"intensities must be in 0..{vmax} (the design's data_vmax), got "
                             f"{x.min()}..{x.max()}; rebuild with --hw data_vmax={x.max()}")
        if y.size and (y.min() < 0 or y.max() >= self.layers[-1]):
            raise ValueError(f"labels must be in 0..{self.layers[-1] - 1}, got {y.min()}..{y.max()}")
        words = []
        for row, label in zip(x, y):
            v = 0
            for i, value in enumerate(row):
                v |= int(value) << (i * vb)
            words.append(self.data_word.pack(x=v, label=int(label)))
        return words

    def encoder_table(self):
        """The on-chip encoder (``hw.encoder``: rate or latency code) as a table: bit
        ``t * 2**value_bits + v`` is the spike of intensity ``v`` at step ``t``
        (``model/encode.py``; 0 for ``v > data_vmax``)."""
        from spikeforge.model.encode import encode
        vb, vmax, T = self.value_bits, self.hw.data_vmax, self.T
        values = np.arange(vmax + 1)[None, :]
        spikes = encode(values, T, vmax, self.hw.encoder)[:, 0, :]   # (T, vmax + 1)
        table = 0
        for t in range(T):
            for v in range(vmax + 1):
                if spikes[t, v]:
                    table |= 1 << (t * (1 << vb) + v)
        return table

    # ---- report -------------------------------------------------------------------------------

    def usage(self):
        """Per top-level memory: bits allocated and bits the design's data need."""
        cfg, n, NP = self.cfg, self.layers, self.NP
        L = self.L
        needed = {
            "x": 2 * NP * n[0], "labels": 2 * cfg.batch * 8, "pred": cfg.batch * 8,
            "spk": NP * sum(n[1:]), "hb": NP * sum(n[1:-1]),
            "u": NP * sum(n[1:]) * self.state_bits, "eps": NP * sum(n[1:]) * cfg.e_bits,
            "g": NP * sum(n[1:]) * cfg.e_bits,
            "w": (sum(n[l] * n[l + 1] for l in range(L)) +
                  sum(n[l + 1] ** 2 for l in self.recurrent)) * cfg.w_bits,
        }
        if self.has_rec:
            needed["r"] = NP * max(n[l + 1] for l in self.recurrent) * cfg.e_bits
            needed["hr"] = needed["hb"]
        if self.has_data:
            needed.update({"data": self.memories["data"].bits,
                           "order": self.memories["order"].bits, "acc": self.memories["acc"].bits})
        return {name: {"allocated_bits": spec.bits, "needed_bits": needed[name],
                       "width": spec.width, "depth": spec.depth, "banks": spec.banks,
                       "block_ram_words": 0 if spec.dist else spec.split or spec.depth}
                for name, spec in self.memories.items()}
