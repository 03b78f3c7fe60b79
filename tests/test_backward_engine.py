"""Backward Engine (hdl/backward.py) bit for bit against the golden model.

Every job compares ``eps`` (all entries), the non-zero bitmask and ``g_below`` word for word with
``Network.backward_layer`` / ``FixedArith.backprop`` (``sim/verify/backward.py: golden_layer``),
and the engine's cycle counter with the testbench's own count. Vectors: random data of controlled
density, edge cases (no non-zero eps, every eps non-zero, saturating gradients and weights, every or
no output masked, smaller run-time dimensions than the build), and real digits data after golden
training; each in sparse and dense mode.

- Amaranth simulator: tiny configurations (fast, Python only).
- cocotb + Verilator: the digits preset (real data) and a small reset-gradient configuration,
  one build each serving all their vectors; Icarus when installed. Bigger tables: ``-m slow``.
"""

import numpy as np
import pytest

from conftest import require_simulator

from spikeforge.hdl.design import Design
from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config, preset
from spikeforge.model.fixedpoint import smax, smin
from spikeforge.sim.verify.backward import check_job, golden_layer, make_job, run_verilog
from spikeforge.sim.verify.backward import run_amaranth as _run_amaranth


def run_amaranth(cfg, hw, jobs):
    return _run_amaranth(Design(cfg, hw), jobs)


def tiny_cfg(reset_grad, layers=(5, 11, 6), T=3, B=2):
    return Config(layers=layers, timesteps=T, batch=B, target_true=min(2, T),
                  reset_grad=reset_grad).fit_accumulators().validate()


# ---- vector generators -------------------------------------------------------------------------

def random_job(cfg, rng, n_out, n_in, T, B, sparse, density=0.5, mask_density=0.5, name=None):
    """u spread around the threshold (some far outside the window), g non-zero with
    ``density``, full-range weights, h_below with ``mask_density`` ones."""
    vth, hw = cfg.vth_int, cfg.half_window_int
    u = rng.integers(vth - 2 * hw, vth + 2 * hw, size=(T, B, n_out))
    g = rng.integers(-3 << cfg.e_frac, 3 << cfg.e_frac, size=(T, B, n_out))
    g = g * (rng.random((T, B, n_out)) < density)
    name = name or f"random_{n_out}x{n_in}_T{T}B{B}_{'sparse' if sparse else 'dense'}"
    if n_in == 0:
        return make_job(cfg, u, g, sparse=sparse, name=name)
    w = rng.integers(smin(cfg.w_bits), smax(cfg.w_bits) + 1, size=(n_out, n_in))
    hb = (rng.random((T, B, n_in)) < mask_density).astype(np.int64)
    return make_job(cfg, u, g, w, hb, sparse=sparse, name=name)


def edge_jobs(cfg, rng, sparse):
    """Edge cases at the build's maximal dimensions."""
    T, B = cfg.timesteps, cfg.batch
    n_out, n_in = cfg.layers[-1], cfg.layers[-2]
    vth, hw = cfg.vth_int, cfg.half_window_int
    mode = "sparse" if sparse else "dense"
    w = rng.integers(smin(cfg.w_bits), smax(cfg.w_bits) + 1, size=(n_out, n_in))
    ones = np.ones((T, B, n_in), dtype=np.int64)
    jobs = []
    # no non-zero eps at all (g = 0), every output needed
    u = rng.integers(vth - 2 * hw, vth + 2 * hw, size=(T, B, n_out))
    jobs.append(make_job(cfg, u, np.zeros_like(u), w, ones, sparse, f"no_eps_{mode}"))
    # every eps non-zero: u inside the window, g > 0, eps_next >= 0 (without reset_grad)
    u = rng.integers(vth - hw + 1, vth + hw, size=(T, B, n_out))
    g = rng.integers(1, 4 << cfg.e_frac, size=(T, B, n_out))
    jobs.append(make_job(cfg, u, g, w, ones, sparse, f"all_eps_{mode}"))
    # saturating: extreme gradients, weights and membranes; every output needed
    g = rng.choice([smin(cfg.e_bits), smax(cfg.e_bits)], size=(T, B, n_out))
    u = rng.choice([smin(cfg.u_bits), vth, vth + 1, smax(cfg.u_bits)], size=(T, B, n_out))
    w_sat = rng.choice([smin(cfg.w_bits), smax(cfg.w_bits)], size=(n_out, n_in))
    jobs.append(make_job(cfg, u, g, w_sat, ones, sparse, f"saturating_{mode}"))
    # every output needed / no output needed, random eps
    jobs.append(random_job(cfg, rng, n_out, n_in, T, B, sparse, mask_density=1.0,
                           name=f"no_mask_{mode}"))
    jobs.append(random_job(cfg, rng, n_out, n_in, T, B, sparse, mask_density=0.0,
                           name=f"all_masked_{mode}"))
    # very sparse eps, sparse masks
    jobs.append(random_job(cfg, rng, n_out, n_in, T, B, sparse, density=0.05, mask_density=0.2,
                           name=f"very_sparse_{mode}"))
    # smaller run-time dimensions than the build, and a first layer (no layer below)
    jobs.append(random_job(cfg, rng, max(1, n_out - 3), max(1, n_in - 2), max(1, T - 1), 1,
                           sparse, name=f"small_dims_{mode}"))
    jobs.append(random_job(cfg, rng, cfg.layers[1], 0, T, B, sparse, name=f"first_layer_{mode}"))
    return jobs


