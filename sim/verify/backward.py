"""Vectors, host procedure and golden check of the Backward Engine.

The engine runs in the one harness of every engine (:mod:`spikeforge.sim.verify.engines`, kind
``"be"``: its memories, the ``P`` weight banks and ``P`` ``g_below`` banks among them, with host
ports), in the Amaranth simulator or on the generated Verilog under cocotb.

- :func:`make_job`: one layer's vectors (unpacked numpy arrays).
- :func:`backward_case`: the host procedure: load a job, run the engine, read ``eps``, the
  non-zero bitmask and ``g_below`` back, with the engine's cycle counter and the testbench's own.
- :func:`golden_layer` computes the expected values with the golden model itself
  (``Network.backward_layer`` and ``FixedArith.backprop``), :func:`compare` checks word for word.
"""

import numpy as np

from spikeforge.hdl.memmap import MemoryMap, cdiv
from spikeforge.model.network import LayerTrace, Network

__all__ = ["backward_case", "golden_layer", "compare", "check_job", "make_job", "run_amaranth",
           "run_verilog"]


# ---- packing -----------------------------------------------------------------------------------

_pack = MemoryMap.pack_lanes
_unpack = MemoryMap.unpack_lanes


_words = cdiv           # words of n neurons (this run's dimensions) at P lanes


def make_job(cfg, u, g, w=None, h_below=None, sparse=True, name="job"):
    """One layer's vectors: ``u, g`` (T, B, n_out) int; ``w`` (n_out, n_in); ``h_below``
    (T, B, n_in) 0/1, or ``None`` for the first layer."""
    u = np.asarray(u, dtype=np.int64)
    g = np.asarray(g, dtype=np.int64)
    T, B, n_out = u.shape
    job = {"name": name, "u": u, "g": g, "sparse": int(bool(sparse)), "n_out": n_out,
           "timesteps": T, "batch": B, "has_below": int(w is not None)}
    if w is not None:
        job["w"] = np.asarray(w, dtype=np.int64)
        job["h_below"] = np.asarray(h_below, dtype=np.int64)
        job["n_in"] = job["w"].shape[1]
    else:
        job["n_in"] = 0
    return job


def golden_layer(cfg, job):
    """Expected ``eps`` (T, B, n_out), ``nz`` and ``g_below`` (T, B, n_in) from the golden model."""
    net = Network(cfg, "fixed", weights=[np.zeros((o, i), dtype=np.int64)
                                         for i, o in zip(cfg.layers[:-1], cfg.layers[1:])])
    u = job["u"]
    trace = LayerTrace(x=None, u=u, o=(u > cfg.vth_int).astype(np.int64))
    eps = net.backward_layer(trace, job["g"])
    out = {"eps": eps, "nz": (eps != 0).astype(np.int64)}
    if job["has_below"]:
        T, B, n_out = eps.shape
        g = net.arith.backprop(eps.reshape(T * B, n_out), job["w"]).reshape(T, B, -1)
        out["g_below"] = g * job["h_below"]
    return out


def compare(expected, got, label=""):
    """Raise AssertionError naming the first mismatching word, if any."""
    for key, exp in expected.items():
        res = np.asarray(got[key])
        if exp.shape != res.shape:
            raise AssertionError(f"{label} {key}: shape {res.shape} != expected {exp.shape}")
        if not np.array_equal(exp, res):
            idx = tuple(int(x) for x in np.argwhere(exp != res)[0])
            n_bad = int((exp != res).sum())
            raise AssertionError(f"{label} {key}: {n_bad} mismatching words; first at [t,b,i]="
                                 f"{idx}: RTL {res[idx]} != golden {exp[idx]}")


# ---- host procedure ------------------------------------------------------------------------------

