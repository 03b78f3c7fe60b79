"""Harnesses and host procedures of the Forward Engine and the Weight Update Engine.

- :func:`harness`: a :class:`~spikeforge.sim.verify.harness.MemoryHarness` with the memories of
  the design's memory map around the engine (:data:`ENGINES` lists them per engine).
- :func:`forward_case` / :func:`wupdate_case`: load one test vector through the host ports, run
  the engine, read every result word back and unpack it to numpy arrays. They take any host driver
  with the ``write``/``read``/``run`` API (Amaranth simulator or cocotb), so the Amaranth unit
  tests, the cocotb testbench (:mod:`spikeforge.sim.verify.tb_engines`) and the benchmarks run the
  very same procedure.
- :func:`golden_forward` / :func:`golden_wupdate`: the golden model's answer for the same vector.
"""

import os

import numpy as np

from spikeforge.hdl.forward import ForwardEngine
from spikeforge.hdl.wupdate import WeightUpdateEngine
from spikeforge.model.arith import FixedArith
from spikeforge.model.network import Network

from .harness import MemoryHarness, MemorySpec, build_harness_verilog

__all__ = ["harness", "forward_case", "wupdate_case", "golden_forward", "golden_wupdate",
           "first_mismatch", "simulate", "ENGINES", "CASES"]


def _fe_memories(mm):
    cfg, P = mm.cfg, mm.P
    return {
        "x": MemorySpec(mm.spike_width, mm.spike_depth, reads=("x_rd",)),
        "w": MemorySpec(P * cfg.w_bits, mm.weight_depth, reads=("w_rd",)),
        "u": MemorySpec(P * cfg.u_bits, mm.state_depth, writes=("u_wr",)),
        "o": MemorySpec(mm.spike_width, mm.spike_depth, writes=("o_wr",), granularity=P),
    }


def _wue_memories(mm):
    cfg, P = mm.cfg, mm.P
    return {
        "x": MemorySpec(mm.spike_width, mm.spike_depth, reads=("x_rd",)),
        "eps": MemorySpec(P * cfg.e_bits, mm.state_depth, reads=("eps_rd",)),
        "w": MemorySpec(P * cfg.w_bits, mm.weight_depth, reads=("w_rd",), writes=("w_wr",)),
        "dw": MemorySpec(P * cfg.wgrad_acc_bits, mm.weight_depth, writes=("dw_wr",)),
    }


#: kind: (engine class, memories of its harness, Verilog top name)
ENGINES = {
    "fe": (ForwardEngine, _fe_memories, "sf_fe_harness"),
    "wue": (WeightUpdateEngine, _wue_memories, "sf_wue_harness"),
}


def harness(kind, design):
    engine, memories, _ = ENGINES[kind]
    return MemoryHarness(engine(design), memories(design.memmap))


async def forward_case(host, design, x, w):
    """Run the FE on spikes ``x`` (T, B, n_in) and weights ``w`` (n_out, n_in).

    Returns ``(u, o, cycles)`` with ``u``, ``o`` of shape (T, B, n_out).
    """
    mm, cfg = design.memmap, design.cfg
    n_out, n_in = w.shape
    await host.write("x", mm.pack_spikes(x))
    await host.write("w", mm.pack_matrix(w, cfg.w_bits))
    cycles = await host.run(n_in=n_in, n_out=n_out)
    u = mm.unpack_points(await host.read("u", mm.point_words(n_out)), n_out, cfg.u_bits)
    o = mm.unpack_spikes(await host.read("o", mm.NP), n_out)
    return {"u": u, "o": o, "cycles": cycles}


async def _read_matrix(host, mm, mem, words, n_out, n_in, bits):
    """Read and unpack an (n_out, n_in) matrix; fail if an undefined (x/z) bit of a 4-state
    simulator lies in one of its entries (they may only be in padding lanes)."""
    raw = await host.read(mem, words)
    unknown = host.unknown.get(mem)
    if unknown and any(unknown) and mm.unpack_matrix(unknown, n_out, n_in, bits).any():
        raise AssertionError(f"{mem}: undefined bits in entries of the result")
    return mm.unpack_matrix(raw, n_out, n_in, bits)


async def wupdate_case(host, design, x, eps, w):
    """Run the WUE on spikes ``x`` (T, B, n_in), ``eps`` (T, B, n_out), weights ``w``.

    Returns ``(dw, w_new, cycles)``, both (n_out, n_in).
    """
    mm, cfg = design.memmap, design.cfg
    n_out, n_in = w.shape
    words = mm.matrix_words(n_out, n_in)
    await host.write("x", mm.pack_spikes(x))
    await host.write("eps", mm.pack_points(eps, cfg.e_bits))
    await host.write("w", mm.pack_matrix(w, cfg.w_bits))
    cycles = await host.run(n_in=n_in, n_out=n_out)
    dw = await _read_matrix(host, mm, "dw", words, n_out, n_in, cfg.wgrad_acc_bits)
    w_new = await _read_matrix(host, mm, "w", words, n_out, n_in, cfg.w_bits)
    return {"dw": dw, "w_new": w_new, "cycles": cycles}


#: kind: (host procedure, the inputs of a case, in its argument order)
CASES = {
    "fe": (forward_case, ("x", "w")),
    "wue": (wupdate_case, ("x", "eps", "w")),
}


async def run_cases(kind, host, design, cases):
    procedure, inputs = CASES[kind]
    return [await procedure(host, design, *(case[k] for k in inputs)) for case in cases]


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


# ---- running cases ---------------------------------------------------------------------------------

def _simulate_cocotb(kind, design, cases, simulator):
    from .runner import run_testbench

    _, _, top = ENGINES[kind]
    path, directory = build_harness_verilog(lambda: harness(kind, design), top, design)
    build_dir = os.path.join(directory, simulator)
    os.makedirs(build_dir, exist_ok=True)
    vectors = os.path.join(build_dir, "vectors.npz")
    results = os.path.join(build_dir, "results.npz")
    arrays = {"kind": np.array(kind), "n_cases": np.array(len(cases))}
    for c, case in enumerate(cases):
        for name, value in case.items():
            arrays[f"c{c}_{name}"] = np.asarray(value, dtype=np.int64)
    np.savez(vectors, **arrays)
    run_testbench(design, [path], top, "spikeforge.sim.verify.tb_engines", build_dir, vectors,
                  results, simulator=simulator)
    out = np.load(results)
    found = []
    for c in range(len(cases)):
        prefix = f"c{c}_"
        res = {k[len(prefix):]: out[k] for k in out.files if k.startswith(prefix)}
        res["cycles"] = int(res["cycles"])
        found.append(res)
    return found


def _simulate_amaranth(kind, design, cases):
    from amaranth.sim import Simulator

    from .harness import AmaranthHost

    dut = harness(kind, design)
    results = []

    async def testbench(ctx):
        results.extend(await run_cases(kind, AmaranthHost(ctx, dut), design, cases))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def simulate(kind, design, cases, simulator="verilator"):
    """Run ``cases`` (dicts of arrays: ``x``, ``w`` for the FE; ``x``, ``eps``, ``w`` for the
    WUE) on engine ``kind``'s harness: in the Amaranth simulator (``amaranth``) or on its
    exported Verilog under cocotb (``verilator``/``icarus``; one build serves all cases).
    Returns one dict per case: ``u``, ``o`` (FE) or ``dw``, ``w_new`` (WUE), and ``cycles``
    measured by the engine's cycle counter."""
    if simulator == "amaranth":
        return _simulate_amaranth(kind, design, cases)
    return _simulate_cocotb(kind, design, cases, simulator)
