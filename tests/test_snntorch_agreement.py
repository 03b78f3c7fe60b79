"""Float mode equals snnTorch autograd: spikes identical, weight gradients to 1e-6 relative."""

import numpy as np
import pytest

from spikeforge.model.config import Config
from spikeforge.model.network import Network, init_weights
from spikeforge.reports.baselines import rectangular_surrogate as rectangular

torch = pytest.importorskip("torch", reason="the cross-check needs torch==2.13.0 (pip install -e '.[dev]')")
snn = pytest.importorskip("snntorch", reason="the cross-check needs snntorch (pip install -e '.[dev]')")


def snntorch_grads(cfg, weights, x, labels):
    """Spikes of every layer and dL/dW by snnTorch + autograd for the spike-count loss."""
    torch.set_default_dtype(torch.float64)
    try:
        ws = [torch.tensor(w, requires_grad=True) for w in weights]
        lifs = [snn.Leaky(beta=cfg.alpha, threshold=cfg.vth, reset_mechanism="zero",
                          spike_grad=rectangular(cfg.window)) for _ in ws]
        T, B, _ = x.shape
        mems = [torch.zeros(B, w.shape[0]) for w in ws]
        spikes = [[] for _ in ws]
        xt = torch.tensor(x, dtype=torch.float64)
        for t in range(T):
            inp = xt[t]
            for layer, (w, lif) in enumerate(zip(ws, lifs)):
                spk, mems[layer] = lif(inp @ w.T, mems[layer])
                spk = spk.to(torch.float64)
                spikes[layer].append(spk)
                inp = spk
        counts = torch.stack(spikes[-1]).sum(0)
        target = torch.full_like(counts, float(cfg.target_false))
        target[torch.arange(B), torch.tensor(labels)] = float(cfg.target_true)
        loss = 0.5 * ((counts - target) ** 2).sum()
        for layer_spikes in spikes[:-1]:   # the activity regulariser (SPEC 5a), hidden layers
            c = torch.stack(layer_spikes).sum(0)
            loss = loss + 0.5 * cfg.act_upper * (torch.relu(c - cfg.act_max) ** 2).sum() \
                + 0.5 * cfg.act_lower * (torch.relu(cfg.act_min - c) ** 2).sum() \
                + 0.5 * cfg.act_pop_upper * (torch.relu(c.sum(-1) - cfg.act_pop_max) ** 2).sum()
        loss.backward()
        return ([torch.stack(s).detach().numpy() for s in spikes],
                [w.grad.numpy() for w in ws])
    finally:
        torch.set_default_dtype(torch.float32)


CASES = [
    # layers, T, B, alpha, vth, window, gain, seed
    ((12, 20, 5), 6, 4, 0.5, 1.0, 2.0, 3.0, 0),
    ((16, 24, 18, 6), 8, 3, 0.75, 0.5, 1.0, 2.5, 1),
    ((10, 30, 10), 5, 5, 0.875, 1.0, 2.0, 2.0, 2),
    ((8, 16, 12, 12, 4), 7, 4, 0.5, 0.25, 1.0, 3.0, 3),
]


@pytest.mark.parametrize("layers,T,B,alpha,vth,window,gain,seed", CASES)
def test_float_mode_equals_snntorch(layers, T, B, alpha, vth, window, gain, seed):
    cfg = Config(layers=layers, timesteps=T, batch=B, alpha=alpha, vth=vth, window=window,
                 init_gain=gain, target_true=T // 2 + 1).fit_accumulators().validate()
    rng = np.random.default_rng(seed)
    weights = init_weights(cfg, seed)
    x = (rng.random((T, B, layers[0])) < 0.4).astype(np.int64)
    labels = rng.integers(0, layers[-1], size=B)

    net = Network(cfg, "float", weights=weights)
    traces = net.forward(x)
    grads = net.backward(traces, labels)
    ref_spikes, ref_grads = snntorch_grads(cfg, weights, x, labels)

    for layer, (tr, ref) in enumerate(zip(traces, ref_spikes)):
        assert np.array_equal(tr.o, ref.astype(np.int64)), f"spikes differ in layer {layer}"
    # the test must exercise the gradient path: some spikes and some non-zero gradients
    assert any(tr.o.any() for tr in traces[:-1])
    assert all(np.abs(g).sum() > 0 for g in ref_grads), "a layer got no gradient: case too weak"
    for layer, (g, ref) in enumerate(zip(grads, ref_grads)):
        scale = np.abs(ref).max()
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-6 * scale,
                                   err_msg=f"dW of layer {layer}")


