"""Soft-LIF conversion (Hunsberger & Eliasmith 2016): train a rate network, run it as spiking LIF.

Method (``spikeforge train --method softlif``):

1. **The rate curve of this project's neuron.** The discrete LIF of ``model/SPEC.md``
   (``u[t] = alpha * u[t-1] * (1 - o[t-1]) + I``, spike when ``u > vth``, reset to 0) driven by
   a constant current ``I`` after a reset reaches ``I * (1 - alpha**k) / (1 - alpha)`` after
   ``k`` steps, so it fires after ``k = tau * log(1 + c / (I - c))`` steps, with
   ``c = vth * (1 - alpha)`` and ``tau = -1 / log(alpha)`` (``alpha = 1``: ``c = 0``,
   ``k = vth / I``). That is the LIF rate curve of Hunsberger & Eliasmith with ``V_th -> c``,
   ``tau_RC -> tau``. A spike can only come on a whole step, so the rate is
   ``1 / ceil(k)``; the curve uses ``1 / (tau_ref + k)`` with ``tau_ref = 0.5`` (the mean of the
   rounding) and is clipped at one spike per step.
2. **Soft.** ``I - c`` goes through ``rho(j) = gamma * log(1 + exp(j / gamma))`` instead of
   ``max(j, 0)``, so the derivative stays bounded near the threshold (``gamma`` = ``smooth``).
3. **Training** (float64, numpy, Adam): every layer's activation is the soft-LIF rate of its
   current ``W a_below``, the input's activation is the rate code's rate ``v / vmax``; Gaussian
   noise (``noise`` x N(0, 1)) is added to the hidden rates during training, for robustness to
   the spike trains' variability; loss: softmax cross-entropy of ``logit_scale`` x the output
   rates.
4. **Conversion.** The curve is the neuron's own, so the weights carry over unscaled and the
   threshold stays ``cfg.vth``; they are quantised to ``cfg.w_bits`` / ``cfg.w_frac``
   (saturating). One global weight scale is then chosen from ``SCALES`` by the spiking
   network's accuracy on the first ``CALIBRATION`` training samples (the test set is never
   looked at), since with few time steps the transient from ``u = 0`` lowers the rates below
   the curve.
5. **Evaluation**: the golden fixed-point spiking network (rate code, ``cfg.timesteps``) on the
   test set: the figure ``spikeforge train`` reports; the same weights run on the accelerator's
   inference (``spikeforge infer --engine rtl``).
"""

import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write_text
from .data import load_dataset
from .encode import encode
from .network import Network, init_weights
from .weights import save_weights

__all__ = ["SoftLifOptions", "lif_rate", "train_softlif", "SCALES", "TAU_REF"]

TAU_REF = 0.5
SCALES = (0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0)
CALIBRATION = 1000          # training samples the weight scale is chosen on


@dataclass
class SoftLifOptions:
    epochs: int = 60
    batch: int = 32
    lr: float = 2e-3
    smooth: float = 0.05                # gamma of the softplus
    noise: float = 0.05                 # std of the rate noise during training
    logit_scale: float = 8.0


def lif_rate(cfg, current, smooth=0.0, grad=False):
    """Spikes per step of the neuron of ``cfg`` under a constant ``current`` (float array), soft
    with ``smooth > 0``; with ``grad`` also ``d rate / d current``."""
    vth, alpha = cfg.vth, cfg.alpha
    I = np.asarray(current, dtype=np.float64)
    c = vth * (1 - alpha)
    j = I - c if alpha < 1 else I
    if smooth > 0:
        z = j / smooth
        rho = smooth * np.logaddexp(0.0, z)
        drho = 0.5 * (1 + np.tanh(0.5 * z))     # sigmoid, overflow-free
    else:
        rho = np.maximum(j, 0.0)
        drho = (j > 0).astype(np.float64)
    rho_s = np.maximum(rho, 1e-12)
    if alpha < 1:
        tau = -1.0 / np.log(alpha)
        k = tau * np.log1p(c / rho_s)
        dk = -tau * c / (rho_s * (rho_s + c))
    else:
        k = vth / rho_s
        dk = -vth / rho_s ** 2
    raw = 1.0 / (TAU_REF + k)
    rate = np.where(rho > 1e-12, np.minimum(raw, 1.0), 0.0)
    if not grad:
        return rate
    d = np.where((rho > 1e-12) & (raw < 1.0), -raw ** 2 * dk * drho, 0.0)
    return rate, d


