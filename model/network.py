"""One BPTT training step of a multi-layer spiking network (the golden model).

Equations (STBP / H2Learn), per layer, with ``x`` the layer's binary input spikes::

    u[t] = alpha * u[t-1] * (1 - o[t-1]) + W x[t]      u[-1] = 0, o[-1] = 0
           (+ V o[t-1] in a recurrent layer)
    o[t] = [u[t] > vth]
    h[t] = [|u[t] - vth| < a/2]                           rectangular surrogate
    eps[t] = h[t] * g[t] + alpha * (1 - o[t]) * eps[t+1]  eps[T] = 0
    g[t]  += V^T eps[t+1]                                 only in a recurrent layer
    g[t]  += -alpha * u[t] * eps[t+1]                     only with ``reset_grad``
    g_below[t] = h_below[t] * (W^T eps[t])                 output sparsity: masked entries are 0
    dW = sum over t and batch of eps[t] x[t]^T
    dV = sum over t and batch of eps[t] o[t-1]^T          recurrent layers
    W <- W - lr * dW

The output layer's ``g = dL/do[t] = count - target`` (spike-count squared error
``L = 1/2 sum_i (count_i - target_i)^2``). The arithmetic (fixed or float) comes from
:mod:`spikeforge.model.arith`; this module holds the equations once for both.

Arrays are laid out ``[t, b, neuron]``; ``x`` for the first layer is ``(T, B, n_in)`` of 0/1.
``Network.weights`` lists ``W`` of every layer, then ``V`` of every recurrent layer
(``Config.weight_shapes``). With train-and-constrain fields (``w_levels``, ``fan_in``) the forward
and backward passes use the constrained weights (:meth:`Network.effective`) and the update goes to
the full-precision ones (straight through).
"""

from dataclasses import dataclass, field

import numpy as np

from .arith import make_arith

__all__ = ["Network", "LayerTrace", "StepResult", "init_weights"]


