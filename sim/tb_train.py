"""cocotb testbench that trains on the accelerator RTL: the whole ``spikeforge train`` loop runs
in a bridge thread and every step goes through the host protocol to the simulated hardware.

Options come as JSON in env ``SF_TRAIN_OPTS``: ``config``, ``hw``, and the fields of
:class:`spikeforge.model.train.TrainOptions`.
"""

import json
import os

import cocotb
from cocotb.task import bridge, resume

from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config
from spikeforge.model.train import TrainOptions, train
from spikeforge.model.weights import atomic_write_text
from spikeforge.sim.accel import AcceleratorDriver, AcceleratorGeometry
from spikeforge.sim.cocotb_io import CocotbTransport, start_clock
from spikeforge.sim.rtl_engine import RtlEngine


@cocotb.test()
async def train_on_rtl(dut):
    spec = json.loads(os.environ["SF_TRAIN_OPTS"])
    cfg = Config.from_dict(spec["config"])
    hw = HwParams(**spec["hw"]).validate()
    opts = TrainOptions(**spec["options"])
    await start_clock(dut)
    transport = CocotbTransport(dut)
    driver = AcceleratorDriver(transport, AcceleratorGeometry(cfg, hw))

    @resume
    async def run(coro):
        return await coro

    def job():
        engine = RtlEngine(driver, cfg, run, seed=opts.seed)
        metrics = train(cfg, opts, engine=engine)
        # the run completed: every step was compared (an RtlMismatch would have stopped it)
        metrics.update({"weights_checked_steps": engine.steps_checked,
                        "predictions_checked": engine.predictions_checked,
                        "all_weights_matched_golden": True,
                        "rtl_counters": run(driver.counters())})
        atomic_write_text(os.path.join(opts.out, "metrics.json"),
                          json.dumps(metrics, indent=2) + "\n")
        return metrics

    await bridge(job)()
