"""Shared part of the FE and WUE benchmarks: real digits data through the golden model, the RTL
run, and the figures (measured cycles, ideal bound, utilisation, the same run with G = 1).

What is measured: the engine's own cycle counter (``cycles`` member, counted in RTL simulation from
the cycle after ``start`` to the last memory write), summed over the layers of one training step
(one run per layer, the layer's real ``n_in``/``n_out``). Host loading and read-back are not counted.
The ideal bound is ``synaptic_ops / (P * G)`` with ``synaptic_ops = sum over layers of
n_in * n_out * T * B`` (every (input, output, point) triple once, whatever the spikes): what P PEs
fusing G operations per cycle would need with no overhead at all.
"""

import sys
import time

import numpy as np

from spikeforge.model.data import load_dataset
from spikeforge.model.network import Network
from spikeforge.model.progress import stage
from spikeforge.sim.verify.engines import first_mismatch, golden_forward, golden_wupdate, simulate

__all__ = ["real_step", "bench"]


def real_step(cfg, dataset, encoder="rate", seed=0):
    """One training step on real data: the first ``B`` training samples, rate-encoded, through the
    golden fixed-point model with seed-``seed`` weights. Returns (network, traces)."""
    stage(f"the golden model on one real training step of {dataset}")
    data = load_dataset(dataset)
    x = data.encode(data.x_train[:cfg.batch], cfg.timesteps, encoder).astype(np.int64)
    labels = data.y_train[:cfg.batch]
    net = Network(cfg, "fixed", seed=seed)
    traces = net.forward(x)
    net.backward(traces, labels)         # fills every trace's eps
    return net, traces, f"{dataset}: first {cfg.batch} training samples, {encoder} code, " \
                        f"T = {cfg.timesteps}, golden fixed-point model, weights seed {seed}"


def _cases(kind, net, traces):
    if kind == "fe":
        return [{"x": tr.x, "w": w} for tr, w in zip(traces, net.weights)]
    return [{"x": tr.x, "eps": tr.eps, "w": w} for tr, w in zip(traces, net.weights)]


def _check(kind, cfg, cases, results):
    for layer, (case, res) in enumerate(zip(cases, results)):
        if kind == "fe":
            want = golden_forward(cfg, case["x"], case["w"])
            got = (res["u"], res["o"])
        else:
            want = golden_wupdate(cfg, case["x"], case["eps"], case["w"])
            got = (res["dw"], res["w_new"])
        for name, g, w in zip(("u", "o") if kind == "fe" else ("dW", "W'"), got, want):
            msg = first_mismatch(g, w)
            if msg:
                raise AssertionError(f"{kind} layer {layer} {name} differs from the golden model: "
                                     f"{msg}")


def bench(kind, design, dataset, simulator="verilator"):
    """Run engine ``kind`` ("fe" or "wue") on one real training step of ``dataset``; return the
    figures."""
    t0 = time.perf_counter()
    cfg = design.cfg
    group_field = "fe_group" if kind == "fe" else "wue_group"
    P, G = design.hw.pes, getattr(design.hw, group_field)
    net, traces, data_desc = real_step(cfg, dataset)
    cases = _cases(kind, net, traces)
    results = simulate(kind, design, cases, simulator=simulator)
    _check(kind, cfg, cases, results)
    t1 = time.perf_counter()
    results_g1 = simulate(kind, design.replace(**{group_field: 1}), cases, simulator=simulator)
    _check(kind, cfg, cases, results_g1)
    t2 = time.perf_counter()

    dims = [(tr.x.shape[2], tr.u.shape[2]) for tr in traces]
    points = cfg.timesteps * cfg.batch
    syn_ops = sum(n_in * n_out * points for n_in, n_out in dims)
    ideal = syn_ops / (P * G)
    cycles = sum(r["cycles"] for r in results)
    cycles_g1 = sum(r["cycles"] for r in results_g1)
    what = ("forward synaptic integration + LIF of every layer" if kind == "fe"
            else "weight gradient + SGD update write-back of every layer")
    out = {
        "engine": "Forward Engine" if kind == "fe" else "Weight Update Engine",
        "pes": P,
        "group": G,
        "layers": [list(d) for d in dims],
        "timesteps": cfg.timesteps,
        "batch": cfg.batch,
        "cycles": cycles,
        "cycles_per_layer": [r["cycles"] for r in results],
        "synaptic_ops": syn_ops,
        "ideal_cycles": ideal,
        "ideal_definition": "synaptic_ops / (P * G), synaptic_ops = sum over layers of "
                            "n_in * n_out * T * B",
        "utilization": ideal / cycles,
        "cycles_g1": cycles_g1,
        "cycles_g1_per_layer": [r["cycles"] for r in results_g1],
        "speedup_vs_g1": cycles_g1 / cycles,
        "bit_exact": True,
        "measured": f"{what} of one training step; engine cycle counter from start to the last "
                    f"memory write, one RTL run per layer, summed; G = 1 run: same P, same data",
        "data": data_desc,
        "simulator": simulator,
        "wall_s": round(t2 - t0, 2),
        "wall_s_g": round(t1 - t0, 2),
        "wall_s_g1": round(t2 - t1, 2),
    }
    print(f"bench {kind}: {out['engine']} P={P} G={G} on {data_desc}; {simulator} RTL simulation; "
          f"measured {cycles} cycles (ideal {ideal:.0f}, utilization {out['utilization']:.3f}); "
          f"G=1: {cycles_g1} cycles ({out['speedup_vs_g1']:.2f}x); outputs bit-exact with the "
          f"golden model; {out['wall_s']} s", file=sys.stderr)
    return out
