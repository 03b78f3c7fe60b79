"""The non-spiking float baseline of the sequence tasks: an Elman RNN trained by BPTT.

``h[t] = tanh(W x[t] + V h[t-1] + b)``, ``h[-1] = 0``; the class scores ``z = U hbar + c`` read
from ``hbar``, the mean of ``h[t]`` over the ``S`` frames (``readout="mean"``, the default: the spiking
network likewise counts its output spikes over every frame) or the last frame's ``h[S-1]``
(``readout="last"``; over MNIST-1D's 40 frames a plain tanh RNN read out this way stays at chance:
its gradient vanishes before the informative frames, which the random shift and padding of the
signals leave far from the end); softmax cross-entropy; full BPTT through every frame; Adam (``lr``, betas 0.9/0.999)
with the gradient norm clipped to ``clip``. Its input is what the spiking network sees before
spike coding: each frame's intensities scaled to [0, 1] (``Dataset.x / vmax``, frame by frame), so
the two compare on the same information. numpy, float64, seeded: no torch needed.

``train_elman(dataset, hidden, epochs, ...)`` returns the metrics (test accuracy per epoch).
"""

import json
import os
import time

import numpy as np

from .atomic import atomic_write_text

__all__ = ["ElmanOptions", "train_elman", "frames"]


class ElmanOptions:
    def __init__(self, hidden=128, epochs=30, batch=32, lr=1e-3, clip=1.0, seed=0, readout="mean"):
        if readout not in ("mean", "last"):
            raise ValueError(f"readout {readout!r}: choose 'mean' or 'last'")
        self.hidden, self.epochs, self.batch, self.readout = hidden, epochs, batch, readout
        self.lr, self.clip, self.seed = lr, clip, seed

    def to_dict(self):
        return dict(vars(self))


def frames(data, x):
    """``(S, N, F)`` float frames of samples ``x`` of ``data``, intensities / vmax."""
    n = len(x)
    return np.transpose(x.reshape(n, data.steps, -1), (1, 0, 2)).astype(np.float64) / data.vmax


class _Elman:
    def __init__(self, n_in, n_hidden, n_out, rng, readout="mean"):
        self.readout = readout
        s_in, s_h = 1 / np.sqrt(n_in), 1 / np.sqrt(n_hidden)
        self.params = {
            "W": rng.uniform(-s_in, s_in, (n_hidden, n_in)),
            "V": rng.uniform(-s_h, s_h, (n_hidden, n_hidden)),
            "b": np.zeros(n_hidden),
            "U": rng.uniform(-s_h, s_h, (n_out, n_hidden)),
            "c": np.zeros(n_out),
        }

    def forward(self, xs):
        p = self.params
        S, B, _ = xs.shape
        hs = np.zeros((S + 1, B, p["W"].shape[0]))        # hs[0] = h[-1] = 0
        for t in range(S):
            hs[t + 1] = np.tanh(xs[t] @ p["W"].T + hs[t] @ p["V"].T + p["b"])
        return hs, self._read(hs) @ p["U"].T + p["c"]

    def _read(self, hs):
        return hs[1:].mean(axis=0) if self.readout == "mean" else hs[-1]

    def grads(self, xs, labels):
        p = self.params
        hs, z = self.forward(xs)
        S, B, _ = xs.shape
        z = z - z.max(axis=1, keepdims=True)
        prob = np.exp(z)
        prob /= prob.sum(axis=1, keepdims=True)
        loss = -np.log(prob[np.arange(B), labels] + 1e-300).mean()
        dz = prob
        dz[np.arange(B), labels] -= 1
        dz /= B
        g = {k: np.zeros_like(v) for k, v in p.items()}
        g["U"] = dz.T @ self._read(hs)
        g["c"] = dz.sum(axis=0)
        dread = dz @ p["U"]                   # d loss / d (read-out state)
        dh = dread / S if self.readout == "mean" else dread
        for t in range(S - 1, -1, -1):
            if self.readout == "mean" and t < S - 1:
                dh = dh + dread / S
            da = dh * (1 - hs[t + 1] ** 2)
            g["W"] += da.T @ xs[t]
            g["V"] += da.T @ hs[t]
            g["b"] += da.sum(axis=0)
            dh = da @ p["V"]
        return loss, g

    def predict(self, xs, chunk=1024):
        return np.concatenate([np.argmax(self.forward(xs[:, i:i + chunk])[1], axis=1)
                               for i in range(0, xs.shape[1], chunk)])


def train_elman(dataset, out=None, opts=None, log=print, progress=True):
    """Train the Elman baseline on sequence data set ``dataset`` (a name or a
    :class:`~spikeforge.model.data.Dataset`); write ``out/metrics.json`` if ``out``."""
    from tqdm import tqdm

    from .data import load_dataset
    opts = opts or ElmanOptions()
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    rng = np.random.default_rng(opts.seed)
    xtr, xte = frames(data, data.x_train), frames(data, data.x_test)
    net = _Elman(xtr.shape[2], opts.hidden, data.n_classes, rng, opts.readout)
    m = {k: np.zeros_like(v) for k, v in net.params.items()}
    v = {k: np.zeros_like(v) for k, v in net.params.items()}
    step, history, t0 = 0, [], time.perf_counter()
    for epoch in tqdm(range(opts.epochs), desc="Elman RNN (float, BPTT)", unit="epoch",
                      disable=not progress, leave=False):
        order = np.random.default_rng([opts.seed, epoch]).permutation(xtr.shape[1])
        total = 0.0
        n_batches = len(order) // opts.batch
        for i in range(n_batches):
            idx = order[i * opts.batch:(i + 1) * opts.batch]
            loss, g = net.grads(xtr[:, idx], data.y_train[idx])
            total += loss
            norm = np.sqrt(sum(float((x ** 2).sum()) for x in g.values()))
            scale = min(1.0, opts.clip / max(norm, 1e-12))
            step += 1
            for k in net.params:
                gk = g[k] * scale
                m[k] = 0.9 * m[k] + 0.1 * gk
                v[k] = 0.999 * v[k] + 0.001 * gk * gk
                mh, vh = m[k] / (1 - 0.9 ** step), v[k] / (1 - 0.999 ** step)
                net.params[k] -= opts.lr * mh / (np.sqrt(vh) + 1e-8)
        acc = float((net.predict(xte) == data.y_test).mean())
        history.append({"epoch": epoch + 1, "test_accuracy": acc,
                        "train_loss": total / max(1, n_batches),
                        "seconds": round(time.perf_counter() - t0, 3)})
    metrics = {"method": "elman", "dataset": data.name, "frames": data.steps,
               "inputs_per_frame": data.n_features, "options": opts.to_dict(),
               "test_accuracy": history[-1]["test_accuracy"], "history": history,
               "seconds": round(time.perf_counter() - t0, 3),
               "what": f"Elman RNN, tanh, softmax read-out of the {opts.readout} hidden state over "
                       "frames, BPTT, Adam, float64 "
                       "numpy; input: each frame's intensities / vmax"}
    if out:
        os.makedirs(out, exist_ok=True)
        atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return metrics
