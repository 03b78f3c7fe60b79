"""The one harness of every engine, and its host procedures.

- :func:`harness`: a :class:`~spikeforge.sim.verify.harness.MemoryHarness` with the memories of
  the design's memory map around the engine (:data:`ENGINES` lists them per engine: the Forward,
  Weight Update and Backward Engines).
- :data:`CASES`: per engine, the host procedure that loads one test vector (a dict of arrays)
  through the host ports, runs the engine, reads every result word back and unpacks it to numpy
  arrays (:func:`forward_case`, :func:`wupdate_case`,
  :func:`spikeforge.sim.verify.backward.backward_case`). They take any host driver with the
  ``write``/``read``/``run`` API (Amaranth simulator or cocotb), so the Amaranth unit tests, the
  one cocotb testbench (:mod:`spikeforge.sim.verify.tb_engines`) and the benchmarks run the very
  same procedure.
- :func:`golden_forward` / :func:`golden_wupdate`: the golden model's answer for the same vector.
"""

import os

import numpy as np

from spikeforge.hdl.backward import BackwardEngine
from spikeforge.hdl.forward import ForwardEngine
from spikeforge.hdl.wupdate import WeightUpdateEngine
from spikeforge.model.arith import FixedArith
from spikeforge.model.network import Network

from .harness import MemoryHarness, MemorySpec, build_harness_verilog

__all__ = ["harness", "forward_case", "wupdate_case", "golden_forward", "golden_wupdate",
           "first_mismatch", "simulate", "run_cases", "case_arrays", "ENGINES", "CASES"]


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


def _be_memories(mm):
    cfg, P = mm.cfg, mm.P
    state = P * mm.state_bits, P * cfg.e_bits
    return {
        "u": MemorySpec(state[0], mm.state_depth, reads=("u_rd",)),
        "g": MemorySpec(state[1], mm.state_depth, reads=("g_rd",)),
        "eps": MemorySpec(state[1], mm.state_depth, reads=("eps_rd",), writes=("eps_wr",)),
        "nz": MemorySpec(mm.spike_width, mm.spike_depth, writes=("nz_wr",)),
        "hb": MemorySpec(mm.spike_width, mm.spike_depth, reads=("hb_rd",)),
        "w": MemorySpec(P * cfg.w_bits, mm.weight_depth, reads=("w_rd",)),
        "gb": MemorySpec(P * cfg.e_bits, mm.state_depth, writes=("gb_wr",),
                         granularity=cfg.e_bits),
    }


#: kind: (engine class, memories of its harness, Verilog top name)
ENGINES = {
    "fe": (ForwardEngine, _fe_memories, "sf_fe_harness"),
    "wue": (WeightUpdateEngine, _wue_memories, "sf_wue_harness"),
    "be": (BackwardEngine, _be_memories, "sf_be_harness"),
}


def harness(kind, design):
    engine, memories, _ = ENGINES[kind]
    return MemoryHarness(engine(design), memories(design.memmap))


async def forward_case(host, design, case):
    """Run the FE on spikes ``case["x"]`` (T, B, n_in) and weights ``case["w"]``
    (n_out, n_in); returns ``u``, ``o`` (T, B, n_out) and ``cycles``."""
    mm, cfg = design.memmap, design.cfg
    x, w = case["x"], case["w"]
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


async def wupdate_case(host, design, case):
    """Run the WUE on spikes ``case["x"]`` (T, B, n_in), ``eps`` (T, B, n_out), weights ``w``;
    returns ``dw``, ``w_new`` (n_out, n_in) and ``cycles``."""
    mm, cfg = design.memmap, design.cfg
    x, eps, w = case["x"], case["eps"], case["w"]
    n_out, n_in = w.shape
    words = mm.matrix_words(n_out, n_in)
    await host.write("x", mm.pack_spikes(x))
    await host.write("eps", mm.pack_points(eps, cfg.e_bits))
    await host.write("w", mm.pack_matrix(w, cfg.w_bits))
    cycles = await host.run(n_in=n_in, n_out=n_out)
    dw = await _read_matrix(host, mm, "dw", words, n_out, n_in, cfg.wgrad_acc_bits)
    w_new = await _read_matrix(host, mm, "w", words, n_out, n_in, cfg.w_bits)
    return {"dw": dw, "w_new": w_new, "cycles": cycles}


def _backward_case(host, design, case):
    from .backward import backward_case
    return backward_case(host, design, case)


#: kind: host procedure of one case
CASES = {"fe": forward_case, "wue": wupdate_case, "be": _backward_case}


async def run_cases(kind, host, design, cases):
    return [await CASES[kind](host, design, case) for case in cases]


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
            arrays[f"c{c}_{name}"] = np.asarray(value)
    np.savez(vectors, **arrays)
    run_testbench(design, [path], top, "spikeforge.sim.verify.tb_engines", build_dir, vectors,
                  results, simulator=simulator)
    out = np.load(results)
    return [{k: int(v) if k in SCALARS else v for k, v in case_arrays(out, c).items()}
            for c in range(len(cases))]


#: result entries that are counts, not arrays
SCALARS = ("cycles", "tb_cycles")


def case_arrays(npz, c):
    """The entries ``c<c>_<name>`` of an ``.npz`` as ``{name: array}``."""
    prefix = f"c{c}_"
    return {k[len(prefix):]: npz[k] for k in getattr(npz, "files", npz) if k.startswith(prefix)}


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
    WUE; jobs of :func:`spikeforge.sim.verify.backward.make_job` for the BE) on engine ``kind``'s
    harness: in the Amaranth simulator (``amaranth``) or on its
    exported Verilog under cocotb (``verilator``/``icarus``; one build serves all cases).
    Returns one dict per case: ``u``, ``o`` (FE) or ``dw``, ``w_new`` (WUE), and ``cycles``
    measured by the engine's cycle counter."""
    if simulator == "amaranth":
        return _simulate_amaranth(kind, design, cases)
    return _simulate_cocotb(kind, design, cases, simulator)
