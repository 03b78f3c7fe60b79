"""The other training methods of spiking hardware: hardware in the loop (golden backward pass from
a forward pass run elsewhere) and soft-LIF rate training with conversion."""

import json
import math

import numpy as np
import pytest

from spikeforge.cli.main import main
from spikeforge.model.config import ConfigError, preset
from spikeforge.model.network import Network
from spikeforge.model.perturb import (ModelDriver, Perturbation, PerturbedNetwork,
                                      parse_perturbation, run_now)
from spikeforge.model.softlif import lif_rate
from spikeforge.sim.host.engine import HilEngine


def _batches(cfg, steps, seed=0):
    rng = np.random.default_rng(seed)
    T, B, n = cfg.timesteps, cfg.batch, cfg.layers[0]
    xs = (rng.random((steps, T, B, n)) < 0.4).astype(np.int64)
    ys = rng.integers(0, cfg.layers[-1], size=(steps, B))
    return xs, ys


@pytest.mark.parametrize("reset_grad", [False, True])
def test_hil_with_an_exact_forward_is_golden_training(reset_grad):
    cfg = preset("digits").replace(reset_grad=reset_grad)
    xs, ys = _batches(cfg, 3)
    engine = HilEngine(ModelDriver(PerturbedNetwork(cfg, Perturbation())), cfg, run_now, seed=4)
    golden = Network(cfg, "fixed", seed=4)
    for x, y in zip(xs, ys):
        got, want = engine.train_step(x, y), golden.train_step(x, y)
        assert got.loss == want.loss
        for a, b in zip(engine.weights, golden.weights):
            assert np.array_equal(a, b)
    assert engine.forward_mismatches == 0


def test_hil_on_a_perturbed_forward_trains_from_its_traces():
    cfg = preset("digits")
    xs, ys = _batches(cfg, 2)
    chip = PerturbedNetwork(cfg, Perturbation(weight=0.3, threshold=0.3, seed=2))
    engine = HilEngine(ModelDriver(chip), cfg, run_now, seed=4)
    golden = Network(cfg, "fixed", seed=4)
    for x, y in zip(xs, ys):
        engine.train_step(x, y)
        golden.train_step(x, y)
    assert engine.forward_mismatches == 2
    assert any(not np.array_equal(a, b) for a, b in zip(engine.weights, golden.weights))
    # the chip got the new weights back after every step
    for a, b in zip(chip.weights, engine.weights):
        assert np.array_equal(a, b)


def test_a_zero_perturbation_is_the_golden_forward():
    cfg = preset("digits")
    xs, _ = _batches(cfg, 1)
    net = Network(cfg, "fixed", seed=1)
    chip = PerturbedNetwork(cfg, Perturbation(), weights=net.weights)
    for a, b in zip(chip.forward(xs[0]), net.forward(xs[0])):
        assert np.array_equal(a.o, b.o) and np.array_equal(a.u, b.u)
        assert np.array_equal(a.h, net.arith.surrogate(b.u))


@pytest.mark.parametrize("text, message", [
    ("gain=0.1", "takes weight="), ("weight=x", "not a number"), ("threshold=3", "0..2"),
])
def test_bad_perturbation_is_a_one_line_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_perturbation(text)


def test_cli_hil_on_the_model_equals_golden_training(tmp_path):
    for engine in ("golden", "hil"):
        args = ["train", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / engine),
                "--quiet"]
        if engine == "hil":
            args += ["--engine", "hil", "--backend", "model"]
        assert main(args) == 0
    a, b = np.load(tmp_path / "golden" / "weights.npz"), np.load(tmp_path / "hil" / "weights.npz")
    for key in ("w0", "w1"):
        assert np.array_equal(a[key], b[key])
    metrics = json.loads((tmp_path / "hil" / "metrics.json").read_text())
    assert metrics["engine"] == "hil" and metrics["hil_forward_mismatches"] == 0


@pytest.mark.slow
def test_cli_hil_on_the_rtl_equals_golden_training(tmp_path):
    """The issue's acceptance: the forward pass on the accelerator's Verilog (digits, 1 epoch)."""
    for engine in ("golden", "hil"):
        args = ["train", "--dataset", "digits", "--epochs", "1", "--seed", "0", "--out",
                str(tmp_path / engine), "--quiet"]
        if engine == "hil":
            args += ["--engine", "hil", "--backend", "rtl"]
        assert main(args) == 0
    a, b = np.load(tmp_path / "golden" / "weights.npz"), np.load(tmp_path / "hil" / "weights.npz")
    for key in ("w0", "w1"):
        assert np.array_equal(a[key], b[key])


def _small_digits4(path, n_train=40, n_test=16):
    from spikeforge.model.data import load_dataset
    d = load_dataset("digits4")
    np.savez(path, x_train=d.x_train[:n_train] / 16, y_train=d.y_train[:n_train],
             x_test=d.x_test[:n_test] / 16, y_test=d.y_test[:n_test])
    return str(path)


