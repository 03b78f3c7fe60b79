"""Weight Update Engine: bit-exact with the golden model (``FixedArith.weight_grad`` and
``FixedArith.update``), in the Amaranth simulator and on the generated Verilog under Verilator (and
Icarus when installed).

Every word of dW and of the updated W is compared; a failure names the first mismatching index.
The default run covers G = 1 and G = 6, partial blocks and point groups, all-zero and all-one
spikes, extreme eps, saturating updates and real digits data (eps of a golden backward pass);
``pytest -m slow`` runs a bigger table.
"""

import gc

import numpy as np
import pytest

from conftest import require_simulator

from spikeforge.hdl.params import HwParams
from spikeforge.hdl.wupdate import WeightUpdateEngine
from spikeforge.model.config import Config, preset
from spikeforge.model.fixedpoint import smax, smin
from spikeforge.hdl.design import Design
from spikeforge.sim.bench.common import real_step
from spikeforge.sim.verify.engines import first_mismatch, golden_wupdate
from spikeforge.sim.verify.engines import simulate as _simulate


def simulate(kind, cfg, hw, cases, simulator="verilator"):
    return _simulate(kind, Design(cfg, hw), cases, simulator=simulator)


def simulate_cases_amaranth(kind, cfg, hw, cases):
    return _simulate(kind, Design(cfg, hw), cases, simulator="amaranth")


def small_cfg(layers, T, B, **fields):
    cfg = Config(layers=tuple(layers), timesteps=T, batch=B, target_true=min(T, 6), **fields)
    return cfg.fit_accumulators().validate()


def vectors(cfg, seed):
    """Random, all-zero, all-one, extreme and saturating vectors for every layer shape."""
    rng = np.random.default_rng(seed)
    T, B = cfg.timesteps, cfg.batch
    wlo, whi = smin(cfg.w_bits), smax(cfg.w_bits)
    elo, ehi = smin(cfg.e_bits), smax(cfg.e_bits)
    cases = []
    for n_in, n_out in zip(cfg.layers[:-1], cfg.layers[1:]):
        eps = rng.integers(elo, ehi + 1, (T, B, n_out))
        eps[rng.random(eps.shape) < 0.5] = 0               # sparse, as after the surrogate
        cases.append({"x": rng.integers(0, 2, (T, B, n_in)), "eps": eps,
                      "w": rng.integers(wlo, whi + 1, (n_out, n_in))})
        cases.append({"x": np.zeros((T, B, n_in), np.int64),
                      "eps": rng.integers(elo, ehi + 1, (T, B, n_out)),
                      "w": rng.integers(wlo, whi + 1, (n_out, n_in))})
        # all-one spikes, extreme eps: W saturates high (eps = min) and low (eps = max)
        eps = np.full((T, B, n_out), elo)
        eps[..., 1::2] = ehi
        w = np.full((n_out, n_in), whi - 1)
        w[1::2] = wlo + 1
        cases.append({"x": np.ones((T, B, n_in), np.int64), "eps": eps, "w": w})
        cases.append({"x": (rng.random((T, B, n_in)) < 0.8).astype(np.int64),
                      "eps": rng.integers(elo, ehi + 1, (T, B, n_out)),
                      "w": rng.integers(max(-64, wlo), min(64, whi) + 1, (n_out, n_in))})
    return cases


def check(cfg, cases, results):
    assert len(results) == len(cases)
    for index, (case, res) in enumerate(zip(cases, results)):
        dw, w_new = golden_wupdate(cfg, case["x"], case["eps"], case["w"])
        for name, got, want in (("dW", res["dw"], dw), ("W'", res["w_new"], w_new)):
            msg = first_mismatch(got, want)
            assert msg is None, f"case {index} ({case['w'].shape}): {name}: {msg}"
        assert res["cycles"] > 0


AMARANTH_TABLE = [
    ((3, 2), 1, 1, {}, 1, 1),
    ((10, 7, 5), 3, 2, {}, 3, 3),
    ((13, 5, 3), 2, 3, {"lr": 2.0 ** -4 + 2.0 ** -6}, 6, 2),
    ((9, 6), 2, 2, {"w_bits": 8, "w_frac": 4, "u_bits": 8, "e_bits": 8, "e_frac": 2,
                    "lr": 2.0 ** -1}, 2, 4),   # lr shift below zero: left shift of dW
]


@pytest.mark.parametrize("layers,T,B,fields,G,P", AMARANTH_TABLE)
def test_wupdate_amaranth(layers, T, B, fields, G, P):
    cfg = small_cfg(layers, T, B, **fields)
    hw = HwParams(wue_group=G, pes=P)
    cases = vectors(cfg, seed=G * 10 + P)
    check(cfg, cases, simulate_cases_amaranth("wue", cfg, hw, cases))


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_wupdate_rejects_bad_params():
    with pytest.raises(TypeError):
        WeightUpdateEngine(preset("digits"), {"wue_group": 4})
    with pytest.raises(ValueError):
        HwParams(pes=0).validate()
    gc.collect()     # the half-built components warn when collected; do it under this test's filter


SIMULATORS = ["verilator", "icarus"]

RTL_TABLE = [
    ((10, 7, 5), 3, 2, {}, 1, 3),
    ((13, 5, 3), 2, 3, {"w_bits": 8, "w_frac": 4, "u_bits": 8, "e_bits": 10, "e_frac": 4,
                        "lr": 2.0 ** -3}, 6, 2),
]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("layers,T,B,fields,G,P", RTL_TABLE)
def test_wupdate_rtl(simulator, layers, T, B, fields, G, P):
    require_simulator(simulator)
    cfg = small_cfg(layers, T, B, **fields)
    hw = HwParams(wue_group=G, pes=P)
    cases = vectors(cfg, seed=G + P)
    check(cfg, cases, simulate("wue", cfg, hw, cases, simulator=simulator))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_wupdate_rtl_digits(simulator):
    """The digits preset at the default P and G: eps of a golden backward pass on real digits
    data (both layers) plus extreme vectors at full size."""
    require_simulator(simulator)
    cfg = preset("digits")
    hw = HwParams()
    net, traces, _ = real_step(cfg, "digits")
    cases = [{"x": tr.x, "eps": tr.eps, "w": w} for tr, w in zip(traces, net.weights)]
    assert all((tr.eps != 0).any() for tr in traces), "real eps should not be all zero"
    cases += vectors(cfg, seed=5)[2:3]
    results = simulate("wue", cfg, hw, cases, simulator=simulator)
    check(cfg, cases, results)


SLOW_TABLE = [
    ((5, 4), 1, 1, {}, 1, 1),
    ((17, 9, 4), 4, 3, {}, 2, 4),
    ((20, 11), 2, 5, {}, 4, 5),
    ((12, 16, 7), 5, 2, {"lr": 2.0 ** -9 - 2.0 ** -12}, 5, 3),
    ((30, 6), 3, 2, {}, 6, 6),
    ((8, 8), 2, 2, {"w_bits": 6, "w_frac": 3, "u_bits": 6, "e_bits": 6, "e_frac": 2}, 3, 8),
    ((64, 40, 10), 8, 4, {}, 4, 8),
]


@pytest.mark.slow
@pytest.mark.parametrize("layers,T,B,fields,G,P", SLOW_TABLE)
def test_wupdate_rtl_table(layers, T, B, fields, G, P):
    require_simulator("verilator")
    cfg = small_cfg(layers, T, B, **fields)
    hw = HwParams(wue_group=G, pes=P)
    cases = vectors(cfg, seed=len(layers) + G)
    check(cfg, cases, simulate("wue", cfg, hw, cases))