def saturation_seen(cfg, jobs):
    """True if some golden eps or g_below hits a saturation bound."""
    lo, hi = smin(cfg.e_bits), smax(cfg.e_bits)
    for job in jobs:
        gold = golden_layer(cfg, job)
        for key in ("eps", "g_below"):
            if key in gold and (np.any(gold[key] == lo) or np.any(gold[key] == hi)):
                return True
    return False


def real_jobs(cfg, epochs_batches=None):
    """Both layers of one real digits training step, after golden training (sparse and dense)."""
    from spikeforge.model.data import load_dataset
    from spikeforge.model.encode import encode
    from spikeforge.model.network import Network
    from spikeforge.sim.bench.be import real_layer_jobs

    data = load_dataset("digits")
    net = Network(cfg, "fixed", seed=0)
    B = cfg.batch
    x = encode(data.x_train, cfg.timesteps, data.vmax, "rate")
    n_batches = epochs_batches if epochs_batches is not None else len(data.x_train) // B
    for i in range(n_batches):
        net.train_step(x[:, i * B:(i + 1) * B], data.y_train[i * B:(i + 1) * B])
    xt = encode(data.x_test[:B], cfg.timesteps, data.vmax, "rate")
    jobs = []
    for sparse in (True, False):
        jobs += real_layer_jobs(cfg, net, xt, data.y_test[:B], sparse)[1]
    return jobs


def check_all(cfg, jobs, results):
    assert len(results) == len(jobs)
    for job, res in zip(jobs, results):
        check_job(cfg, job, res)


# ---- Amaranth simulator ------------------------------------------------------------------------

@pytest.mark.parametrize("reset_grad", [False, True])
@pytest.mark.parametrize("pes", [4, 3])
def test_amaranth_random_and_edges(reset_grad, pes):
    cfg = tiny_cfg(reset_grad)
    hw = HwParams(pes=pes)
    rng = np.random.default_rng(10 * pes + reset_grad)
    jobs = []
    for sparse in (True, False):
        jobs.append(random_job(cfg, rng, 6, 11, 3, 2, sparse))
        jobs += edge_jobs(cfg, rng, sparse)
    check_all(cfg, jobs, run_amaranth(cfg, hw, jobs))
    assert saturation_seen(cfg, jobs)


def test_amaranth_all_eps_nonzero_really():
    cfg = tiny_cfg(False)
    jobs = [j for j in edge_jobs(cfg, np.random.default_rng(3), True) if j["name"].startswith("all")]
    assert np.all(golden_layer(cfg, jobs[0])["eps"] != 0)
    check_all(cfg, jobs, run_amaranth(cfg, HwParams(pes=4), jobs))


def test_amaranth_one_lane_one_point():
    cfg = tiny_cfg(True, layers=(3, 4, 2), T=1, B=1)
    rng = np.random.default_rng(5)
    jobs = [random_job(cfg, rng, 2, 4, 1, 1, s, density=1.0) for s in (True, False)]
    check_all(cfg, jobs, run_amaranth(cfg, HwParams(pes=1), jobs))


def test_amaranth_real_digits_slice():
    """Real digits traces (after 20 golden training steps), first 2 time steps of 2 samples, on
    the digits geometry (64-128-10, P = 8)."""
    cfg = preset("digits").replace(timesteps=2, batch=2, target_true=2)
    jobs = real_jobs(cfg, epochs_batches=20)
    check_all(cfg, jobs, run_amaranth(cfg, HwParams(pes=8), jobs))


