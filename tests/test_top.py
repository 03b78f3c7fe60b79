"""The whole accelerator: training steps through the host protocol, weights bit for bit equal to
the golden model after every step, in the Amaranth simulator and under Verilator."""

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from conftest import TINY, TINY_HW, require_simulator
from spikeforge.hdl.design import Design, DesignError
from spikeforge.hdl.params import DEFAULT_HW
from spikeforge.hdl.top import Accelerator
from spikeforge.model.config import Config, preset
from spikeforge.model.network import Network
from spikeforge.sim.host.driver import AcceleratorDriver
from spikeforge.sim.host.transports import AmaranthTransport


def batches(cfg, steps, seed, density=0.4):
    rng = np.random.default_rng(seed)
    T, B, n0 = cfg.timesteps, cfg.batch, cfg.layers[0]
    xs = (rng.random((steps, T, B, n0)) < density).astype(np.int64)
    ys = rng.integers(0, cfg.layers[-1], size=(steps, B))
    return xs, ys


def amaranth_run(cfg, hw, weights, xs, ys, pipeline, queue):
    design = Design(cfg, hw)
    acc = Accelerator(design)
    res = {"after": []}

    async def tb(ctx):
        drv = AcceleratorDriver(AmaranthTransport(ctx, acc.rx, acc.tx), design)
        await drv.connect()
        await drv.load_weights(weights)
        await drv.set_pipeline(pipeline)
        for x, y in zip(xs, ys):
            if queue:
                await drv.queue_train(x, y)
            else:
                await drv.train_step(x, y)
                res["after"].append(await drv.read_weights())
        await drv.wait()
        res["final"] = await drv.read_weights()
        res["pred"] = await drv.infer(xs[0])
        res["counters"] = await drv.counters()

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return res


@pytest.mark.parametrize("pipeline", [True, False])
@pytest.mark.parametrize("reset_grad", [False, True])
def test_training_steps_bit_exact_amaranth(pipeline, reset_grad):
    cfg = Config(**TINY, reset_grad=reset_grad).fit_accumulators().validate()
    net = Network(cfg, "fixed", seed=1)
    xs, ys = batches(cfg, 3, seed=2)
    res = amaranth_run(cfg, TINY_HW, net.weights, xs, ys, pipeline, queue=False)
    for s in range(3):
        before = [w.copy() for w in net.weights]
        net.train_step(xs[s], ys[s])
        assert any(not np.array_equal(a, b) for a, b in zip(before, net.weights)), "no update"
        for l in range(cfg.n_layers):
            assert np.array_equal(res["after"][s][l], net.weights[l]), f"step {s}, layer {l}"
    assert res["pred"].tolist() == net.predict(xs[0]).tolist()
    assert res["counters"]["steps"] == 4          # 3 training steps + 1 inference


def test_queued_steps_pipeline_across_batches_amaranth():
    """Steps queued back to back: the FE of batch n+1 chases the WUE of batch n; the final
    weights must still equal 4 sequential golden steps, and take fewer cycles than sequential."""
    cfg = Config(**TINY).fit_accumulators().validate()
    net = Network(cfg, "fixed", seed=3)
    xs, ys = batches(cfg, 4, seed=4)
    piped = amaranth_run(cfg, TINY_HW, net.weights, xs, ys, pipeline=True, queue=True)
    seq = amaranth_run(cfg, TINY_HW, net.weights, xs, ys, pipeline=False, queue=True)
    for x, y in zip(xs, ys):
        net.train_step(x, y)
    for res in (piped, seq):
        for l in range(cfg.n_layers):
            assert np.array_equal(res["final"][l], net.weights[l])
    assert piped["counters"]["active_cycles"] < seq["counters"]["active_cycles"]


def test_accelerator_parameter_errors():
    cfg = Config(**TINY).fit_accumulators().validate()
    with pytest.raises(DesignError, match="at most 255 output classes"):
        Design(dataclasses.replace(cfg, layers=(6, 8, 256)).fit_accumulators(), TINY_HW)
    with pytest.raises(TypeError, match="cfg must be a Config"):
        Design("digits", TINY_HW)
    with pytest.raises(TypeError, match="design must be a Design"):
        Accelerator(cfg)


def test_training_steps_bit_exact_verilator_tiny(tmp_path):
    require_simulator("verilator")
    from spikeforge.sim.verify.top import run_top
    cfg = Config(**TINY, reset_grad=True).fit_accumulators().validate()
    net = Network(cfg, "fixed", seed=5)
    xs, ys = batches(cfg, 3, seed=6)
    res = run_top(Design(cfg, TINY_HW), net.weights, xs, ys, pipeline=True, check_every=True)
    for s in range(3):
        net.train_step(xs[s], ys[s])
        for l in range(cfg.n_layers):
            assert np.array_equal(res[f"w_after{s}_{l}"], net.weights[l]), f"step {s} layer {l}"
    assert res["pred"].tolist() == net.predict(xs[0]).tolist()


def check_real_steps_verilator(design, dataset, steps):
    """``steps`` batches of real ``dataset`` samples (rate code), queued back to back on
    ``design``'s accelerator under Verilator: the final weights equal the golden model's word for
    word, and so do the classes it infers for the first batch."""
    require_simulator("verilator")
    from spikeforge.model.data import load_dataset
    from spikeforge.model.encode import encode
    from spikeforge.sim.verify.top import run_top
    cfg = design.cfg
    data = load_dataset(dataset)
    B = cfg.batch
    x = encode(data.x_train[:steps * B], cfg.timesteps, data.vmax, "rate")
    xs = np.stack([x[:, s * B:(s + 1) * B] for s in range(steps)])
    ys = np.stack([data.y_train[s * B:(s + 1) * B] for s in range(steps)])
    net = Network(cfg, "fixed", seed=0)
    res = run_top(design, net.weights, xs, ys, pipeline=True, queue=True, check_every=False)
    for s in range(steps):
        net.train_step(xs[s], ys[s])
    for l in range(cfg.n_layers):
        assert np.array_equal(res[f"w_final_{l}"], net.weights[l]), f"layer {l}"
    assert res["pred"].tolist() == net.predict(xs[0]).tolist()


def test_digits_training_step_bit_exact_verilator():
    """Three queued training steps of the digits preset on real digits data."""
    check_real_steps_verilator(Design(preset("digits"), DEFAULT_HW), "digits", 3)


@pytest.mark.slow
def test_mnist16_board_design_trains_bit_exact_verilator():
    """The ulx3s-85f-mnist16 board's design (256-256-10, its batch and P) trains two queued
    steps of real MNIST data bit-identical to the golden model, and infers the same classes."""
    from spikeforge.fpga.boards import board
    check_real_steps_verilator(board("ulx3s-85f-mnist16").design(), "mnist16", 2)
