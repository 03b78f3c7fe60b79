"""Training loop over a real data set, with per-epoch checkpoints and resumption.

The loop is engine-agnostic: by default the golden :class:`~spikeforge.model.network.Network`
trains; any object with ``weights``, ``train_step(x, labels)`` and ``predict(x)`` (an RTL simulation,
a board) can be passed as ``engine`` and is driven identically.

Each epoch shuffles the training set with ``default_rng([seed, epoch])``, so a resumed run sees the
same batches as an uninterrupted one and the same seed gives the same weights bit for bit.
"""

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .atomic import atomic_write_text
from .data import load_dataset
from .encode import encode
from .network import Network
from .weights import WeightsError, load_weights, save_weights

__all__ = ["TrainOptions", "train", "evaluate", "spikes_per_input", "epoch_order", "job_golden", "CHECKPOINT",
           "WEIGHTS", "METRICS"]

CHECKPOINT = "checkpoint.npz"
WEIGHTS = "weights.npz"
METRICS = "metrics.json"
TEST_ENCODER_SEED = 7


@dataclass
class TrainOptions:
    dataset: str = "digits"
    mode: str = "fixed"
    epochs: int = 20
    seed: int = 0
    encoder: str = "rate"
    out: str = "runs/train"
    init: str = None
    resume: bool = False
    progress: bool = True
    engine_name: str = "golden"
    checkpoint_every: int = 5          # epochs per checkpoint of an engine that trains whole
                                       # epochs by itself (the board's training job)
    extra_metrics: dict = field(default_factory=dict)
    golden_config: dict = None         # hardware in the loop: the config the golden backward
                                       # pass trains with, when it has more than the hardware's
                                       # (the activity regulariser)

    def to_dict(self):
        return dataclasses.asdict(self)


def evaluate(engine, x_spikes, labels, chunk=512):
    """Test accuracy of ``engine`` on encoded spikes ``(T, N, n)``."""
    correct = 0
    for i in range(0, x_spikes.shape[1], chunk):
        pred = engine.predict(x_spikes[:, i:i + chunk])
        correct += int((np.asarray(pred) == labels[i:i + chunk]).sum())
    return correct / len(labels)