def test_cycles_track_sparsity():
    """Dense: exactly the MAC rounds plus one cycle per point (its lanes seen done), up to two
    per non-empty 16-bit chunk of its walk (the generator selects a chunk, then loads it) and
    the pipeline fill; sparse: zero eps and masked outputs
    cost no cycle (only the recurrence and one write per needed output remain)."""
    cfg = tiny_cfg(False, layers=(4, 16, 8), T=2, B=2)
    P = 4
    rng = np.random.default_rng(7)
    T, B, n_out, n_in = 2, 2, 8, 16
    u = rng.integers(cfg.vth_int - 10, cfg.vth_int + 10, size=(T, B, n_out))
    w = rng.integers(-100, 100, size=(n_out, n_in))
    full = np.ones((T, B, n_in), dtype=np.int64)
    none = np.zeros((T, B, n_in), dtype=np.int64)
    g = rng.integers(1, 100, size=(T, B, n_out))
    jobs = [make_job(cfg, u, g, w, full, sparse=False, name="dense"),
            make_job(cfg, u, np.zeros_like(g), w, none, sparse=True, name="nothing"),
            make_job(cfg, u, g, w, full, sparse=True, name="sparse_full")]
    res = run_amaranth(cfg, HwParams(pes=P), jobs)
    check_all(cfg, jobs, res)
    rounds = T * B * n_out * (n_in // P)
    chunks = -(-n_in // 16)
    assert rounds <= res[0]["cycles"] <= rounds + T * B * (1 + 2 * chunks) + 12
    # nothing to compute: recurrence (T*B*ceil(n_out/P) words) and one cycle per empty point
    assert res[1]["cycles"] <= T * B * (n_out // P) + 2 * T * B + 12
    # every eps non-zero and every output needed: sparse mode costs what dense does
    assert abs(res[2]["cycles"] - res[0]["cycles"]) <= 2


# ---- cocotb (Verilator, Icarus) ----------------------------------------------------------------

def _run_verilog(cfg, hw, jobs, simulator):
    return run_verilog(Design(cfg, hw), jobs, simulator=simulator)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_digits_real_and_edges(simulator):
    """Digits preset build: real data of one training step after one epoch (both layers,
    sparse and dense) and the edge cases, one build."""
    require_simulator(simulator)
    cfg = preset("digits")
    hw = HwParams()
    rng = np.random.default_rng(11)
    jobs = real_jobs(cfg)
    jobs += edge_jobs(cfg, rng, True)
    jobs += [j for j in edge_jobs(cfg, rng, False) if j["name"].startswith(("no_eps", "sat"))]
    results = _run_verilog(cfg, hw, jobs, simulator)
    check_all(cfg, jobs, results)
    sparse_total = sum(r["cycles"] for j, r in zip(jobs[:4], results[:4]) if "sparse" in j["name"])
    dense_total = sum(r["cycles"] for j, r in zip(jobs[:4], results[:4]) if "dense" in j["name"])
    # input sparsity is skipped a whole eps word (P neurons) at a time, output sparsity one j at
    # a time: on real digits data that saves well over half of the dense cycles
    assert dense_total > 2 * sparse_total


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cocotb_reset_grad_small(simulator):
    require_simulator(simulator)
    cfg = tiny_cfg(True, layers=(6, 13, 9), T=4, B=3)
    hw = HwParams(pes=4)
    rng = np.random.default_rng(12)
    jobs = []
    for sparse in (True, False):
        jobs.append(random_job(cfg, rng, 9, 13, 4, 3, sparse))
        jobs += edge_jobs(cfg, rng, sparse)
    check_all(cfg, jobs, _run_verilog(cfg, hw, jobs, simulator))


@pytest.mark.slow
@pytest.mark.parametrize("pes", [2, 5, 16])
@pytest.mark.parametrize("reset_grad", [False, True])
def test_cocotb_table(pes, reset_grad):
    require_simulator("verilator")
    cfg = tiny_cfg(reset_grad, layers=(20, 37, 23, 7), T=5, B=3)
    hw = HwParams(pes=pes)
    rng = np.random.default_rng(100 * pes + reset_grad)
    jobs = []
    for sparse in (True, False):
        for n_out, n_in in ((7, 23), (23, 37), (37, 0)):
            for density in (0.02, 0.3, 1.0):
                jobs.append(random_job(cfg, rng, n_out, n_in, 5, 3, sparse, density=density,
                                       mask_density=rng.random()))
        jobs += edge_jobs(cfg, rng, sparse)
    check_all(cfg, jobs, _run_verilog(cfg, hw, jobs, "verilator"))


@pytest.mark.slow
def test_cocotb_digits_reset_grad_real():
    require_simulator("verilator")
    cfg = preset("digits").replace(reset_grad=True)
    jobs = real_jobs(cfg)
    check_all(cfg, jobs, _run_verilog(cfg, HwParams(), jobs, "verilator"))


def test_verilog_units_registered():
    from spikeforge.hdl import generate
    assert "spikeforge.hdl.backward" in generate.ENGINE_MODULES
    from spikeforge.hdl.backward import verilog_units
    from amaranth.hdl import Fragment
    (name, unit), = verilog_units(Design(tiny_cfg(False), HwParams()))
    assert name == "sf_backward_engine"
    Fragment.get(unit, None)
