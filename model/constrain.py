"""Train-and-constrain (after Diehl et al. 2016): map a trained network onto hardware constraints,
then train it with the constraints in the loop.

The constraints are config fields (``Config.w_levels``, ``w_level_shift``, ``fan_in``; SPEC 6a):
at most ``w_levels`` weight values and at most ``fan_in`` non-zero inputs per neuron. The golden
model applies them in every forward and backward pass (:meth:`Network.effective`) and updates the
full-precision weights (straight through), so training is quantisation- and pruning-aware.

:func:`train_and_constrain` runs the whole method on a trained weights file:

1. **map**: choose the level step from the trained weights (:func:`level_shift_for`), keep each
   neuron's largest inputs, round to the levels; measure the mapped network as it is;
2. **constrain**: train on with the constraints in the loop (``epochs``);
3. **deploy**: write ``deployed.npz``, the effective weights under the plain config: an ordinary
   network with at most ``w_levels`` values and ``fan_in`` inputs per neuron, which the
   accelerator and ``spikeforge infer`` run as it is.
"""

import dataclasses
import json
import os

import numpy as np

from .atomic import atomic_write_text
from .data import load_dataset
from .network import Network
from .train import TrainOptions, train
from .weights import load_weights_file, save_weights

__all__ = ["level_shift_for", "constrained_config", "deployed", "train_and_constrain",
           "check_constraints", "accuracy"]


def level_shift_for(weights, cfg, levels, mode="fixed", quantile=0.999):
    """The level step ``2**s`` (in weight codes) whose ``levels`` levels reach the ``quantile``
    of the weights' magnitudes: the smallest ``s`` with ``(levels/2) 2**s >= q``."""
    mags = np.concatenate([np.abs(np.asarray(w, dtype=np.float64)).ravel() for w in weights])
    q = float(np.quantile(mags, quantile))
    if mode == "float":
        q *= 1 << cfg.w_frac
    s = 0
    while (levels // 2) << s < q and s < cfg.w_bits - levels.bit_length():
        s += 1
    return s


def constrained_config(cfg, w_levels=0, fan_in=0, shift=0):
    return dataclasses.replace(cfg, w_levels=w_levels, fan_in=fan_in,
                               w_level_shift=shift).validate()


def deployed(cfg, weights, mode):
    """``(plain config, effective weights)``: the constrained network as an ordinary one."""
    net = Network(cfg, mode, weights=weights)
    plain = dataclasses.replace(cfg, w_levels=0, fan_in=0, w_level_shift=0).validate()
    return plain, [np.array(w) for w in net.effective()]


def check_constraints(cfg, weights, w_levels, fan_in):
    """``(distinct weight values, largest fan-in)`` of ``weights``; raises ``AssertionError``
    if they break the constraints."""
    values = np.unique(np.concatenate([np.asarray(w).ravel() for w in weights]))
    widest = 0
    for l in range(cfg.n_layers):
        rows = [np.asarray(weights[l])]
        if l in cfg.recurrent:
            rows.append(np.asarray(weights[cfg.n_layers + cfg.recurrent.index(l)]))
        widest = max(widest, int((np.concatenate(rows, axis=1) != 0).sum(axis=1).max()))
    if w_levels and len(values) > w_levels:
        raise AssertionError(f"{len(values)} weight values, more than {w_levels} levels")
    if fan_in and widest > fan_in:
        raise AssertionError(f"a neuron has {widest} inputs, more than fan_in = {fan_in}")
    return int(len(values)), widest


def accuracy(cfg, mode, weights, dataset):
    data = load_dataset(dataset)
    net = Network(cfg, mode, weights=weights)
    x = data.encode(data.x_test, cfg.timesteps, "rate", seed=7)
    pred = np.concatenate([net.predict(x[:, i:i + 512]) for i in range(0, x.shape[1], 512)])
    return float((pred == data.y_test).mean())


def train_and_constrain(weights_path, dataset, out, w_levels=16, fan_in=64, epochs=10, seed=0,
                        log=print, progress=True):
    """The three steps of the module docstring on the network in ``weights_path``; writes
    ``out/weights.npz`` (full precision, constrained config), ``out/deployed.npz`` and
    ``out/metrics.json``; returns the metrics."""
    weights, cfg, mode = load_weights_file(weights_path)
    if cfg.w_levels or cfg.fan_in:
        raise ValueError(f"{weights_path} is already constrained (w_levels={cfg.w_levels}, "
                         f"fan_in={cfg.fan_in}); start from an unconstrained network")
    load_dataset(dataset).check_network(cfg)
    before = accuracy(cfg, mode, weights, dataset)
    shift = level_shift_for(weights, cfg, w_levels, mode) if w_levels else 0
    ccfg = constrained_config(cfg, w_levels, fan_in, shift)
    mapped = accuracy(ccfg, mode, weights, dataset)
    log(f"{weights_path}: {before:.4f} unconstrained; mapped onto {w_levels or 'any'} levels "
        f"(step 2**{shift} codes) and fan-in {fan_in or 'any'}: {mapped:.4f} before retraining")
    os.makedirs(out, exist_ok=True)
    start = os.path.join(out, "mapped.npz")
    save_weights(start, weights, ccfg, mode)
    if epochs:
        metrics = train(ccfg, TrainOptions(dataset=dataset, mode=mode, epochs=epochs, seed=seed,
                                           out=out, init=start, progress=progress), log=log)
        trained, _, _ = load_weights_file(os.path.join(out, "weights.npz"))
    else:                               # the mapping alone
        metrics, trained = {"test_accuracy": mapped}, weights
    plain, eff = deployed(ccfg, trained, mode)
    levels, widest = check_constraints(plain, eff, w_levels, fan_in)
    save_weights(os.path.join(out, "deployed.npz"), eff, plain, mode)
    result = {"method": "train-and-constrain", "dataset": dataset, "source": weights_path,
              "w_levels": w_levels, "w_level_shift": shift, "fan_in": fan_in,
              "unconstrained_accuracy": before, "mapped_accuracy": mapped,
              "constrained_accuracy": metrics["test_accuracy"],
              "deployed_accuracy": accuracy(plain, mode, eff, dataset),
              "distinct_weight_values": levels, "largest_fan_in": widest,
              "epochs": epochs, "recurrent": list(cfg.recurrent), "layers": list(cfg.layers)}
    atomic_write_text(os.path.join(out, "constrain.json"), json.dumps(result, indent=2) + "\n")
    return result
