"""Train-and-constrain (SPEC 6a, model/constrain.py) and the sequence baselines: the effective
weights obey the limits in fixed and float mode alike, training is straight-through, the whole
method runs from the CLI and its deployed network is an ordinary one that obeys them; the Elman
baseline and a recurrent spiking network train on digits_rows."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from spikeforge.model.config import Config, ConfigError
from spikeforge.model.network import Network


def small(**kw):
    return Config(layers=(12, 20, 6), timesteps=6, batch=4, init_gain=2.5,
                  **kw).fit_accumulators().validate()


@pytest.mark.parametrize("recurrent", [(), (0,)])
def test_effective_weights_obey_levels_and_fan_in_in_both_modes(recurrent):
    cfg = small(recurrent=recurrent, w_levels=8, w_level_shift=9, fan_in=7)
    fixed = Network(cfg, "fixed", seed=2)
    eff = fixed.effective()
    for l in range(cfg.n_layers):
        rows = [eff[l]] + ([eff[cfg.n_layers]] if l in recurrent else [])
        assert (np.concatenate(rows, axis=1) != 0).sum(axis=1).max() <= 7
    values = np.unique(np.concatenate([w.ravel() for w in eff]))
    assert len(values) <= 8 and np.all(values % (1 << 9) == 0)
    # the float form of the same weights has the same effective weights
    floatn = Network(cfg, "float", weights=[w / (1 << cfg.w_frac) for w in fixed.weights])
    for a, b in zip(eff, floatn.effective()):
        np.testing.assert_array_equal(a / (1 << cfg.w_frac), b)
    # and the forward pass uses them
    x = (np.random.default_rng(0).random((6, 4, 12)) < 0.5).astype(np.int64)
    plain = Network(cfg.replace(w_levels=0, fan_in=0), "fixed", weights=eff)
    for a, b in zip(fixed.forward(x), plain.forward(x)):
        assert np.array_equal(a.u, b.u)


def test_constrained_training_is_straight_through():
    """The update reaches the full-precision weights, pruned ones included (they may regrow)."""
    cfg = small(fan_in=3)
    net = Network(cfg, "fixed", seed=1)
    eff = net.effective()
    pruned = (eff[0] == 0) & (net.weights[0] != 0)
    before = net.weights[0].copy()
    rng = np.random.default_rng(1)
    for _ in range(3):
        net.train_step((rng.random((6, 4, 12)) < 0.6).astype(np.int64), rng.integers(0, 6, 4))
    assert pruned.any() and (net.weights[0][pruned] != before[pruned]).any()


def test_constraint_fields_are_validated():
    with pytest.raises(ConfigError, match="power of two"):
        small(w_levels=12)
    with pytest.raises(ConfigError, match="exceed"):
        small(w_levels=16, w_level_shift=14)
    with pytest.raises(ConfigError, match="fan_in"):
        small(fan_in=-1)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeforge.cli", *args], capture_output=True,
                          text=True)


def test_train_and_constrain_from_the_cli(tmp_path):
    from spikeforge.model.constrain import check_constraints
    from spikeforge.model.weights import load_weights_file
    src = tmp_path / "u"
    r = run_cli("train", "--dataset", "digits4", "--epochs", "2", "--out", str(src), "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "c"
    r = run_cli("constrain", str(src / "weights.npz"), "--w-levels", "8", "--fan-in", "12",
                "--epochs", "1", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "constrain.json").read_text())
    assert result["dataset"] == "digits4"
    weights, cfg, mode = load_weights_file(str(out / "deployed.npz"))
    assert cfg.w_levels == 0 and cfg.fan_in == 0            # an ordinary network
    values, widest = check_constraints(cfg, weights, 8, 12)
    assert values <= 8 and widest <= 12
    assert result["deployed_accuracy"] == result["constrained_accuracy"]
    assert result["constrained_accuracy"] > 0.3
    # the deployed file runs on an ordinary engine: infer gives its accuracy
    r = run_cli("infer", "--weights", str(out / "deployed.npz"), "--dataset", "digits4",
                "--json", str(tmp_path / "i.json"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "i.json").read_text())["test_accuracy"] == pytest.approx(
        result["deployed_accuracy"])


def test_elman_baseline_and_recurrent_spiking_network_train_on_digits_rows(tmp_path):
    r = run_cli("train", "--method", "elman", "--dataset", "digits_rows", "--epochs", "4",
                "--set", "layers=8,32,10", "--readout", "last", "--out", str(tmp_path / "e"),
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["test_accuracy"] > 0.5
    r = run_cli("train", "--dataset", "digits", "--readout", "last")
    assert r.returncode != 0 and "--method elman" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--dataset", "digits_rows", "--epochs", "2", "--out",
                str(tmp_path / "s"), "--quiet")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "s" / "weights.npz") as f:
        assert "v0" in f.files and f["v0"].shape == (f["w0"].shape[0],) * 2
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.2                    # chance is 0.1
    # the accelerator runs recurrent hidden layers, not a recurrent output layer
    r = run_cli("train", "--engine", "rtl", "--dataset", "digits_rows", "--set", "recurrent=1",
                "--epochs", "1", "--out", str(tmp_path / "r"))
    assert r.returncode != 0 and "output layer" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--method", "elman", "--dataset", "digits", "--epochs", "1")
    assert r.returncode != 0 and "sequence" in r.stderr


def test_activity_levels_bound_the_ticks_per_frame():
    from spikeforge.model.data import load_dataset
    d = load_dataset("digits_rows")                         # 8 frames
    ok = Config(layers=(8, 16, 10), timesteps=16, act_levels=3).fit_accumulators()
    d.check_network(ok)                                      # 2 ticks: 3 levels
    with pytest.raises(ConfigError, match="timesteps=16 or fewer"):
        d.check_network(dataclasses.replace(ok, timesteps=24).fit_accumulators())   # 3 ticks: 4 levels
    with pytest.raises(ConfigError, match="act_levels"):
        Config(act_levels=1).validate()


@pytest.mark.parametrize("readout", ["mean", "last"])
def test_elman_gradients_equal_finite_differences(readout):
    from spikeforge.model.elman import _Elman
    rng = np.random.default_rng(3)
    net = _Elman(5, 7, 3, rng, readout)
    xs, labels = rng.random((6, 4, 5)), np.array([0, 1, 2, 1])

    def loss():
        z = net.forward(xs)[1]
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        return -np.log(p[np.arange(4), labels]).mean()

    grads = net.grads(xs, labels)[1]
    for name, p in net.params.items():
        for idx in np.ndindex(p.shape):
            keep = p[idx]
            p[idx] = keep + 1e-6
            up = loss()
            p[idx] = keep - 1e-6
            down = loss()
            p[idx] = keep
            assert abs((up - down) / 2e-6 - grads[name][idx]) < 1e-7, (name, idx)


@pytest.mark.slow
def test_digits_rows_trains_one_epoch_on_the_rtl_bit_identical_to_golden(tmp_path):
    """Issue 15's acceptance: the recurrent preset, one epoch on the accelerator's Verilog
    (every step's weights checked against the golden model), then the final weights compared
    with a golden run of the same command."""
    r = run_cli("train", "--engine", "rtl", "--dataset", "digits_rows", "--epochs", "1",
                "--seed", "0", "--out", str(tmp_path / "r"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--dataset", "digits_rows", "--epochs", "1", "--seed", "0",
                "--out", str(tmp_path / "g"), "--quiet")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "r" / "weights.npz") as a, np.load(tmp_path / "g" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files) and "v0" in a.files
        for name in ("w0", "w1", "v0"):
            assert np.array_equal(a[name], b[name]), name
