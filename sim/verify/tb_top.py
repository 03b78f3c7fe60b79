"""cocotb testbench of the accelerator top: runs training/inference steps through the host
protocol and writes everything read back to an ``.npz`` for the pytest side to compare.

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_DESIGN``; ``SF_VECTORS``
holds ``w<l>`` initial weights,
``x`` (steps, T, B, n_in) spikes, ``y`` (steps, B) labels, ``pipeline`` (0/1), ``queue`` (0/1:
queue all steps back to back instead of waiting after each), ``check_every`` (0/1: read weights
after each step); ``SF_RESULTS`` receives ``w_after<s>_<l>``, ``pred``, counters.
"""

import json
import time

import cocotb
import numpy as np

from spikeforge.sim.host.cocotb_io import CocotbTransport, start_clock
from spikeforge.sim.host.driver import AcceleratorDriver
from spikeforge.sim.verify.runner import save_results, testbench_inputs


@cocotb.test()
async def run_steps(dut):
    design, data = testbench_inputs()
    await start_clock(dut)
    drv = AcceleratorDriver(CocotbTransport(dut), design)
    await drv.connect()
    weights = [data[f"w{l}"] for l in range(len(design.cfg.weight_shapes()))]
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
    save_results(out)
