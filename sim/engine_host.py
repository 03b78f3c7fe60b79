"""Harnesses and host procedures of the Forward Engine and the Weight Update Engine.

- :func:`forward_harness` / :func:`wupdate_harness`: a :class:`~spikeforge.sim.harness.MemoryHarness`
  with the memories of :mod:`spikeforge.hdl.layout` around the engine.
- :func:`forward_case` / :func:`wupdate_case`: load one test vector through the host ports, run
  the engine, read every result word back and unpack it to numpy arrays. They take any host driver
  with the ``write``/``read``/``run`` API (Amaranth simulator or cocotb), so the Amaranth unit
  tests, the cocotb testbenches and the benchmarks run the very same procedure.
- :func:`golden_forward` / :func:`golden_wupdate`: the golden model's answer for the same vector.
"""

import json

import numpy as np

from spikeforge.hdl.forward import ForwardEngine
from spikeforge.hdl.layout import EngineLayout
from spikeforge.hdl.params import HwParams
from spikeforge.hdl.wupdate import WeightUpdateEngine
from spikeforge.model.arith import FixedArith
from spikeforge.model.config import Config
from spikeforge.model.network import Network

from .harness import MemoryHarness, MemorySpec, build_harness_verilog

__all__ = ["forward_harness", "wupdate_harness", "forward_case", "wupdate_case",
           "golden_forward", "golden_wupdate", "params_key", "params_from_key", "first_mismatch",
           "simulate_cases", "simulate_cases_amaranth", "simulate", "ENGINES"]


def forward_harness(cfg, hw):
    lay = EngineLayout(cfg, hw.fe_pes)
    P = hw.fe_pes
    return MemoryHarness(ForwardEngine(cfg, hw), {
        "x": MemorySpec(lay.spike_width, lay.spike_depth, reads=("x_rd",)),
        "w": MemorySpec(P * cfg.w_bits, lay.weight_depth, reads=("w_rd",)),
        "u": MemorySpec(P * cfg.u_bits, lay.state_depth, writes=("u_wr",)),
        "o": MemorySpec(lay.spike_width, lay.spike_depth, writes=("o_wr",), granularity=P),
    })


def wupdate_harness(cfg, hw):
    lay = EngineLayout(cfg, hw.wue_pes)
    P = hw.wue_pes
    return MemoryHarness(WeightUpdateEngine(cfg, hw), {
        "x": MemorySpec(lay.spike_width, lay.spike_depth, reads=("x_rd",)),
        "eps": MemorySpec(P * cfg.e_bits, lay.state_depth, reads=("eps_rd",)),
        "w": MemorySpec(P * cfg.w_bits, lay.weight_depth, reads=("w_rd",), writes=("w_wr",)),
        "dw": MemorySpec(P * cfg.wgrad_acc_bits, lay.weight_depth, writes=("dw_wr",)),
    })


def params_key(cfg, hw):
    """A JSON string naming (config, hardware parameters): build-cache key and env payload."""
    return json.dumps({"cfg": cfg.to_dict(), "hw": vars(hw)}, sort_keys=True)


def params_from_key(key):
    d = json.loads(key)
    return Config.from_dict(d["cfg"]), HwParams(**d["hw"]).validate()


async def forward_case(host, cfg, hw, x, w):
    """Run the FE on spikes ``x`` (T, B, n_in) and weights ``w`` (n_out, n_in).

    Returns ``(u, o, cycles)`` with ``u``, ``o`` of shape (T, B, n_out).
    """
    lay = EngineLayout(cfg, hw.fe_pes)
    n_out, n_in = w.shape
    await host.write("x", lay.pack_spikes(x))
    await host.write("w", lay.pack_matrix(w, cfg.w_bits))
    cycles = await host.run(n_in=n_in, n_out=n_out)
    u = lay.unpack_points(await host.read("u", lay.point_words(n_out)), n_out, cfg.u_bits)
    o = lay.unpack_spikes(await host.read("o", lay.points), n_out)
    return u, o, cycles


async def _read_matrix(host, lay, mem, words, n_out, n_in, bits):
    """Read and unpack an (n_out, n_in) matrix; fail if an undefined (x/z) bit of a 4-state
    simulator lies in one of its entries (they may only be in padding lanes)."""
    raw = await host.read(mem, words)
    unknown = host.unknown.get(mem)
    if unknown and any(unknown) and lay.unpack_matrix(unknown, n_out, n_in, bits).any():
        raise AssertionError(f"{mem}: undefined bits in entries of the result")
    return lay.unpack_matrix(raw, n_out, n_in, bits)


async def wupdate_case(host, cfg, hw, x, eps, w):
    """Run the WUE on spikes ``x`` (T, B, n_in), ``eps`` (T, B, n_out), weights ``w``.

    Returns ``(dw, w_new, cycles)``, both (n_out, n_in).
    """
    lay = EngineLayout(cfg, hw.wue_pes)
    n_out, n_in = w.shape
    words = lay.matrix_words(n_out, n_in)
    await host.write("x", lay.pack_spikes(x))
    await host.write("eps", lay.pack_points(eps, cfg.e_bits))
    await host.write("w", lay.pack_matrix(w, cfg.w_bits))
    cycles = await host.run(n_in=n_in, n_out=n_out)
    dw = await _read_matrix(host, lay, "dw", words, n_out, n_in, cfg.wgrad_acc_bits)
    w_new = await _read_matrix(host, lay, "w", words, n_out, n_in, cfg.w_bits)
    return dw, w_new, cycles


