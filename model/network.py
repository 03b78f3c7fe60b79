"""One BPTT training step of a multi-layer spiking network (the golden model).

Equations (STBP / H2Learn), per layer, with ``x`` the layer's binary input spikes::

    u[t] = alpha * u[t-1] * (1 - o[t-1]) + W x[t]      u[-1] = 0, o[-1] = 0
    o[t] = [u[t] > vth]
    h[t] = [|u[t] - vth| < a/2]                           rectangular surrogate
    eps[t] = h[t] * g[t] + alpha * (1 - o[t]) * eps[t+1]  eps[T] = 0
    g[t]  += -alpha * u[t] * eps[t+1]                     only with ``reset_grad``
    g_below[t] = h_below[t] * (W^T eps[t])                 output sparsity: masked entries are 0
    dW = sum over t and batch of eps[t] x[t]^T
    W <- W - lr * dW

The output layer's ``g = dL/do[t] = count - target`` (spike-count squared error
``L = 1/2 sum_i (count_i - target_i)^2``). The arithmetic (fixed or float) comes from
:mod:`spikeforge.model.arith`; this module holds the equations once for both.

Arrays are laid out ``[t, b, neuron]``; ``x`` for the first layer is ``(T, B, n_in)`` of 0/1.
"""

from dataclasses import dataclass, field

import numpy as np

from .arith import make_arith

__all__ = ["Network", "LayerTrace", "StepResult", "init_weights"]


def init_weights(cfg, seed):
    """Float initial weights, uniform in ``+-init_gain * vth / sqrt(fan_in)``, from ``seed``."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(cfg.layers[:-1], cfg.layers[1:]):
        bound = cfg.init_gain * cfg.vth / np.sqrt(n_in)
        weights.append(rng.uniform(-bound, bound, size=(n_out, n_in)))
    return weights


@dataclass
class LayerTrace:
    """What the forward pass of one layer stores for the backward pass."""
    x: np.ndarray          # (T, B, n_in) input spikes, 0/1 int64
    u: np.ndarray          # (T, B, n_out) membrane after integration
    o: np.ndarray          # (T, B, n_out) output spikes, 0/1 int64
    eps: np.ndarray = None  # (T, B, n_out) filled by the backward pass
    g: np.ndarray = None    # (T, B, n_out) dL/do seen by this layer
    h: np.ndarray = None    # (T, B, n_out) surrogate mask


@dataclass
class StepResult:
    traces: list
    grads: list
    loss: float
    predictions: np.ndarray
    stats: dict = field(default_factory=dict)


class Network:
    """A spiking network and its golden training step.

    Parameters
    ----------
    cfg : Config
        Validated configuration.
    mode : str
        ``"fixed"`` (integer, the hardware specification) or ``"float"`` (float64 reference).
    weights : list of arrays, optional
        Weights in the mode's own representation (int64 codes in fixed mode). Default: the seeded
        float initialisation, quantised in fixed mode.
    seed : int
        Seed of the default initialisation.
    """

    def __init__(self, cfg, mode="fixed", weights=None, seed=0):
        self.cfg = cfg.validate()
        self.arith = make_arith(cfg, mode)
        self.mode = mode
        if weights is None:
            weights = [self.arith.weights_from_float(w) for w in init_weights(cfg, seed)]
        self.weights = [np.array(w, dtype=self.arith.dtype) for w in weights]

    # ---- forward -----------------------------------------------------------------------------

    def forward_layer(self, x, w):
        T, B, n_in = x.shape
        a = self.arith
        current = a.synaptic_input(x.reshape(T * B, n_in), w).reshape(T, B, -1)
        u = np.zeros_like(current)
        o = np.zeros(current.shape, dtype=np.int64)
        u_prev = np.zeros_like(current[0])
        o_prev = np.zeros(current.shape[1:], dtype=np.int64)
        for t in range(T):
            u[t] = a.membrane(a.decay(u_prev * (1 - o_prev)), current[t])
            o[t] = u[t] > a.vth
            u_prev, o_prev = u[t], o[t]
        return LayerTrace(x=x, u=u, o=o)

    def forward(self, x):
        x = np.asarray(x, dtype=np.int64)
        if x.ndim != 3 or x.shape[2] != self.cfg.layers[0]:
            raise ValueError(f"input spikes must have shape (T, B, {self.cfg.layers[0]}), "
                             f"got {x.shape}")
        traces = []
        for w in self.weights:
            trace = self.forward_layer(x, w)
            traces.append(trace)
            x = trace.o
        return traces

    @staticmethod
    def counts(traces):
        """Output spike counts, (B, n_out)."""
        return traces[-1].o.sum(axis=0)

    @staticmethod
    def classify(counts):
        """Class read-out: the output neuron with the most spikes, the lowest index on ties."""
        return np.argmax(counts, axis=1)

    def predict(self, x):
        return self.classify(self.counts(self.forward(x)))

    # ---- backward ----------------------------------------------------------------------------

    def targets(self, labels, n_out):
        tgt = np.full((len(labels), n_out), self.cfg.target_false, dtype=np.int64)
        tgt[np.arange(len(labels)), labels] = self.cfg.target_true
        return tgt

    def backward_layer(self, trace, g):
        """Fill ``trace.eps``/``trace.h``/``trace.g`` from ``g = dL/do`` of shape (T, B, n)."""
        a = self.arith
        T = g.shape[0]
        h = self.surrogate_of(trace)
        eps = np.zeros_like(g)
        eps_next = np.zeros_like(g[0])
        g = g.copy()
        for t in range(T - 1, -1, -1):
            if self.cfg.reset_grad:
                g[t] = a.sat_grad(g[t] - a.reset_term(trace.u[t], eps_next))
            eps[t] = a.sat_grad(h[t] * g[t] + a.decay(eps_next * (1 - trace.o[t])))
            eps_next = eps[t]
        trace.eps, trace.h, trace.g = eps, h, g
        return eps

    def surrogate_of(self, trace):
        """``h`` of a layer: the trace's own (a forward pass that ran elsewhere, e.g. on the
        accelerator, may hand over ``h`` instead of ``u``) or the surrogate of its ``u``."""
        return trace.h if trace.h is not None else self.arith.surrogate(trace.u)

    def backward(self, traces, labels):
        """Gradients ``dW`` of every layer (list, first layer first)."""
        labels = np.asarray(labels)
        counts = self.counts(traces)
        n_out = self.cfg.layers[-1]
        g_out = self.arith.loss_grad(counts, self.targets(labels, n_out))
        g = np.broadcast_to(g_out, traces[-1].o.shape).copy()
        grads = [None] * len(traces)
        active = self.cfg.act_upper or self.cfg.act_lower
        for layer in range(len(traces) - 1, -1, -1):
            trace = traces[layer]
            if active and layer < len(traces) - 1:
                # the activity regulariser of a hidden layer: its dL/do joins g_below
                g = self.arith.sat_grad(g + self.arith.activity_grad(trace.o.sum(axis=0)))
            eps = self.backward_layer(trace, g)
            T, B, n_out = eps.shape
            n_in = trace.x.shape[2]
            flat_eps = eps.reshape(T * B, n_out)
            grads[layer] = self.arith.weight_grad(flat_eps, trace.x.reshape(T * B, n_in))
            if layer > 0:
                h_below = self.surrogate_of(traces[layer - 1])
                g = self.arith.backprop(flat_eps, self.weights[layer]).reshape(T, B, n_in)
                g = g * h_below
        return grads

    def activity_loss(self, traces):
        """The activity regulariser's loss over the hidden layers (0 when off)."""
        cfg = self.cfg
        total = 0.0
        for trace in traces[:-1]:
            c = trace.o.sum(axis=0).astype(np.float64)
            total += 0.5 * cfg.act_upper * float((np.maximum(0, c - cfg.act_max) ** 2).sum())
            total += 0.5 * cfg.act_lower * float((np.maximum(0, cfg.act_min - c) ** 2).sum())
        return total

    def update(self, grads):
        self.weights = [self.arith.update(w, dw) for w, dw in zip(self.weights, grads)]

    # ---- one training step -------------------------------------------------------------------

    def train_step(self, x, labels):
        return self.train_traces(self.forward(x), labels)

    def train_traces(self, traces, labels):
        """Backward pass and update from the traces of a forward pass (this network's own, or
        one run elsewhere: hardware in the loop)."""
        grads = self.backward(traces, labels)
        self.update(grads)
        counts = self.counts(traces)
        tgt = self.targets(np.asarray(labels), self.cfg.layers[-1])
        loss = 0.5 * float(((counts - tgt) ** 2).sum()) + self.activity_loss(traces)
        return StepResult(traces=traces, grads=grads, loss=loss,
                          predictions=self.classify(counts), stats=step_stats(traces))


