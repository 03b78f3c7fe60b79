"""cocotb testbench of the accelerator top: runs training/inference steps through the host
protocol and writes everything read back to an ``.npz`` for the pytest side to compare.

Inputs (env ``SF_TOP_IN``, an ``.npz``): ``config`` and ``hw`` (JSON), ``w<l>`` initial weights,
``x`` (steps, T, B, n_in) spikes, ``y`` (steps, B) labels, ``pipeline`` (0/1), ``queue`` (0/1:
queue all steps back to back instead of waiting after each), ``check_every`` (0/1: read weights
after each step). Output (env ``SF_TOP_OUT``): ``w_after<s>_<l>``, ``pred``, counters.
"""

import json
import os
import time

import cocotb
import numpy as np

from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config
from spikeforge.sim.accel import AcceleratorDriver, AcceleratorGeometry
from spikeforge.sim.cocotb_io import CocotbTransport, start_clock


@cocotb.test()
async def run_steps(dut):
    data = dict(np.load(os.environ["SF_TOP_IN"]))
    cfg = Config.from_dict(json.loads(str(data["config"])))
    hw = HwParams(**json.loads(str(data["hw"]))).validate()
    geo = AcceleratorGeometry(cfg, hw)
    await start_clock(dut)
    drv = AcceleratorDriver(CocotbTransport(dut), geo)
    weights = [data[f"w{l}"] for l in range(cfg.n_layers)]
    await drv.load_weights(weights)
    await drv.set_pipeline(bool(int(data["pipeline"])))
    await drv.clear_counters()
    out = {}
    loaded = await drv.read_weights()
    for l, w in enumerate(loaded):
        out[f"w_loaded_{l}"] = w
    steps = data["x"].shape[0]
    t0 = time.perf_counter()
    for s in range(steps):
        if int(data["queue"]):
            await drv.queue_train(data["x"][s], data["y"][s])
        else:
            await drv.train_step(data["x"][s], data["y"][s])
        if int(data["check_every"]):
            for l, w in enumerate(await drv.read_weights()):
                out[f"w_after{s}_{l}"] = w
    await drv.wait()
    out["wall_seconds"] = time.perf_counter() - t0
    counters = await drv.counters()
    for l, w in enumerate(await drv.read_weights()):
        out[f"w_final_{l}"] = w
    out["pred"] = await drv.infer(data["x"][0])
    # simulator speed while the accelerator computes (no host traffic): time the WAIT of one
    # more training step whose batch is already staged
    before = (await drv.counters())["active_cycles"]
    await drv.queue_train(data["x"][0], data["y"][0])
    t1 = time.perf_counter()
    await drv.wait()
    out["compute_wall_seconds"] = time.perf_counter() - t1
    out["compute_cycles"] = (await drv.counters())["active_cycles"] - before
    out["counters"] = np.array(json.dumps(counters))
    np.savez(os.environ["SF_TOP_OUT"], **out)
