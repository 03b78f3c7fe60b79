"""The board top end to end over simulated UART pins: the same host driver that trains a real
board loads weights, runs a training step and reads the weights back, bit-exact with the golden
model (Amaranth simulator, bit-level 8N1 serial)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeforge.hdl.board import UartCore
from spikeforge.hdl.params import HwParams
from spikeforge.hdl.top import Accelerator
from spikeforge.model.config import Config
from spikeforge.model.network import Network
from spikeforge.hdl.design import Design
from spikeforge.sim.host.driver import AcceleratorDriver
from spikeforge.sim.host.transports import AmaranthUartTransport


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # UART monitor
def test_training_step_over_simulated_uart():
    cfg = Config(layers=(6, 8, 4), timesteps=3, batch=2, target_true=3, init_gain=3.0,
                 lr=2.0 ** -4).fit_accumulators().validate()
    design = Design(cfg, HwParams(fe_group=2, pes=2, wue_group=2))
    divisor = 4
    top = UartCore(Accelerator(design), divisor)
    link = AmaranthUartTransport(top.rx, top.tx, divisor)
    net = Network(cfg, "fixed", seed=7)
    rng = np.random.default_rng(8)
    x = (rng.random((3, 2, 6)) < 0.5).astype(np.int64)
    y = rng.integers(0, 4, size=2)
    seen = {}

    async def testbench(ctx):
        link.ctx = ctx
        drv = AcceleratorDriver(link, design)
        seen["ident"] = await drv.connect()
        await drv.load_weights(net.weights)
        await drv.train_step(x, y)
        seen["weights"] = await drv.read_weights()
        seen["pred"] = await drv.infer(x)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_process(link.monitor)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["ident"]["memories"] == len(design.memmap.host_targets)
    assert seen["ident"]["key"] == design.key()
    net.train_step(x, y)
    for got, want in zip(seen["weights"], net.weights):
        assert np.array_equal(got, want)
    assert seen["pred"].tolist() == net.predict(x).tolist()