def init_weights(cfg, seed):
    """Float initial weights, uniform in ``+-init_gain * vth / sqrt(n)`` with ``n`` the
    matrix's inputs (``n_in`` for ``W``, ``n_out`` for a recurrent layer's ``V``), from ``seed``.
    Every ``V`` is drawn after every ``W``, so a feed-forward network's weights do not depend
    on it."""
    rng = np.random.default_rng(seed)
    weights = []
    for rows, cols in cfg.weight_shapes():
        bound = cfg.init_gain * cfg.vth / np.sqrt(cols)
        weights.append(rng.uniform(-bound, bound, size=(rows, cols)))
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
        shapes = cfg.weight_shapes()
        if len(weights) != len(shapes) or any(np.shape(w) != s for w, s in zip(weights, shapes)):
            raise ValueError(f"weights must be {len(shapes)} arrays of shapes {shapes} "
                             f"({', '.join(cfg.weight_names())}), got "
                             f"{[np.shape(w) for w in weights]}")
        self.weights = [np.array(w, dtype=self.arith.dtype) for w in weights]
        self._rec = {l: cfg.n_layers + k for k, l in enumerate(cfg.recurrent)}

    # ---- weights as the passes see them ------------------------------------------------------

    def recurrent_index(self, layer):
        """Index in ``weights`` of ``layer``'s ``V`` (None when the layer is feed-forward)."""
        return self._rec.get(layer)

    def effective(self):
        """The weights the forward and backward passes use: with ``fan_in``, each neuron keeps
        its ``fan_in`` largest-magnitude inputs (over ``W`` and ``V`` together, ties to the lower
        index); with ``w_levels``, each weight is rounded to its level. Without constraints,
        ``weights`` itself."""
        cfg = self.cfg
        if not (cfg.w_levels or cfg.fan_in):
            return self.weights
        out = list(self.weights)
        for l in range(cfg.n_layers):
            r = self.recurrent_index(l)
            rows = self.weights[l] if r is None else np.concatenate(
                [self.weights[l], self.weights[r]], axis=1)
            if cfg.fan_in and cfg.fan_in < rows.shape[1]:
                order = np.argsort(-np.abs(rows), axis=1, kind="stable")
                keep = np.zeros(rows.shape, dtype=bool)
                np.put_along_axis(keep, order[:, :cfg.fan_in], True, axis=1)
                rows = np.where(keep, rows, 0).astype(rows.dtype)
            if cfg.w_levels:
                rows = self.arith.weight_levels(rows)
            n_in = cfg.layers[l]
            out[l] = rows[:, :n_in]
            if r is not None:
                out[r] = rows[:, n_in:]
        return out

    # ---- forward -----------------------------------------------------------------------------

    def forward_layer(self, x, w, v=None):
        """One layer over all time steps; ``v``: the recurrent weights (``o[t-1]`` is then an
        input of step ``t``, added exactly to ``W x[t]`` before the one saturation)."""
        T, B, n_in = x.shape
        a = self.arith
        current = a.synaptic_input(x.reshape(T * B, n_in), w).reshape(T, B, -1)
        u = np.zeros_like(current)
        o = np.zeros(current.shape, dtype=np.int64)
        u_prev = np.zeros_like(current[0])
        o_prev = np.zeros(current.shape[1:], dtype=np.int64)
        for t in range(T):
            i_t = current[t] if v is None else current[t] + a.synaptic_input(o_prev, v)
            u[t] = a.membrane(a.decay(u_prev * (1 - o_prev)), i_t)
            o[t] = u[t] > a.vth
            u_prev, o_prev = u[t], o[t]
        return LayerTrace(x=x, u=u, o=o)

    def forward(self, x):
        x = np.asarray(x, dtype=np.int64)
        if x.ndim != 3 or x.shape[2] != self.cfg.layers[0]:
            raise ValueError(f"input spikes must have shape (T, B, {self.cfg.layers[0]}), "
                             f"got {x.shape}")
        weights = self.effective()
        traces = []
        for l in range(self.cfg.n_layers):
            r = self.recurrent_index(l)
            trace = self.forward_layer(x, weights[l], None if r is None else weights[r])
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

    def backward_layer(self, trace, g, v=None):
        """Fill ``trace.eps``/``trace.h``/``trace.g`` from ``g = dL/do`` of shape (T, B, n);
        ``v``: the layer's recurrent weights (``V^T eps[t+1]`` then joins ``g[t]``)."""
        a = self.arith
        T = g.shape[0]
        h = self.surrogate_of(trace)
        eps = np.zeros_like(g)
        eps_next = np.zeros_like(g[0])
        g = g.copy()
        for t in range(T - 1, -1, -1):
            if v is not None and t < T - 1:
                g[t] = a.sat_grad(g[t] + a.backprop(eps_next, v))
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
        grads = [None] * len(self.weights)
        weights = self.effective()
        active = self.cfg.act_active
        for layer in range(len(traces) - 1, -1, -1):
            trace = traces[layer]
            r = self.recurrent_index(layer)
            if active and layer < len(traces) - 1:
                # the activity regulariser of a hidden layer: its dL/do joins g_below
                g = self.arith.sat_grad(g + self.arith.activity_grad(trace.o.sum(axis=0)))
            eps = self.backward_layer(trace, g, None if r is None else weights[r])
            T, B, n_out = eps.shape
            n_in = trace.x.shape[2]
            flat_eps = eps.reshape(T * B, n_out)
            grads[layer] = self.arith.weight_grad(flat_eps, trace.x.reshape(T * B, n_in))
            if r is not None:
                # dV = sum_t eps[t] o[t-1]^T (o[-1] = 0)
                grads[r] = self.arith.weight_grad(eps[1:].reshape(-1, n_out),
                                                  trace.o[:-1].reshape(-1, n_out))
            if layer > 0:
                h_below = self.surrogate_of(traces[layer - 1])
                g = self.arith.backprop(flat_eps, weights[layer]).reshape(T, B, n_in)
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
            total += 0.5 * cfg.act_pop_upper * float(
                (np.maximum(0, c.sum(axis=-1) - cfg.act_pop_max) ** 2).sum())
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