def epoch_order(seed, epoch, n):
    """The training-set order of ``epoch`` (the same for a resumed run and for the board's job)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def job_golden(network, x, y, vmax, orders, train_count, test_base, test_count, losses=None,
               encoder="rate"):
    """What the on-chip training job (``hdl/job.py``) computes, in the golden model: for each
    order, ``train_count // B`` training steps on the samples coded by ``encoder`` (rate or
    latency) ``x[order]`` (intensities
    of the whole data set, ``(N, n_in)``), then the correct predictions on samples
    ``test_base .. test_base + test_count - 1``. Trains ``network`` in place; returns the counts
    (and appends each epoch's mean training loss to ``losses`` if given)."""
    cfg = network.cfg
    B, T = cfg.batch, cfg.timesteps
    x, y = np.asarray(x), np.asarray(y)
    x_test = encode(x[test_base:test_base + test_count], T, vmax, encoder)
    correct = []
    for order in orders:
        order = np.asarray(order)[:train_count]
        spikes = encode(x[order], T, vmax, encoder)
        loss = 0.0
        for i in range(train_count // B):
            sl = slice(i * B, (i + 1) * B)
            loss += network.train_step(spikes[:, sl], y[order][sl]).loss
        if losses is not None:
            losses.append(loss / max(1, (train_count // B) * B))
        hits = 0
        for i in range(0, test_count, 512):
            pred = np.asarray(network.predict(x_test[:, i:i + 512]))
            hits += int((pred == y[test_base + i:test_base + min(i + 512, test_count)]).sum())
        correct.append(hits)
    return correct


def spikes_per_input(cfg, mode, weights, x_spikes, chunk=512):
    """Mean spikes of all layers (hidden and output, not the input) per sample of
    ``x_spikes`` (T, N, n) in the golden model with ``weights``."""
    net = Network(cfg, mode, weights=[np.array(w) for w in weights])
    total = 0
    for i in range(0, x_spikes.shape[1], chunk):
        total += sum(int(tr.o.sum()) for tr in net.forward(x_spikes[:, i:i + chunk]))
    return total / max(1, x_spikes.shape[1])


def _warn_if_silent(cfg, opts, weights, data, log):
    """Warn when no neuron of a layer comes within the surrogate window of the threshold on the
    first training samples with the initial weights: the surrogate gradient is then zero
    everywhere in that layer, nothing below it learns and the loss cannot fall."""
    x = data.encode(data.x_train[:max(cfg.batch, 64)], cfg.timesteps, "rate")
    probe = Network(cfg, opts.mode, weights=[np.array(w) for w in weights])
    if opts.mode == "fixed":
        vth, half = cfg.vth_int, cfg.half_window_int
    else:
        vth, half = cfg.vth, cfg.window / 2
    dead = [l for l, tr in enumerate(probe.forward(x))
            if not (np.abs(np.asarray(tr.u, dtype=np.float64) - vth) < half).any()]
    if dead:
        log(f"warning: no neuron of layer {dead[0]} ({cfg.layers[dead[0] + 1]} neurons) comes "
            f"near its threshold on the first training samples with these initial weights, so "
            f"its surrogate gradient is zero, nothing below it learns and the loss cannot fall; "
            f"raise the initial scale (--set init_gain={2 * cfg.init_gain:g}) or start from "
            f"trained weights (--init)")
    return dead


def _plain(value):
    """numpy scalars as Python numbers, for JSON."""
    return value.item()


def _sum_stats(total, stats):
    if total is None:
        return [dict(layer) for layer in stats["layers"]]
    for acc, layer in zip(total, stats["layers"]):
        for key, value in layer.items():
            acc[key] += value
    return total


def train(cfg, opts, engine=None, log=print):
    """Train, writing checkpoints, ``weights.npz`` and ``metrics.json`` into ``opts.out``."""
    from tqdm import tqdm

    if opts.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {opts.epochs}")
    data = load_dataset(opts.dataset)
    data.check_network(cfg)
    ckpt_path = os.path.join(opts.out, CHECKPOINT)
    for name in (CHECKPOINT, WEIGHTS, METRICS):
        path = os.path.join(opts.out, name)
        if os.path.isdir(path):
            raise WeightsError(f"{path} is a directory; remove it or choose another --out")

    history, start_epoch, seconds_before = [], 0, 0.0
    stats_total, steps = None, 0
    weights = None
    if opts.resume and os.path.exists(ckpt_path):
        weights, arrays = load_weights(ckpt_path, cfg, opts.mode)
        try:
            state = json.loads(str(arrays["state"]))
        except (KeyError, json.JSONDecodeError):
            raise WeightsError(f"{ckpt_path}: a weights file, not a checkpoint (no training "
                               f"state); use --init to start from it") from None
        for key in ("dataset", "mode", "seed", "encoder"):
            if state[key] != getattr(opts, key):
                raise WeightsError(f"{ckpt_path}: was made with {key}={state[key]!r}, this run "
                                   f"has {key}={getattr(opts, key)!r}; use the same options or "
                                   f"another --out")
        stored = json.loads(str(arrays["config"]))
        changed = sorted(k for k, v in cfg.to_dict().items() if stored.get(k) != v)
        if changed:
            k = changed[0]
            raise WeightsError(f"{ckpt_path}: was trained with {k}={stored.get(k)!r}, this run "
                               f"has {k}={cfg.to_dict()[k]!r} (changed: {', '.join(changed)}); "
                               f"resume with the same --set options or use another --out")
        start_epoch, history = state["epochs_done"], state["history"]
        seconds_before = state["seconds"]
        stats_total, steps = state.get("stats_total"), state.get("steps", 0)
        log(f"resuming from {ckpt_path} after epoch {start_epoch}")
    elif opts.init:
        weights, _ = load_weights(opts.init, cfg, opts.mode)
    os.makedirs(opts.out, exist_ok=True)

    if engine is None:
        engine = Network(cfg, opts.mode, weights=weights, seed=opts.seed)
    elif weights is not None:
        engine.weights = weights

    x_test = data.encode(data.x_test, cfg.timesteps, opts.encoder, seed=TEST_ENCODER_SEED)
    if start_epoch == 0:
        _warn_if_silent(cfg, opts, engine.weights, data, log)
    B = cfg.batch
    n_batches = len(data.x_train) // B
    if n_batches == 0:
        raise ValueError(f"{opts.dataset} has {len(data.x_train)} training samples, fewer than "
                         f"one batch of {B}; add samples or lower the batch (--set batch=N)")
    t0 = time.perf_counter()
    def finish_epoch(epoch, accuracy, mean_loss):
        elapsed = seconds_before + time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "test_accuracy": accuracy,
                        "train_loss": mean_loss, "seconds": round(elapsed, 3)})
        log(f"epoch {epoch + 1:3d}/{opts.epochs}  loss {mean_loss:8.4f}  "
            f"test accuracy {accuracy:.4f}  ({elapsed:.1f} s)")
        return elapsed

    def checkpoint(epochs_done, elapsed):
        state = {"dataset": opts.dataset, "mode": opts.mode, "seed": opts.seed,
                 "encoder": opts.encoder, "epochs_done": epochs_done, "history": history,
                 "seconds": elapsed, "stats_total": stats_total, "steps": steps}
        save_weights(ckpt_path, engine.weights, cfg, opts.mode,
                     extra={"state": json.dumps(state, default=_plain)})

    epoch = start_epoch
    while epoch < opts.epochs:
        if hasattr(engine, "run_epochs"):
            # an engine that trains whole epochs by itself (the board's training job): the
            # orders of the next epochs, one checkpoint after them
            if opts.encoder != engine.encoder:
                raise ValueError(f"the board's training job encodes with the {engine.encoder} "
                                 f"code (hw.encoder); use --encoder {engine.encoder}")
            k = min(max(1, opts.checkpoint_every), opts.epochs - epoch)
            results = engine.run_epochs([epoch_order(opts.seed, e, len(data.x_train))
                                         for e in range(epoch, epoch + k)])
            for e, (accuracy, mean_loss) in enumerate(results):
                elapsed = finish_epoch(epoch + e, accuracy, mean_loss)
            steps += k * n_batches
            epoch += k
            checkpoint(epoch, elapsed)
            continue
        order = epoch_order(opts.seed, epoch, len(data.x_train))
        x_train = data.encode(data.x_train[order], cfg.timesteps, opts.encoder,
                              seed=[opts.seed, epoch])
        y_train = data.y_train[order]
        loss = 0.0
        bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{opts.epochs}", unit="batch",
                   disable=not opts.progress, leave=False)
        for i in bar:
            sl = slice(i * B, (i + 1) * B)
            result = engine.train_step(x_train[:, sl], y_train[sl])
            loss += result.loss
            stats_total = _sum_stats(stats_total, result.stats)
            steps += 1
        bar.close()
        accuracy = evaluate(engine, x_test, data.y_test)
        elapsed = finish_epoch(epoch, accuracy, loss / (n_batches * B))
        epoch += 1
        checkpoint(epoch, elapsed)

    seconds = seconds_before + time.perf_counter() - t0
    final_accuracy = history[-1]["test_accuracy"] if history else evaluate(engine, x_test,
                                                                             data.y_test)
    save_weights(os.path.join(opts.out, WEIGHTS), engine.weights, cfg, opts.mode)
    spikes = spikes_per_input(cfg, opts.mode, engine.weights, x_test)
    per_step = None
    if stats_total is not None:
        per_step = [{k: v / steps for k, v in layer.items()} for layer in stats_total]
    metrics = {
        "test_accuracy": final_accuracy,
        "mode": opts.mode,
        "dataset": opts.dataset,
        "engine": opts.engine_name,
        "encoder": opts.encoder,
        "epochs": opts.epochs,
        "seed": opts.seed,
        "seconds": round(seconds, 3),
        "train_samples": int(n_batches * B),
        "test_samples": int(len(data.y_test)),
        "history": history,
        "config": cfg.to_dict(),
        "events_per_step": per_step,
        # test set, golden model with the final weights: spikes of every layer (hidden and
        # output) per sample
        "spikes_per_input": spikes,
    }
    metrics.update(opts.extra_metrics)
    atomic_write_text(os.path.join(opts.out, METRICS), json.dumps(metrics, indent=2) + "\n")
    return metrics
