"""cocotb testbench of the Forward Engine harness (run by :func:`spikeforge.sim.engine_host.simulate_cases`).

Environment: ``SF_PARAMS`` (config and hardware parameters as JSON), ``SF_VECTORS`` (input .npz:
``n_cases``, ``x<c>``, ``w<c>``), ``SF_RESULTS`` (output .npz written here: ``u<c>``, ``o<c>``,
``cycles<c>``). The comparison with the golden model happens in the caller, in ordinary Python.
"""

import os

import cocotb
import numpy as np

from spikeforge.sim.engine_host import forward_case, params_from_key
from spikeforge.sim.harness import CocotbHost


@cocotb.test()
async def forward_vectors(dut):
    cfg, hw = params_from_key(os.environ["SF_PARAMS"])
    vectors = np.load(os.environ["SF_VECTORS"])
    host = CocotbHost(dut)
    await host.setup()
    out = {}
    for c in range(int(vectors["n_cases"])):
        u, o, cycles = await forward_case(host, cfg, hw, vectors[f"x{c}"], vectors[f"w{c}"])
        out[f"u{c}"], out[f"o{c}"], out[f"cycles{c}"] = u, o, np.array(cycles)
        dut._log.info("case %d: %d cycles", c, cycles)
    np.savez(os.environ["SF_RESULTS"], **out)