def test_reset_gradient_flag_matches_undetached_snntorch_form():
    """With reset_grad the model adds -alpha*u[t]*eps[t+1]; check against torch autograd of the
    same recurrence written with a non-detached reset."""
    cfg = Config(layers=(10, 14, 4), timesteps=6, batch=3, init_gain=3.0, reset_grad=True,
                 target_true=4).fit_accumulators().validate()
    rng = np.random.default_rng(5)
    weights = init_weights(cfg, 5)
    x = (rng.random((6, 3, 10)) < 0.5).astype(np.int64)
    labels = rng.integers(0, 4, size=3)
    net = Network(cfg, "float", weights=weights)
    grads = net.backward(net.forward(x), labels)

    torch.set_default_dtype(torch.float64)
    try:
        spike = rectangular(cfg.window)
        ws = [torch.tensor(w, requires_grad=True) for w in weights]
        xt = torch.tensor(x, dtype=torch.float64)
        u = [torch.zeros(3, w.shape[0]) for w in ws]
        o = [torch.zeros(3, w.shape[0]) for w in ws]
        outs = []
        for t in range(6):
            inp = xt[t]
            for layer, w in enumerate(ws):
                u[layer] = cfg.alpha * u[layer] * (1 - o[layer]) + inp @ w.T
                o[layer] = spike(u[layer] - cfg.vth)
                inp = o[layer]
            outs.append(inp)
        counts = torch.stack(outs).sum(0)
        target = torch.zeros_like(counts)
        target[torch.arange(3), torch.tensor(labels)] = float(cfg.target_true)
        (0.5 * ((counts - target) ** 2).sum()).backward()
    finally:
        torch.set_default_dtype(torch.float32)
    for g, w in zip(grads, ws):
        assert np.abs(w.grad.numpy()).sum() > 0
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-6,
                                   atol=1e-6 * np.abs(w.grad.numpy()).max())


@pytest.mark.parametrize("upper,cmax,lower,cmin,pop,pmax", [
    (0.25, 2, 0.0, 0, 0.0, 0), (0.0, 0, 0.5, 3, 0.0, 0), (0.125, 3, 0.25, 1, 0.0, 0),
    (0.0, 0, 0.0, 0, 0.0625, 10), (0.125, 1, 0.0, 0, 0.03125, 4)])
def test_activity_regulariser_equals_autograd(upper, cmax, lower, cmin, pop, pmax):
    """Float mode with the activity regulariser (SPEC 5a) against autograd of the same loss."""
    cfg = Config(layers=(12, 20, 6), timesteps=6, batch=4, init_gain=3.0, target_true=4,
                 act_upper=upper, act_max=cmax, act_lower=lower, act_min=cmin,
                 act_pop_upper=pop, act_pop_max=pmax).fit_accumulators().validate()
    rng = np.random.default_rng(9)
    weights = init_weights(cfg, 9)
    x = (rng.random((6, 4, 12)) < 0.4).astype(np.int64)
    labels = rng.integers(0, 6, size=4)
    net = Network(cfg, "float", weights=weights)
    traces = net.forward(x)
    grads = net.backward(traces, labels)
    plain = Network(cfg.replace(act_upper=0.0, act_lower=0.0, act_pop_upper=0.0), "float",
                    weights=weights)
    plain_grads = plain.backward(plain.forward(x), labels)
    assert any(not np.allclose(a, b) for a, b in zip(grads, plain_grads)), "regulariser inert"
    _, ref_grads = snntorch_grads(cfg, weights, x, labels)
    for layer, (g, ref) in enumerate(zip(grads, ref_grads)):
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max(),
                                   err_msg=f"dW of layer {layer}")