async def backward_case(host, design, job):
    """Load ``job`` through the harness's host ports, run the engine, read the results back;
    returns ``eps``, ``eps_pad``, ``nz``, ``g_below`` (with a layer below) and the cycle counts
    (the engine's counter and the testbench's own)."""
    mm, cfg = design.memmap, design.cfg
    P, NP = mm.P, mm.NP
    u, g = np.asarray(job["u"]), np.asarray(job["g"])
    T, B, n_out = u.shape
    n_in, has_below = int(job["n_in"]), int(job["has_below"])
    nw, nwb = _words(n_out, P), _words(n_in, P)
    points = [(t, b, t * B + b) for t in range(T) for b in range(B)]

    def state_words(arr, width):
        """Words ``k * NP + p`` of the state layout (points of a smaller run: 0)."""
        padded = np.zeros((nw, NP, P), dtype=np.int64)
        for t, b, p in points:
            padded[:, p, :] = np.pad(arr[t, b], (0, nw * P - n_out)).reshape(nw, P)
        return [_pack(padded[k, p], width) for k in range(nw) for p in range(NP)]

    if not cfg.reset_grad:        # the state memory holds o (bit 0) and h (bit 1), not u
        lo, hi = cfg.vth_int - cfg.half_window_int, cfg.vth_int + cfg.half_window_int
        u = (u > cfg.vth_int).astype(np.int64) | (((u > lo) & (u < hi)).astype(np.int64) << 1)
    await host.write("u", state_words(u, mm.state_bits))
    await host.write("g", state_words(g, cfg.e_bits))
    if has_below:
        # the FE/WUE layout: word nb * n_in + j holds W[nb*P + q, j] in lane q
        await host.write("w", mm.pack_matrix(np.asarray(job["w"]), cfg.w_bits))
        hb = np.asarray(job["h_below"])
        await host.write("hb", [sum(int(hb[t, b, j]) << j for j in range(n_in))
                                for t, b, _ in points])
        await host.write("gb", [0] * (nwb * NP))

    cycles = await host.run(n_out=n_out, n_in=n_in, timesteps=T, batch=B, has_below=has_below,
                            sparse=int(job["sparse"]))
    words = await host.read("eps", nw * NP)
    eps = np.zeros((T, B, nw * P), dtype=np.int64)
    for t, b, p in points:
        for k in range(nw):
            eps[t, b, k * P:(k + 1) * P] = _unpack(words[k * NP + p], cfg.e_bits, P)
    nz_words = await host.read("nz", T * B)
    nz = np.array([[(nz_words[p] >> i) & 1 for i in range(n_out)] for _, _, p in points],
                  dtype=np.int64).reshape(T, B, n_out)
    result = {"eps": eps[:, :, :n_out], "eps_pad": eps[:, :, n_out:], "nz": nz,
              "cycles": cycles, "tb_cycles": host.tb_cycles}
    if has_below:
        gb = np.zeros((T, B, nwb * P), dtype=np.int64)
        words = await host.read("gb", nwb * NP)
        for t, b, p in points:
            for r in range(nwb):
                gb[t, b, r * P:(r + 1) * P] = _unpack(words[r * NP + p], cfg.e_bits, P)
        result["g_below"] = gb[:, :, :n_in]
    return result


def check_job(cfg, job, result):
    """Golden comparison of one job's result (raises AssertionError)."""
    compare(golden_layer(cfg, job), result, label=job["name"])
    if np.any(result["eps_pad"] != 0):
        raise AssertionError(f"{job['name']}: padding lanes of eps words are not 0")
    if result["cycles"] != result["tb_cycles"]:
        raise AssertionError(f"{job['name']}: cycle counter {result['cycles']} != testbench "
                             f"count {result['tb_cycles']}")


# ---- back-ends ---------------------------------------------------------------------------------

def run_amaranth(design, jobs):
    """Run ``jobs`` on the engine's harness in the Amaranth simulator; return the results."""
    from .engines import simulate
    return simulate("be", design, jobs, simulator="amaranth")


def run_verilog(design, jobs, simulator="verilator"):
    """Run ``jobs`` on the harness Verilog under cocotb (one build per design)."""
    from .engines import simulate
    return simulate("be", design, jobs, simulator=simulator)
