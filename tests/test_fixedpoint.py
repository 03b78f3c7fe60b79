"""The integer primitives of model/fixedpoint.py and a scalar re-derivation of SPEC.md."""

import numpy as np
import pytest

from spikeforge.model.config import Config
from spikeforge.model.fixedpoint import csd_scale, csd_terms, saturate, shift_round, signed_bits
from spikeforge.model.network import Network


def test_shift_round_is_round_half_up():
    x = np.array([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5])
    assert shift_round(x, 1).tolist() == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3]
    assert shift_round(x, 2).tolist() == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1]
    assert shift_round(x, -2).tolist() == (x * 4).tolist()
    assert shift_round(7, 0) == 7


def test_saturate_clamps_not_wraps():
    assert saturate(np.array([-200, -129, -128, 0, 127, 128, 1000]), 8).tolist() == \
        [-128, -128, -128, 0, 127, 127, 127]
    assert saturate(1 << 40, 16) == 32767


@pytest.mark.parametrize("value,terms", [
    (0.5, ((1, 1),)), (0.75, ((1, 0), (-1, 2))), (0.875, ((1, 0), (-1, 3))),
    (0.3125, ((1, 2), (1, 4))), (1.0, ((1, 0),)), (2.0 ** -11, ((1, 11),)),
])
def test_csd_terms(value, terms):
    assert csd_terms(value, 3) == terms
    assert sum(s * 2.0 ** -k for s, k in terms) == value


def test_csd_rejects_unrepresentable():
    assert csd_terms(0.3, 3) is None
    assert csd_terms(0.1015625, 2) is None      # 13/128 = 1/8 - 1/32 + 1/128: three terms
    assert csd_terms(0.1015625, 3) is not None


def test_csd_scale_rounds_each_term():
    x = np.array([7, -7, 13])
    # 0.75 x = x - rshr(x, 2)
    assert csd_scale(x, csd_terms(0.75, 3)).tolist() == [7 - 2, -7 - (-2), 13 - 3]


def test_signed_bits():
    assert signed_bits(-128, 127) == 8
    assert signed_bits(-128, 128) == 9
    assert signed_bits(127) == 8
    assert signed_bits(128) == 9


# ---- scalar re-derivation of SPEC.md, element by element with Python ints --------------------

def rshr(x, s):
    return (x + (1 << (s - 1))) >> s if s > 0 else x << -s


def sat(x, bits):
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, x))


def csd(x, terms, extra=0):
    return sum(s * rshr(x, k + extra) for s, k in terms)


def scalar_step(cfg, weights, x, labels):
    """One training step written straight from SPEC.md, with loops and Python ints."""
    T, B = cfg.timesteps, cfg.batch
    al = cfg.alpha_terms
    layers_u, layers_o, layers_x = [], [], []
    inp = [[[int(v) for v in x[t, b]] for b in range(B)] for t in range(T)]
    for w in weights:
        n_out, n_in = w.shape
        u = [[[0] * n_out for _ in range(B)] for _ in range(T)]
        o = [[[0] * n_out for _ in range(B)] for _ in range(T)]
        for b in range(B):
            for i in range(n_out):
                up, op = 0, 0
                for t in range(T):
                    cur = sum(int(w[i, j]) * inp[t][b][j] for j in range(n_in))
                    v = csd(up * (1 - op), al)
                    up = sat(v + cur, cfg.u_bits)
                    op = int(up > cfg.vth_int)
                    u[t][b][i], o[t][b][i] = up, op
        layers_x.append(inp)
        layers_u.append(u)
        layers_o.append(o)
        inp = o
    hw = cfg.half_window_int
    h = lambda uu: int(abs(uu - cfg.vth_int) < hw)
    n_out = weights[-1].shape[0]
    g = [[[0] * n_out for _ in range(B)] for _ in range(T)]
    for b in range(B):
        for i in range(n_out):
            count = sum(layers_o[-1][t][b][i] for t in range(T))
            target = cfg.target_true if labels[b] == i else cfg.target_false
            for t in range(T):
                g[t][b][i] = sat((count - target) << cfg.e_frac, cfg.e_bits)
    new_weights = [None] * len(weights)
    for layer in range(len(weights) - 1, -1, -1):
        w = weights[layer]
        n_out, n_in = w.shape
        u, o, xin = layers_u[layer], layers_o[layer], layers_x[layer]
        eps = [[[0] * n_out for _ in range(B)] for _ in range(T)]
        for b in range(B):
            for i in range(n_out):
                en = 0
                for t in range(T - 1, -1, -1):
                    gg = g[t][b][i]
                    if cfg.reset_grad:
                        gg = sat(gg - csd(rshr(u[t][b][i] * en, cfg.w_frac), al), cfg.e_bits)
                    en = sat(h(u[t][b][i]) * gg + csd(en * (1 - o[t][b][i]), al), cfg.e_bits)
                    eps[t][b][i] = en
        nw = np.zeros_like(w)
        for i in range(n_out):
            for j in range(n_in):
                dw = sum(eps[t][b][i] * xin[t][b][j] for t in range(T) for b in range(B))
                nw[i, j] = sat(int(w[i, j]) - csd(dw, cfg.lr_terms, cfg.e_frac - cfg.w_frac),
                               cfg.w_bits)
        new_weights[layer] = nw
        if layer > 0:
            ub = layers_u[layer - 1]
            g = [[[h(ub[t][b][j]) * sat(rshr(sum(int(w[i, j]) * eps[t][b][i]
                                                   for i in range(n_out)), cfg.w_frac),
                                         cfg.e_bits)
                   for j in range(n_in)] for b in range(B)] for t in range(T)]
    return layers_u, layers_o, new_weights


@pytest.mark.parametrize("reset_grad", [False, True])
@pytest.mark.parametrize("alpha,lr,seed", [(0.5, 2.0 ** -6, 0), (0.75, 2.0 ** -5 + 2.0 ** -7, 1),
                                           (0.875, 2.0 ** -3, 2)])
def test_vectorised_model_equals_scalar_spec(reset_grad, alpha, lr, seed):
    cfg = Config(layers=(7, 9, 6, 3), timesteps=5, batch=3, alpha=alpha, lr=lr, init_gain=3.0,
                 w_bits=10, w_frac=6, u_bits=12, e_bits=10, e_frac=4, target_true=4,
                 reset_grad=reset_grad).fit_accumulators().validate()
    rng = np.random.default_rng(seed)
    x = (rng.random((5, 3, 7)) < 0.5).astype(np.int64)
    labels = rng.integers(0, 3, size=3)
    net = Network(cfg, "fixed", seed=seed)
    before = [w.copy() for w in net.weights]
    result = net.train_step(x, labels)
    ref_u, ref_o, ref_w = scalar_step(cfg, before, x, labels)
    for layer, tr in enumerate(result.traces):
        assert np.array_equal(tr.u, np.array(ref_u[layer])), f"u of layer {layer}"
        assert np.array_equal(tr.o, np.array(ref_o[layer])), f"o of layer {layer}"
    assert any(result.traces[0].o.ravel())
    for layer, (w, ref) in enumerate(zip(net.weights, ref_w)):
        assert np.array_equal(w, ref), f"updated W of layer {layer}"
    assert any(not np.array_equal(a, b) for a, b in zip(before, net.weights)), "nothing learnt"