def step_stats(traces):
    """Event counts of one training step, per layer (input to the cycle and energy models).

    All counts are logical: one word per value, whatever the memory width.

    - ``syn_adds``: forward additions of a weight (active input, output neuron pairs).
    - ``spikes``: output spikes of the layer.
    - ``eps_nonzero`` / ``eps_total``: non-zero ``eps`` entries (input sparsity of the backward pass).
    - ``masked``: entries with ``h = 0`` (output sparsity: their ``dL/do`` is never needed).
    - ``backprop_macs``: multiply-accumulates of ``W^T eps`` with both skips applied (0 for layer 0).
    - ``wgrad_adds``: additions of ``eps`` into ``dW`` (non-zero eps times active inputs).
    - ``weight_reads`` / ``weight_writes`` / ``state_writes`` / ``spike_writes``: memory words.
    """
    per_layer = []
    for index, tr in enumerate(traces):
        T, B, n_out = tr.o.shape
        n_in = tr.x.shape[2]
        active_in = tr.x.reshape(T * B, n_in).sum(axis=1)
        nz = (tr.eps != 0).reshape(T * B, n_out)
        stats = {
            "syn_adds": int(active_in.sum()) * n_out,
            "spikes": int(tr.o.sum()),
            "eps_nonzero": int(nz.sum()),
            "eps_total": int(nz.size),
            "masked": int((tr.h == 0).sum()),
            "wgrad_adds": int((nz.sum(axis=1) * active_in).sum()),
            "weight_reads": 2 * n_in * n_out if index > 0 else n_in * n_out,
            "weight_writes": n_in * n_out,
            "state_writes": T * B * n_out,
            "spike_writes": T * B * n_out,
        }
        if index > 0:
            below = traces[index - 1]
            needed = (below.h != 0).reshape(T * B, n_in)
            stats["backprop_macs"] = int((nz.sum(axis=1) * needed.sum(axis=1)).sum())
        else:
            stats["backprop_macs"] = 0
        per_layer.append(stats)
    return {"layers": per_layer}
