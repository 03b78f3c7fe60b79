"""CPU training-throughput baselines, measured on this machine, on the same network and batch.

- snnTorch (torch CPU, autograd BPTT, ``snn.Leaky`` with reset to zero and the rectangular
  surrogate): the software a user would otherwise train with.
- the golden model in float and fixed mode (numpy).

Each measurement trains on real encoded data (the preset's data set, deterministic rate code) for
a warm-up of a few steps and then times whole training steps (forward, backward, update) with
``time.perf_counter``; throughput is samples per second.
"""

import os
import platform
import time

import numpy as np

from spikeforge.model.data import load_dataset
from spikeforge.model.encode import encode
from spikeforge.model.network import Network, init_weights

__all__ = ["measure_golden", "measure_snntorch", "measure_cpu", "rectangular_surrogate",
           "snntorch_step_fn"]


def _batches(cfg, dataset, n_steps):
    data = load_dataset(dataset)
    x = encode(data.x_train, cfg.timesteps, data.vmax, "rate")
    B = cfg.batch
    n = min(n_steps, len(data.y_train) // B)
    return [(x[:, i * B:(i + 1) * B], data.y_train[i * B:(i + 1) * B]) for i in range(n)]


def measure_golden(cfg, dataset, mode, seconds=3.0, warmup=3):
    net = Network(cfg, mode, seed=0)
    batches = _batches(cfg, dataset, 10_000)
    for x, y in batches[:warmup]:
        net.train_step(x, y)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y = batches[steps % len(batches)]
        net.train_step(x, y)
        steps += 1
    elapsed = time.perf_counter() - t0
    return {"samples_per_s": steps * cfg.batch / elapsed, "steps": steps,
            "seconds": elapsed, "what": f"golden model, {mode} mode, numpy"}


def rectangular_surrogate(window):
    """snnTorch ``spike_grad``: Heaviside forward, ``[|x| < window/2]`` backward (the golden
    model's surrogate, with ``x = u - vth``)."""
    import torch

    class Rect(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x > 0).to(x.dtype)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * (x.abs() < window / 2).to(grad.dtype)

    return Rect.apply


def snntorch_step_fn(cfg, device="cpu"):
    """A (model, step(x, y)) pair training the preset network with snnTorch BPTT."""
    import snntorch as snn
    import torch

    surrogate = rectangular_surrogate(cfg.window)

    weights = [torch.tensor(w, dtype=torch.float32, device=device, requires_grad=True)
               for w in init_weights(cfg, 0)]
    lifs = [snn.Leaky(beta=cfg.alpha, threshold=cfg.vth, reset_mechanism="zero",
                      spike_grad=surrogate) for _ in weights]
    opt = torch.optim.SGD(weights, lr=cfg.lr)

    def step(x, y):
        T, B, _ = x.shape
        mems = [torch.zeros(B, w.shape[0], device=device) for w in weights]
        counts = 0
        for t in range(T):
            inp = x[t]
            for layer, (w, lif) in enumerate(zip(weights, lifs)):
                inp, mems[layer] = lif(inp @ w.T, mems[layer])
            counts = counts + inp
        target = torch.full_like(counts, float(cfg.target_false))
        target[torch.arange(B, device=device), y] = float(cfg.target_true)
        loss = 0.5 * ((counts - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return weights, step


def measure_snntorch(cfg, dataset, seconds=3.0, warmup=3, threads=None):
    import torch

    if threads:
        torch.set_num_threads(threads)
    _, step = snntorch_step_fn(cfg)
    batches = [(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
               for x, y in _batches(cfg, dataset, 10_000)]
    for x, y in batches[:warmup]:
        step(x, y)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        x, y = batches[steps % len(batches)]
        step(x, y)
        steps += 1
    elapsed = time.perf_counter() - t0
    return {"samples_per_s": steps * cfg.batch / elapsed, "steps": steps, "seconds": elapsed,
            "what": f"snnTorch {__import__('snntorch').__version__} BPTT, torch "
                    f"{torch.__version__} CPU, {torch.get_num_threads()} threads, float32"}


def measure_cpu(cfg, dataset, seconds=3.0):
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    # other work on the machine slows every figure: the 1-minute load before
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "network": list(cfg.layers), "timesteps": cfg.timesteps, "batch": cfg.batch,
        "dataset": dataset,
        "golden_float": measure_golden(cfg, dataset, "float", seconds),
        "golden_fixed": measure_golden(cfg, dataset, "fixed", seconds),
    }
    try:
        result["snntorch"] = measure_snntorch(cfg, dataset, seconds)
    except ImportError as exc:
        result["snntorch"] = {"samples_per_s": None, "what": f"not measured: {exc}"}
    return result
