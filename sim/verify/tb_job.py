"""cocotb testbench of the board top (:class:`~spikeforge.sim.verify.board.LinkedBoard`): training
jobs over the on-chip data set, every byte through the simulated UART link.

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_VECTORS`` holds ``w<l>``
initial weights, ``x`` (N, n_in) intensities and ``y`` (N,) labels of the whole data set,
``orders`` (epochs, n) the training order of each epoch, ``jobs`` (k, 4) rows of (train_count,
test_base, test_count, epochs), optionally ``inject`` (1: while the first job runs, write the
loaded order bank 0, x, labels, the data set, a job register and the weights, read the weights,
start a TRAIN step and another job, all of which must be refused). The data set is uploaded once; each job starts from the initial weights.

``SF_RESULTS`` receives per job ``j``: ``w_final<j>_<l>``, ``correct<j>`` (per epoch),
``cycles_job<j>`` (from the first order load to the answer of ``WAIT JOB``, as the host sees it),
``cycles_readback<j>`` (reading the weights back), ``epoch_cycles<j>``, ``counters<j>`` (the
accelerator's, JSON); and ``cycles_upload``, ``bytes_upload``, ``refused`` (the names of the
injected accesses the accelerator refused), ``retries`` (frames repeated after link errors),
the host UART's ``overrun``/``frame_errors``.
"""

import json
import time

import cocotb
import numpy as np
from cocotb.utils import get_sim_time

from spikeforge.hdl.protocol import Op
from spikeforge.sim.host.cocotb_io import CocotbTransport, start_clock
from spikeforge.sim.host.driver import AcceleratorDriver
from spikeforge.sim.host.protocol import Refused
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
    weights = [data[f"w{l}"] for l in range(len(design.cfg.weight_shapes()))]
    c0, t0 = _cycles(), time.perf_counter()
    await drv.upload_dataset(data["x"], data["y"])
    out["cycles_upload"], out["bytes_upload"] = _cycles() - c0, link.bytes_sent

    refused = []

    async def inject():
        # order bank 0 stays loaded until epoch 0's training is queued
        h = drv.host
        for name, access in (
                ("order", h.write("order", [0], addr=0)),
                ("x", h.write("x", [1], addr=0)), ("labels", h.write("labels", [1], addr=0)),
                ("data", h.write("data", [0], addr=0)), ("job", h.write("job", [1], addr=3)),
                ("w", h.write("w", [0], addr=0)), ("w_read", h.read("w", 1)),
                ("train", h.start(Op.TRAIN)), ("job_start", h.start(Op.JOB))):
            try:
                await access
            except Refused:
                refused.append(name)

    for j, (train_count, test_base, test_count, epochs) in enumerate(data["jobs"]):
        await drv.load_weights(weights)
        await drv.clear_counters()
        c1 = _cycles()
        epoch_cycles = []

        async def on_epoch(e):
            epoch_cycles.append(_cycles() - c1)

        correct = await drv.run_job(list(data["orders"][:int(epochs)]), int(train_count),
                                    int(test_base), int(test_count), on_epoch=on_epoch,
                                    after_start=inject if j == 0 and int(data.get("inject", 0))
                                    else None)
        c2 = _cycles()
        out[f"cycles_job{j}"] = c2 - c1
        out[f"epoch_cycles{j}"] = np.array(epoch_cycles)
        out[f"counters{j}"] = np.array(json.dumps(await drv.counters()))
        out[f"correct{j}"] = np.array(correct)
        c3 = _cycles()
        for l, w in enumerate(await drv.read_weights()):
            out[f"w_final{j}_{l}"] = w
        out[f"cycles_readback{j}"] = _cycles() - c3
    out["refused"] = np.array(refused)
    out["retries"] = drv.host.retries
    out["overrun"] = int(dut.overrun.value)
    out["frame_errors"] = int(dut.frame_errors.value)
    out["wall_seconds"] = time.perf_counter() - t0
    save_results(out)
