"""Weight files (atomic, validated) and the ``spikeforge`` command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from spikeforge.cli.main import main
from spikeforge.model.config import preset
from spikeforge.model.network import Network
from spikeforge.model.weights import WeightsError, load_weights, save_weights


@pytest.fixture
def saved(tmp_path):
    cfg = preset("digits")
    net = Network(cfg, "fixed", seed=0)
    path = tmp_path / "w.npz"
    save_weights(path, net.weights, cfg, "fixed")
    return cfg, net, path


def test_roundtrip_and_mode_conversion(saved):
    cfg, net, path = saved
    w, _ = load_weights(path, cfg, "fixed")
    assert all(np.array_equal(a, b) for a, b in zip(w, net.weights))
    wf, _ = load_weights(path, cfg, "float")
    assert np.array_equal(wf[0], net.weights[0] / 4096.0)
    assert not [p for p in os.listdir(path.parent) if p.startswith(".tmp-")]


def test_corrupt_file(saved, tmp_path):
    cfg, _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_weights(bad, cfg, "fixed")
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    with pytest.raises(WeightsError, match="not a readable spikeforge weights file"):
        load_weights(junk, cfg, "fixed")
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "missing.npz", cfg, "fixed")


def test_mismatched_files(saved, tmp_path):
    cfg, net, path = saved
    with pytest.raises(WeightsError, match=r"layer 0 has shape \(128, 64\), .* needs \(256, 256\)"):
        load_weights(path, preset("mnist16"), "fixed")
    with pytest.raises(WeightsError, match="16-bit with 12 fraction bits but the config wants"):
        load_weights(path, cfg.replace(w_frac=10), "fixed")
    plain = tmp_path / "plain.npz"
    np.savez(plain, w0=net.weights[0], w1=net.weights[1])
    with pytest.raises(WeightsError, match="format tag"):
        load_weights(plain, cfg, "fixed")
    out_of_range = tmp_path / "range.npz"
    w = [x.copy() for x in net.weights]
    w[1][0, 0] = 1 << 20
    save_weights(out_of_range, w, cfg, "fixed")
    with pytest.raises(WeightsError, match="outside the 16-bit range"):
        load_weights(out_of_range, cfg, "fixed")
    missing = tmp_path / "missing_layer.npz"
    save_weights(missing, net.weights[:1], cfg, "fixed")
    with pytest.raises(WeightsError, match="has no layer 1"):
        load_weights(missing, cfg, "fixed")


def test_cli_train_writes_metrics_and_init(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--quiet", "--seed", "2"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "mode", "dataset", "epochs", "seconds"):
        assert key in m
    assert m["mode"] == "fixed" and m["dataset"] == "digits" and m["epochs"] == 1
    assert 0.5 < m["test_accuracy"] <= 1.0
    assert (out / "weights.npz").exists() and (out / "checkpoint.npz").exists()
    out2 = tmp_path / "run2"
    assert main(["train", "--epochs", "1", "--out", str(out2), "--quiet", "--mode", "float",
                 "--init", str(out / "weights.npz")]) == 0
    assert json.loads((out2 / "metrics.json").read_text())["mode"] == "float"


@pytest.mark.parametrize("argv,message", [
    (["train", "--set", "fwd_acc_bits=8"], "set fwd_acc_bits >= 23"),
    (["train", "--set", "nonsense=1"], "unknown config field(s) ['nonsense']"),
    (["train", "--set", "w_bits"], "--set expects FIELD=VALUE"),
    (["train", "--epochs", "0"], "epochs must be >= 1"),
])
def test_cli_errors(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_weights_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    assert main(["train", "--init", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_cli_unknown_dataset_and_help():
    r = subprocess.run([sys.executable, "-m", "spikeforge.cli", "train", "--dataset", "cifar"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice: 'cifar'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "spikeforge.cli", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0
    for command in ("train", "verilog", "bench"):
        assert command in r.stdout


@pytest.mark.parametrize("text,expected", [
    ("layers=64,96,10", (64, 96, 10)), ("layers=[16, 32, 10]", (16, 32, 10)),
    ("alpha=0.25", 0.25), ("reset_grad=true", True),
])
def test_cli_overrides_parse(text, expected):
    import argparse

    from spikeforge.cli.main import design_from_args
    field = text.split("=")[0]
    args = argparse.Namespace(set=[text], hw=None, board=None, preset="digits")
    design, name = design_from_args(args)
    assert getattr(design.cfg, field) == expected and name == "digits"
