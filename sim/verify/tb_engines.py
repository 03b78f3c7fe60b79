"""cocotb testbench of every engine's harness (run by
:func:`spikeforge.sim.verify.engines.simulate`).

Env contract (:func:`spikeforge.sim.verify.runner.run_testbench`): ``SF_DESIGN``; ``SF_VECTORS``
holds ``kind`` (``fe``/``wue``/``be``), ``n_cases`` and ``c<c>_<input>``; ``SF_RESULTS``
receives ``c<c>_<output>`` (``cycles`` among them). The comparison with the golden model happens
in the caller.
"""

import cocotb
import numpy as np

from spikeforge.sim.verify.engines import case_arrays, run_cases
from spikeforge.sim.verify.harness import CocotbHost
from spikeforge.sim.verify.runner import save_results, testbench_inputs


@cocotb.test()
async def engine_vectors(dut):
    design, vectors = testbench_inputs()
    kind = str(vectors["kind"])
    cases = [case_arrays(vectors, c) for c in range(int(vectors["n_cases"]))]
    host = CocotbHost(dut)
    await host.setup()
    out = {}
    for c, res in enumerate(await run_cases(kind, host, design, cases)):
        dut._log.info("case %d: %d cycles", c, res["cycles"])
        out.update({f"c{c}_{k}": np.asarray(v) for k, v in res.items()})
    save_results(out)
