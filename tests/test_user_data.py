"""Your own data: `train --data FILE.npz --layers ...`, bad data refused in one line, and
`infer` on the golden model and the RTL agreeing with the training run."""

import json

import numpy as np
import pytest

from spikeforge.cli.main import main


def _breast_cancer(path):
    from sklearn.datasets import load_breast_cancer
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.min(0)) / (x.max(0) - x.min(0))
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    np.savez(path, x_train=x[:455], y_train=y[:455], x_test=x[455:], y_test=y[455:])
    return path


def test_train_on_your_own_data_then_infer_golden_and_rtl(tmp_path, capsys):
    data = str(_breast_cancer(tmp_path / "bc.npz"))
    out = tmp_path / "run"
    assert main(["train", "--data", data, "--layers", "30,64,2", "--epochs", "20", "--out",
                 str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9
    for engine in ("golden", "rtl"):
        args = ["infer", "--weights", str(out / "weights.npz"), "--data", data, "--engine",
                engine, "--json", str(tmp_path / f"{engine}.json")]
        if engine == "rtl":
            args += ["--hw", "pes=4"]
        assert main(args) == 0
    golden = json.loads((tmp_path / "golden.json").read_text())
    rtl = json.loads((tmp_path / "rtl.json").read_text())
    assert golden["predictions"] == rtl["predictions"]
    assert golden["test_accuracy"] == metrics["test_accuracy"]


@pytest.mark.parametrize("bad, message", [
    ("nan", "NaN"),
    ("shape", "features"),
    ("range", "must lie in \\[0, 1\\]"),
    ("labels", "integer class labels"),
    ("missing", "lacks \\['y_test'\\]"),
    ("classes", "classes but the network"),
    ("few", "fewer than one batch"),
])
def test_bad_data_gets_a_one_line_error(tmp_path, capsys, bad, message):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.random((40, 5)), "y_train": rng.integers(0, 2, 40),
              "x_test": rng.random((10, 5)), "y_test": rng.integers(0, 2, 10)}
    layers = "5,8,2"
    if bad == "nan":
        arrays["x_train"][3, 2] = np.nan
    elif bad == "shape":
        arrays["x_test"] = rng.random((10, 4))
    elif bad == "range":
        arrays["x_train"] *= 3
    elif bad == "labels":
        arrays["y_train"] = arrays["y_train"] - 1
    elif bad == "missing":
        del arrays["y_test"]
    elif bad == "classes":
        arrays["y_train"] = rng.integers(0, 5, 40)
    elif bad == "few":
        arrays = {k: v[:3] for k, v in arrays.items()}
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    code = main(["train", "--data", str(path), "--layers", layers, "--epochs", "1", "--out",
                 str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    import re
    assert re.search(message, err), err


def test_the_example_runs(tmp_path):
    """examples/train_on_your_arrays.py trains on numpy arrays and its RTL check agrees."""
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "examples" / "train_on_your_arrays.py"
    proc = subprocess.run([sys.executable, str(script), "--epochs", "30", "--rtl", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    acc = float(proc.stdout.split("test accuracy ")[1].split()[0])
    assert acc >= 0.85 and "RTL: the same" in proc.stdout


def test_a_network_that_cannot_learn_is_warned_about(tmp_path, capsys):
    """64-64-32-10 at the default initial scale: the output layer never nears its threshold, so
    the loss is stuck; train says so and names the fix, which then trains."""
    assert main(["train", "--set", "layers=64,64,32,10", "--epochs", "1", "--out",
                 str(tmp_path / "a"), "--quiet"]) == 0
    assert "raise the initial scale (--set init_gain=2)" in capsys.readouterr().out
    assert main(["train", "--set", "layers=64,64,32,10", "--set", "init_gain=2", "--epochs", "2",
                 "--out", str(tmp_path / "b"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "warning" not in out
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["test_accuracy"] > 0.8
