"""cocotb testbench of inference on the accelerator RTL: the weights are loaded, every batch of
the given spikes goes through the accelerator's INFER operation, and each batch's predictions are
compared with the golden model's (:class:`~spikeforge.sim.host.engine.RtlEngine`).

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_VECTORS`` holds ``w<l>``
(weights) and ``x`` (T, N, n_in) spikes; ``SF_RESULTS`` receives ``pred`` (N,) or ``error``.
"""

import cocotb
import numpy as np

from spikeforge.sim.host.cocotb_io import run_host_job
from spikeforge.sim.host.engine import RtlEngine, RtlMismatch
from spikeforge.sim.verify.runner import save_results, testbench_inputs


@cocotb.test()
async def infer_on_rtl(dut):
    design, data = testbench_inputs()

    def job(driver, run):
        engine = RtlEngine(driver, design.cfg, run)
        engine.weights = [data[f"w{l}"] for l in range(len(design.cfg.weight_shapes()))]
        try:
            pred = engine.predict(data["x"])
        except RtlMismatch as exc:
            save_results({"error": np.array(str(exc))})
            return
        save_results({"pred": np.asarray(pred)})

    await run_host_job(dut, design, job)