@pytest.mark.parametrize("learn", [True, False], ids=["training", "inference_only"])
def test_hil_on_the_rtl_equals_golden_training(tmp_path, learn):
    """HIL through the accelerator's Verilog (a small design; the full accelerator and the
    inference-only one): weights equal golden training's, every forward pass equals the
    golden model's."""
    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import HwParams
    from spikeforge.model.train import TrainOptions, train
    from spikeforge.sim.host.train import train_rtl

    data = _small_digits4(tmp_path / "d.npz")
    cfg = preset("digits4")
    design = Design(cfg, HwParams(pes=2, fe_group=2, wue_group=2, learn=learn))
    hil = train_rtl(design, TrainOptions(dataset=data, epochs=1, out=str(tmp_path / "hil"),
                                         progress=False, engine_name="hil"))
    assert hil["hil_forward_mismatches"] == 0 and hil["hil_steps"] == 40
    golden = train(cfg, TrainOptions(dataset=data, epochs=1, out=str(tmp_path / "g"),
                                     progress=False), log=lambda *a: None)
    assert hil["test_accuracy"] == golden["test_accuracy"]
    a, b = np.load(tmp_path / "g" / "weights.npz"), np.load(tmp_path / "hil" / "weights.npz")
    for key in ("w0", "w1"):
        assert np.array_equal(a[key], b[key])


def test_the_inference_only_design_is_smaller_and_refuses_training():
    from amaranth.sim import Simulator

    from spikeforge.hdl.design import Design
    from spikeforge.hdl.params import HwParams
    from spikeforge.hdl.top import Accelerator
    from spikeforge.sim.host.driver import AcceleratorDriver
    from spikeforge.sim.host.protocol import Refused
    from spikeforge.sim.host.transports import AmaranthTransport

    cfg = preset("digits4")
    full = Design(cfg, HwParams(pes=2, fe_group=2, wue_group=2))
    lean = full.replace(learn=False)
    assert set(full.memmap.memories) - set(lean.memmap.memories) == {"hb", "eps", "g"}
    assert lean.key() != full.key() and "learn" not in full.hw.to_dict()
    acc = Accelerator(lean)
    assert acc.be is None and acc.wue is None
    xs, ys = _batches(cfg, 1)
    out = {}

    async def tb(ctx):
        drv = AcceleratorDriver(AmaranthTransport(ctx, acc.rx, acc.tx), lean)
        await drv.connect()
        net = Network(cfg, "fixed", seed=3)
        await drv.load_weights(net.weights)
        out["pred"], out["state"] = await drv.forward(xs[0])
        try:
            await drv.train_step(xs[0], ys[0])
        except Refused as exc:
            out["refused"] = str(exc)
        out["want"] = net.forward(xs[0])

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert "refused" in out
    for state, trace in zip(out["state"], out["want"]):
        assert np.array_equal(state["o"], trace.o)


def test_lif_rate_is_the_discrete_neurons_rate():
    """The curve against the neuron of the spec driven by a constant current: within the
    rounding of a spike to a whole step (1 / (floor(k) + 1) against 1 / (k + 1/2))."""
    cfg = preset("digits")
    for current in (0.55, 0.7, 1.0, 1.5, 3.0):
        u, o, spikes = 0.0, 0, 0
        for _ in range(400):
            u = cfg.alpha * u * (1 - o) + current
            o = int(u > cfg.vth)
            spikes += o
        measured = spikes / 400
        k = -math.log(1 - cfg.vth * (1 - cfg.alpha) / current) / math.log(1 / cfg.alpha)
        # the strict threshold: a spike after floor(k) + 1 steps
        assert abs(1 / (math.floor(k) + 1) - measured) < 0.01
        curve = float(lif_rate(cfg, current))
        assert abs(curve - measured) <= 0.5 * measured + 1e-9, (current, curve, measured)
    assert float(lif_rate(cfg, 0.4)) == 0.0        # below c = vth (1 - alpha): silent
    rate, slope = lif_rate(cfg, np.linspace(0.3, 3, 50), smooth=0.05, grad=True)
    assert np.all(np.diff(rate) >= 0) and np.all(np.isfinite(slope)) and slope.max() < 50