def golden_forward(cfg, x, w):
    """Golden ``(u, o)`` of one layer (``Network(cfg, "fixed").forward_layer``)."""
    trace = Network(cfg, "fixed").forward_layer(np.asarray(x, dtype=np.int64),
                                                np.asarray(w, dtype=np.int64))
    return trace.u, trace.o


def golden_wupdate(cfg, x, eps, w):
    """Golden ``(dW, W')`` (``FixedArith.weight_grad`` then ``FixedArith.update``)."""
    a = FixedArith(cfg)
    T, B, n_in = x.shape
    dw = a.weight_grad(np.asarray(eps, dtype=np.int64).reshape(T * B, -1),
                       np.asarray(x, dtype=np.int64).reshape(T * B, n_in))
    return dw, a.update(np.asarray(w, dtype=np.int64), dw)


def first_mismatch(got, want):
    """``None`` when equal, else a message with the first differing index and both values."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    diff = np.argwhere(got != want)
    if len(diff) == 0:
        return None
    idx = tuple(int(i) for i in diff[0])
    return f"{len(diff)} mismatches, first at {idx}: got {got[idx]}, want {want[idx]}"


# ---- running vectors on the generated Verilog (cocotb) ------------------------------------------

ENGINES = {
    # kind: (harness factory, cocotb test module, Verilog top name)
    "fe": (forward_harness, "spikeforge.sim.tb_forward", "sf_fe_harness"),
    "wue": (wupdate_harness, "spikeforge.sim.tb_wupdate", "sf_wue_harness"),
}


def default_build_root():
    import os
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get("SPIKEFORGE_BUILD", os.path.join(here, "build", "sim"))


def simulate_cases(kind, cfg, hw, cases, simulator="verilator", build_root=None):
    """Run ``cases`` on the exported harness of engine ``kind`` ("fe" or "wue") with cocotb.

    ``cases`` is a list of dicts of arrays: ``x``, ``w`` for the FE; ``x``, ``eps``, ``w`` for the
    WUE. One Verilog export and one simulator build serve all cases. Returns a list of result
    dicts: ``u``, ``o`` (FE) or ``dw``, ``w_new`` (WUE), and ``cycles`` measured by the engine's
    cycle counter.
    """
    import importlib
    import os

    from .runner import run_cocotb

    factory, module, top = ENGINES[kind]
    key = params_key(cfg, hw)
    path, directory = build_harness_verilog(lambda: factory(cfg, hw), top,
                                            build_root or default_build_root(), key)
    build_dir = os.path.join(directory, simulator)
    os.makedirs(build_dir, exist_ok=True)
    vectors = os.path.join(build_dir, "vectors.npz")
    results = os.path.join(build_dir, "results.npz")
    arrays = {"n_cases": np.array(len(cases))}
    for c, case in enumerate(cases):
        for name, value in case.items():
            arrays[f"{name}{c}"] = np.asarray(value, dtype=np.int64)
    np.savez(vectors, **arrays)
    if os.path.exists(results):
        os.remove(results)
    importlib.import_module(module)          # so run_cocotb finds its folder
    run_cocotb([path], top, module, build_dir, simulator=simulator,
               extra_env={"SF_PARAMS": key, "SF_VECTORS": vectors, "SF_RESULTS": results})
    out = np.load(results)
    names = ("u", "o") if kind == "fe" else ("dw", "w_new")
    return [{**{n: out[f"{n}{c}"] for n in names}, "cycles": int(out[f"cycles{c}"])}
            for c in range(len(cases))]


def simulate_cases_amaranth(kind, cfg, hw, cases):
    """As :func:`simulate_cases`, in the Amaranth simulator (no Verilog; slower)."""
    from amaranth.sim import Simulator

    from .harness import AmaranthHost

    factory = ENGINES[kind][0]
    harness = factory(cfg, hw)
    results = []

    async def testbench(ctx):
        host = AmaranthHost(ctx, harness)
        for case in cases:
            if kind == "fe":
                u, o, cycles = await forward_case(host, cfg, hw, case["x"], case["w"])
                results.append({"u": u, "o": o, "cycles": cycles})
            else:
                dw, w_new, cycles = await wupdate_case(host, cfg, hw, case["x"], case["eps"],
                                                       case["w"])
                results.append({"dw": dw, "w_new": w_new, "cycles": cycles})

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def simulate(kind, cfg, hw, cases, simulator="verilator", build_root=None):
    """Dispatch to :func:`simulate_cases` (``verilator``/``icarus``) or the Amaranth simulator."""
    if simulator == "amaranth":
        return simulate_cases_amaranth(kind, cfg, hw, cases)
    return simulate_cases(kind, cfg, hw, cases, simulator=simulator, build_root=build_root)
