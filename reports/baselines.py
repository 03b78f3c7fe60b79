"""CPU training-throughput baselines, measured on this machine, on the same network and batch.

- snnTorch (torch CPU, autograd BPTT, ``snn.Leaky`` with reset to zero and the rectangular
  surrogate): the software a user would otherwise train with.
- the golden model in float and fixed mode (numpy).

Each measurement trains on real encoded data (the preset's data set, deterministic rate code) for
a warm-up of a few steps and then times whole training steps (forward, backward, update) with
``time.perf_counter``; throughput is samples per second.
"""

import dataclasses
import os
import platform
import time

import numpy as np

from spikeforge.model.data import load_dataset
from spikeforge.model.encode import encode
from spikeforge.model.network import Network, init_weights

__all__ = ["measure_golden", "measure_snntorch", "measure_cpu", "measure_cpu_sweep",
           "rectangular_surrogate", "snntorch_step_fn", "torch_step_fn", "SWEEP_BATCHES"]


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
    rate, steps, elapsed = _torch_rate(step, cfg, dataset, seconds, warmup)
    return {"samples_per_s": rate, "steps": steps, "seconds": elapsed,
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


def torch_step_fn(cfg, device="cpu"):
    """A (weights, step(x, y), predict(x)) triple training the network with plain torch BPTT
    (no snnTorch): the golden model's LIF (``u_t = alpha u_{t-1} (1 - o_{t-1}) + W x_t``,
    ``o_t = [u_t > vth]``, rectangular surrogate), spike-count MSE loss, SGD at ``cfg.lr``."""
    import torch

    surrogate = rectangular_surrogate(cfg.window)
    weights = [torch.tensor(w, dtype=torch.float32, device=device, requires_grad=True)
               for w in init_weights(cfg, 0)]
    opt = torch.optim.SGD(weights, lr=cfg.lr)

    def forward(x):
        T, B, _ = x.shape
        u = [torch.zeros(B, w.shape[0], device=device) for w in weights]
        o = [torch.zeros(B, w.shape[0], device=device) for w in weights]
        counts = 0
        for t in range(T):
            inp = x[t]
            for layer, w in enumerate(weights):
                u[layer] = cfg.alpha * u[layer] * (1 - o[layer]) + inp @ w.T
                o[layer] = surrogate(u[layer] - cfg.vth)
                inp = o[layer]
            counts = counts + inp
        return counts

    def step(x, y):
        counts = forward(x)
        target = torch.full_like(counts, float(cfg.target_false))
        target[torch.arange(x.shape[1], device=device), y] = float(cfg.target_true)
        loss = 0.5 * ((counts - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    def predict(x):
        with torch.no_grad():
            return forward(x).argmax(dim=1)

    return weights, step, predict


def _torch_rate(step, cfg, dataset, seconds, warmup=3):
    """``(samples/s, steps, seconds)`` of a torch training ``step`` on the data set's batches,
    timed after ``warmup`` steps."""
    import torch
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
    return steps * cfg.batch / elapsed, steps, elapsed


def _torch_accuracy(make, cfg, dataset, epochs):
    """Test accuracy after ``epochs`` epochs (the golden loop's orders and encoder)."""
    import torch

    from spikeforge.model.train import epoch_order
    data = load_dataset(dataset)
    _, step, predict = make(cfg)
    x_test = torch.tensor(encode(data.x_test, cfg.timesteps, data.vmax, "rate"),
                          dtype=torch.float32)
    B = cfg.batch
    for epoch in range(epochs):
        order = epoch_order(0, epoch, len(data.x_train))
        x = torch.tensor(encode(data.x_train[order], cfg.timesteps, data.vmax, "rate"),
                         dtype=torch.float32)
        y = torch.tensor(data.y_train[order])
        for i in range(len(order) // B):
            step(x[:, i * B:(i + 1) * B], y[i * B:(i + 1) * B])
    pred = predict(x_test).numpy()
    return float((pred == data.y_test).mean())


def _snntorch_triple(cfg):
    import torch
    weights, step = snntorch_step_fn(cfg)
    import snntorch as snn
    lifs = [snn.Leaky(beta=cfg.alpha, threshold=cfg.vth, reset_mechanism="zero")
            for _ in weights]

    def predict(x):
        with torch.no_grad():
            mems = [torch.zeros(x.shape[1], w.shape[0]) for w in weights]
            counts = 0
            for t in range(x.shape[0]):
                inp = x[t]
                for layer, (w, lif) in enumerate(zip(weights, lifs)):
                    inp, mems[layer] = lif(inp @ w.T, mems[layer])
                counts = counts + inp
            return counts.argmax(dim=1)
    return weights, step, predict


SWEEP_BATCHES = (8, 16, 32, 64, 128, 256)


def measure_cpu_sweep(cfg, dataset, batches=SWEEP_BATCHES, seconds=2.0, epochs=20):
    """Each CPU baseline at every batch size of ``batches``: samples/s; at the batch that
    maximises it, the test accuracy after ``epochs`` epochs. The loss sums over the batch, so the
    learning rate is scaled by ``cfg.batch / batch`` (the same step per sample at every batch;
    a power of two, so the fixed-point update stays a shift)."""
    from spikeforge.model.train import TrainOptions, train
    import tempfile

    engines = {
        "golden_fixed": "golden model, fixed point (numpy)",
        "golden_float": "golden model, float64 (numpy)",
        "snntorch": "snnTorch BPTT (torch CPU, float32)",
        "torch": "plain torch BPTT, the same LIF by hand (torch CPU, float32)",
    }
    out = {"machine": {"cpu": platform.processor() or platform.machine(),
                       "cores": os.cpu_count(), "python": platform.python_version(),
                       "load_average_1min": round(os.getloadavg()[0], 2)},
           "network": list(cfg.layers), "timesteps": cfg.timesteps, "dataset": dataset,
           "batches": list(batches), "epochs_for_accuracy": epochs, "lr": cfg.lr,
           "lr_rule": f"lr = {cfg.lr} x {cfg.batch} / batch",
           "engines": {}}
    def at_batch(b):
        # the same step per sample (the loss sums over the batch); a larger batch needs wider
        # gradient accumulators in fixed point: refit them
        return dataclasses.replace(cfg, batch=b, lr=cfg.lr * cfg.batch / b).fit_accumulators()

    for key, what in engines.items():
        try:
            if key.startswith("torch") or key == "snntorch":
                import torch  # noqa: F401
                if key == "snntorch":
                    import snntorch  # noqa: F401
        except ImportError as exc:
            out["engines"][key] = {"what": what, "error": f"not measured: {exc}"}
            continue
        rates = {}
        for b in batches:
            c = at_batch(b)
            if key.startswith("golden"):
                rates[b] = measure_golden(c, dataset, key.split("_")[1], seconds)["samples_per_s"]
            elif key == "snntorch":
                rates[b] = _torch_rate(snntorch_step_fn(c)[1], c, dataset, seconds)[0]
            else:
                rates[b] = _torch_rate(torch_step_fn(c)[1], c, dataset, seconds)[0]
        best = max(rates, key=rates.get)
        c = at_batch(best)
        if key.startswith("golden"):
            with tempfile.TemporaryDirectory() as tmp:
                m = train(c, TrainOptions(dataset=dataset, mode=key.split("_")[1], epochs=epochs,
                                          out=tmp, progress=False), log=lambda *a: None)
            acc = m["test_accuracy"]
        else:
            acc = _torch_accuracy(_snntorch_triple if key == "snntorch" else torch_step_fn, c,
                                  dataset, epochs)
        out["engines"][key] = {"what": what, "samples_per_s": {str(b): r for b, r in
                                                               rates.items()},
                               "best_batch": best, "best_samples_per_s": rates[best],
                               "test_accuracy_at_best_batch": acc}
    return out
