"""cocotb testbench of the Weight Update Engine harness (run by
:func:`spikeforge.sim.engine_host.simulate_cases`).

Environment: ``SF_PARAMS`` (config and hardware parameters as JSON), ``SF_VECTORS`` (input .npz:
``n_cases``, ``x<c>``, ``eps<c>``, ``w<c>``), ``SF_RESULTS`` (output .npz written here: ``dw<c>``,
``w_new<c>``, ``cycles<c>``). The comparison with the golden model happens in the caller.
"""

import os

import cocotb
import numpy as np

from spikeforge.sim.engine_host import params_from_key, wupdate_case
from spikeforge.sim.harness import CocotbHost


@cocotb.test()
async def wupdate_vectors(dut):
    cfg, hw = params_from_key(os.environ["SF_PARAMS"])
    vectors = np.load(os.environ["SF_VECTORS"])
    host = CocotbHost(dut)
    await host.setup()
    out = {}
    for c in range(int(vectors["n_cases"])):
        dw, w_new, cycles = await wupdate_case(host, cfg, hw, vectors[f"x{c}"],
                                               vectors[f"eps{c}"], vectors[f"w{c}"])
        out[f"dw{c}"], out[f"w_new{c}"], out[f"cycles{c}"] = dw, w_new, np.array(cycles)
        dut._log.info("case %d: %d cycles", c, cycles)
    np.savez(os.environ["SF_RESULTS"], **out)
