"""cocotb testbench of the board top (:class:`~spikeforge.sim.verify.board.LinkedBoard`): a
training job over the on-chip data set, every byte through the simulated UART link.

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_VECTORS`` holds ``w<l>``
initial weights, ``x`` (N, n_in) intensities and ``y`` (N,) labels of the whole data set,
``orders`` (epochs, n) the training order of each epoch, ``job`` = (train_count, test_base,
test_count), optionally ``inject`` (1: while the job runs, write x, labels, the data set and the
loaded order bank 1 and start a TRAIN step, all of which must be refused). ``SF_RESULTS`` receives ``w_final_<l>``, ``correct`` (per epoch), the cycle counts of
the upload and of the job (``cycles_upload``, ``cycles_job``), the bytes moved and the counters.
"""

import json
import time

import cocotb
import numpy as np
from cocotb.utils import get_sim_time

from spikeforge.hdl.protocol import Op
from spikeforge.sim.host.cocotb_io import CocotbTransport, start_clock
from spikeforge.sim.host.driver import AcceleratorDriver
from spikeforge.sim.verify.runner import save_results, testbench_inputs

PERIOD_NS = 10


def _cycles():
    return int(get_sim_time("ns")) // PERIOD_NS


@cocotb.test()
async def run_job(dut):
    design, data = testbench_inputs()
    await start_clock(dut, period_ns=PERIOD_NS)
    link = CocotbTransport(dut)
    drv = AcceleratorDriver(link, design)
    out = {}
    await drv.connect()
    weights = [data[f"w{l}"] for l in range(design.cfg.n_layers)]
    c0, t0 = _cycles(), time.perf_counter()
    await drv.upload_dataset(data["x"], data["y"])
    await drv.load_weights(weights)
    await drv.clear_counters()
    c1 = _cycles()
    out["cycles_upload"], out["bytes_upload"] = c1 - c0, link.bytes_sent
    train_count, test_base, test_count = (int(v) for v in data["job"])
    sent_before = link.bytes_sent + link.bytes_received
    epoch_cycles = []

    async def on_epoch(e):
        epoch_cycles.append(_cycles() - c1)

    async def inject():
        # order bank 1 stays loaded until epoch 1's training is queued (jobs of >= 2 epochs)
        h = drv.host
        await h.write("order", [0], addr=design.memmap.data_samples)
        await h.write("x", [1], addr=0)
        await h.write("labels", [1], addr=0)
        await h.write("data", [0], addr=0)
        await h.start(Op.TRAIN)

    correct = await drv.run_job(list(data["orders"]), train_count, test_base, test_count,
                                on_epoch=on_epoch,
                                after_start=inject if int(data.get("inject", 0)) else None,
                                check_errors=False)
    c2 = _cycles()
    out["errors"] = (await drv.job_status())["errors"]
    out["epoch_cycles"] = np.array(epoch_cycles)
    out["cycles_job"] = c2 - c1
    out["bytes_job"] = link.bytes_sent + link.bytes_received - sent_before
    counters = await drv.counters()
    out["correct"] = np.array(correct)
    for l, w in enumerate(await drv.read_weights()):
        out[f"w_final_{l}"] = w
    out["cycles_readback"] = _cycles() - c2
    out["overrun"] = int(dut.overrun.value)
    out["frame_errors"] = int(dut.frame_errors.value)
    out["wall_seconds"] = time.perf_counter() - t0
    out["counters"] = np.array(json.dumps(counters))
    save_results(out)