def test_softlif_digits_reaches_the_bar(tmp_path):
    out = tmp_path / "sl"
    assert main(["train", "--method", "softlif", "--dataset", "digits", "--set", "timesteps=32",
                 "--out", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95 and metrics["timesteps"] == 32
    # the weights are a fixed-point network the golden model (and the accelerator) runs
    assert main(["infer", "--weights", str(out / "weights.npz"), "--dataset", "digits"]) == 0


def test_softlif_refuses_an_engine(capsys):
    assert main(["train", "--method", "softlif", "--engine", "rtl"]) == 2
    assert "--method softlif trains a rate network" in capsys.readouterr().err


def test_activity_regulariser_fixed_point():
    """SPEC 5a in fixed point: the integer dL/do of the counts, joined to a hidden layer's g;
    the output layer is left to its targets; the descriptions of earlier designs unchanged."""
    base = preset("digits")
    assert "act_upper" not in base.to_dict()
    cfg = base.replace(act_upper=0.0625, act_max=2, act_lower=0.25, act_min=1)
    assert cfg.to_dict()["act_upper"] == 0.0625
    net = Network(cfg, "fixed")
    r = net.arith.activity_grad(np.array([[0, 1, 2, 5]]))
    assert r.tolist() == [[-64, 0, 0, 16 * 3]]          # 2**e_frac = 256: D = 64, U = 16
    with pytest.raises(ConfigError, match="multiple of the gradient LSB"):
        base.replace(act_upper=0.001)
    with pytest.raises(ConfigError, match="spike count in 0..timesteps"):
        base.replace(act_upper=0.0625, act_max=9)
    xs, ys = _batches(cfg, 1)
    plain = Network(base, "fixed", seed=2)
    reg = Network(cfg, "fixed", seed=2)
    traces = reg.forward(xs[0])
    g_plain = plain.backward(plain.forward(xs[0]), ys[0])
    g_reg = reg.backward(traces, ys[0])
    assert not np.array_equal(g_plain[0], g_reg[0])     # the hidden layer's gradient moved
    # the output layer's own gradient is the task's alone
    assert np.array_equal(g_plain[-1], g_reg[-1])


def test_activity_population_bound_fixed_point():
    """SPEC 5a's population bound: every neuron of a sample whose layer total exceeds
    act_pop_max gets the same integer dL/do, added to the per-neuron terms, then saturated."""
    base = preset("digits")
    assert "act_pop_upper" not in base.to_dict()
    cfg = base.replace(act_pop_upper=2.0 ** -6, act_pop_max=6, act_upper=0.0625, act_max=2)
    net = Network(cfg, "fixed")
    counts = np.array([[0, 1, 2, 5], [1, 1, 1, 1], [8, 8, 8, 8]])
    r = net.arith.activity_grad(counts)
    # totals 8, 4, 32: pop terms 4 * 2, 0, 4 * 26; per-neuron 16 * max(0, c - 2)
    assert r.tolist() == [[8, 8, 8, 8 + 48], [0, 0, 0, 0], [104 + 96] * 4]
    narrow = Network(cfg.replace(e_bits=8, e_frac=6, act_pop_upper=0.5, act_upper=0.0), "fixed")
    assert narrow.arith.activity_grad(np.array([[8, 8, 8, 8]])).tolist() == [[127] * 4]
    loss = net.activity_loss([type("T", (), {"o": counts[None]})(), None])
    assert loss == 0.5 * 2.0 ** -6 * (2 ** 2 + 26 ** 2) + 0.5 * 0.0625 * (3 ** 2 + 4 * 6 ** 2)
    with pytest.raises(ConfigError, match=r"act_pop_max must be a spike count in 0..timesteps x the widest hidden layer \(1024\)"):
        base.replace(act_pop_upper=2.0 ** -6, act_pop_max=2000)
    with pytest.raises(ConfigError, match="act_pop_upper=0.001 is not a multiple"):
        base.replace(act_pop_upper=0.001)
    from spikeforge.hdl.design import Design, DesignError
    from spikeforge.hdl.params import DEFAULT_HW
    with pytest.raises(DesignError, match="--engine hil"):
        Design(base.replace(act_pop_upper=2.0 ** -6), DEFAULT_HW)
    assert Design.forward_only(cfg) == base


def test_the_accelerator_refuses_the_regulariser_and_hil_trains_with_it(tmp_path, capsys):
    from spikeforge.hdl.design import Design, DesignError
    from spikeforge.hdl.params import DEFAULT_HW
    cfg = preset("digits").replace(act_upper=0.0625, act_max=1)
    with pytest.raises(DesignError, match="--engine hil"):
        Design(cfg, DEFAULT_HW)
    assert main(["train", "--engine", "rtl", "--set", "act_upper=0.0625", "--epochs", "1",
                 "--out", str(tmp_path / "r")]) == 2
    assert "no activity regulariser" in capsys.readouterr().err
    # hardware in the loop: the golden backward pass has it (a forward-only hardware config)
    xs, ys = _batches(cfg, 2)
    chip = PerturbedNetwork(Design.forward_only(cfg), Perturbation())
    engine = HilEngine(ModelDriver(chip), cfg, run_now, seed=1)
    golden = Network(cfg, "fixed", seed=1)
    for x, y in zip(xs, ys):
        engine.train_step(x, y)
        golden.train_step(x, y)
    for a, b in zip(engine.weights, golden.weights):
        assert np.array_equal(a, b)
    args = ["train", "--dataset", "digits", "--epochs", "1", "--set", "act_upper=0.0625",
            "--set", "act_max=1", "--quiet"]
    assert main(args + ["--out", str(tmp_path / "g")]) == 0
    assert main(args + ["--engine", "hil", "--backend", "model", "--out", str(tmp_path / "h")]) == 0
    a, b = np.load(tmp_path / "g" / "weights.npz"), np.load(tmp_path / "h" / "weights.npz")
    for key in ("w0", "w1"):
        assert np.array_equal(a[key], b[key])
    m = json.loads((tmp_path / "h" / "metrics.json").read_text())
    assert m["config"]["act_upper"] == 0.0625 and m["spikes_per_input"] > 0