def _forward(cfg, weights, a0, opts, rng=None):
    acts, grads = [a0], []
    a = a0
    for index, w in enumerate(weights):
        r, d = lif_rate(cfg, a @ w.T, opts.smooth, grad=True)
        if rng is not None and index < len(weights) - 1 and opts.noise > 0:
            r = r + opts.noise * rng.standard_normal(r.shape)
        acts.append(r)
        grads.append(d)
        a = r
    return acts, grads


def _spiking_accuracy(cfg, weights_fixed, x, y, vmax):
    net = Network(cfg, "fixed", weights=weights_fixed)
    spikes = encode(x, cfg.timesteps, vmax, "rate")
    hits = 0
    for i in range(0, len(y), 512):
        hits += int((net.predict(spikes[:, i:i + 512]) == y[i:i + 512]).sum())
    return hits / len(y)


def train_softlif(cfg, dataset="digits", out="runs/softlif", seed=0, opts=None, log=print,
                  progress=True):
    """Train the rate network, convert, evaluate; writes ``weights.npz`` (fixed point) and
    ``metrics.json`` into ``out`` and returns the metrics."""
    from tqdm import tqdm

    opts = opts or SoftLifOptions()
    data = load_dataset(dataset)
    data.check_network(cfg)
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, 11])
    weights = [w.copy() for w in init_weights(cfg, seed)]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    x_train = data.x_train.astype(np.float64) / data.vmax
    x_test = data.x_test.astype(np.float64) / data.vmax
    n_classes = cfg.layers[-1]
    step = 0
    history = []
    for epoch in tqdm(range(opts.epochs), desc="soft-LIF rate training", unit="epoch",
                      disable=not progress):
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        loss_sum = 0.0
        for i in range(0, len(order) - opts.batch + 1, opts.batch):
            idx = order[i:i + opts.batch]
            acts, dacts = _forward(cfg, weights, x_train[idx], opts, rng)
            logits = opts.logit_scale * acts[-1]
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            onehot = np.eye(n_classes)[data.y_train[idx]]
            loss_sum += float(-np.log(np.maximum(p[onehot > 0], 1e-12)).sum())
            delta = opts.logit_scale * (p - onehot) / len(idx)    # d loss / d output rate
            step += 1
            for l in range(len(weights) - 1, -1, -1):
                dz = delta * dacts[l]
                gw = dz.T @ acts[l]
                delta = dz @ weights[l]
                m[l] = 0.9 * m[l] + 0.1 * gw
                v[l] = 0.999 * v[l] + 0.001 * gw ** 2
                mh, vh = m[l] / (1 - 0.9 ** step), v[l] / (1 - 0.999 ** step)
                weights[l] -= opts.lr * mh / (np.sqrt(vh) + 1e-8)
        rate_acc = float((np.argmax(_forward(cfg, weights, x_test, opts)[0][-1], axis=1)
                          == data.y_test).mean())
        history.append({"epoch": epoch + 1, "rate_test_accuracy": rate_acc,
                        "train_loss": loss_sum / len(order)})
    # conversion: quantise, choose the global weight scale on the training set
    arith = Network(cfg, "fixed").arith
    best = None
    for scale in SCALES:
        fixed = [arith.weights_from_float(w * scale) for w in weights]
        acc = _spiking_accuracy(cfg, fixed, data.x_train[:CALIBRATION],
                                data.y_train[:CALIBRATION], data.vmax)
        if best is None or acc > best[1]:
            best = (scale, acc, fixed)
    scale, train_acc, fixed = best
    test_acc = _spiking_accuracy(cfg, fixed, data.x_test, data.y_test, data.vmax)
    from .train import spikes_per_input
    spikes = spikes_per_input(cfg, "fixed", fixed, encode(data.x_test, cfg.timesteps, data.vmax,
                                                          "rate"))
    save_weights(os.path.join(out, "weights.npz"), fixed, cfg, "fixed")
    metrics = {
        "method": "softlif", "dataset": dataset, "seed": seed,
        "test_accuracy": test_acc, "rate_test_accuracy": history[-1]["rate_test_accuracy"],
        "spiking_train_accuracy": train_acc, "weight_scale": scale, "spikes_per_input": spikes,
        "timesteps": cfg.timesteps, "encoder": "rate", "engine": "golden",
        "seconds": round(time.perf_counter() - t0, 3), "options": dataclasses.asdict(opts),
        "history": history, "config": cfg.to_dict(),
    }
    atomic_write_text(os.path.join(out, "metrics.json"), json.dumps(metrics, indent=2) + "\n")
    log(f"soft-LIF: rate network {metrics['rate_test_accuracy']:.4f}, spiking (fixed point, "
        f"T = {cfg.timesteps}, weight scale {scale}) {test_acc:.4f}")
    return metrics
