"""cocotb testbench that trains on the accelerator RTL: the whole ``spikeforge train`` loop runs
in a bridge thread and every step goes through the host protocol to the simulated hardware.

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_DESIGN``; ``SF_VECTORS``
holds ``options`` (JSON, the fields of :class:`spikeforge.model.train.TrainOptions`);
``SF_RESULTS`` receives ``metrics`` (JSON) or, when a step differs from the golden model,
``error`` (the message).
"""

import json

import cocotb
import numpy as np

from spikeforge.model.train import TrainOptions, train
from spikeforge.sim.host.cocotb_io import run_host_job
from spikeforge.sim.host.engine import RtlMismatch
from spikeforge.sim.host.train import checked_metrics, make_engine
from spikeforge.sim.verify.runner import save_results, testbench_inputs


@cocotb.test()
async def train_on_rtl(dut):
    design, vectors = testbench_inputs()
    opts = TrainOptions(**json.loads(str(vectors["options"])))

    def job(driver, run):
        engine = make_engine(driver, design, opts, run)
        try:
            metrics = train(engine.cfg, opts, engine=engine)
        except RtlMismatch as exc:
            save_results({"error": np.array(str(exc))})
            return
        checked_metrics(engine, metrics, opts.out, rtl_counters=run(driver.counters()),
                        design_key=design.key())
        save_results({"metrics": np.array(json.dumps(metrics))})

    await run_host_job(dut, design, job)
