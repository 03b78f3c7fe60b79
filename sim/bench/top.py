"""``spikeforge bench top``: the whole accelerator in RTL simulation (Verilator) on real data.

What is measured, and how:

1. Data: the preset's data set, deterministic rate code, the golden fixed-point network trained
   for one epoch (as ``spikeforge bench be``; realistic spike and gradient sparsity), then
   ``STEPS`` consecutive training batches of the training set.
2. The accelerator (``hdl/top.py``, default ``HwParams``) loads those weights and runs the
   ``STEPS`` training steps **queued back to back** through the host protocol (the host stages
   batch n+1 while batch n trains), once with pipelining on and once off (same build, switched
   at run time). After each run the weights read back must equal the golden model's after the
   same steps, word for word, or the bench fails.
3. Cycles come from the accelerator's own counters: ``active_cycles`` (any engine or queued step
   busy) and each engine's busy cycles. ``cycles_per_sample = active_cycles / (STEPS * B)``.
4. ``ideal_cycles_per_step``: the bound if every engine ran at its ideal rate and the pipeline hid
   everything else, i.e. the busiest engine's ideal work: max of FE ``sum n_in*n_out*T*B/(P*G)``,
   WUE the same with its P and G, BE ``sum max(T*B*ceil(n_out/P), MACs/P)`` (MACs with both
   sparsities, from the golden model). ``utilization = ideal_cycles_per_step / measured cycles per
   step`` (pipelined).
5. ``sim_cycles_per_second``: Verilator's speed on the digits top while it computes: the clock
   cycles of one more training step (batch already staged) divided by the wall-clock seconds of
   the host's ``WAIT`` for it. ``sim_cycles_per_second_with_host_io``: the whole queued run's
   active cycles over its wall time, including the cocotb byte-by-byte host traffic.
"""

import numpy as np


from .be import trained_network

__all__ = ["run", "ideal_step_cycles", "STEPS"]

STEPS = 6


def ideal_step_cycles(design, stats):
    """Ideal cycles of each engine for one training step (``stats``: golden step_stats; the
    Backward Engine's ideal leaves out the ``V^T eps`` products of recurrent layers, which
    ``step_stats`` does not count)."""
    mm, hw = design.memmap, design.hw
    L, n, TB = mm.L, mm.layers, mm.NP
    # (a recurrent layer's neurons also take its own n_out spikes of the step before)
    syn = sum(design.cfg.fan_in_of(l) * n[l + 1] * TB for l in range(L))
    be = 0
    for l in range(L):
        rec = TB * mm.blocks[l]
        be += max(rec, stats["layers"][l]["backprop_macs"] / hw.pes)
    return {"fe": syn / (hw.pes * hw.fe_group), "wue": syn / (hw.pes * hw.wue_group),
            "be": be}


def run(design, dataset, simulator="verilator", steps=STEPS):
    from spikeforge.model.network import Network
    from spikeforge.model.progress import stage
    from spikeforge.sim.verify.top import run_top

    if simulator == "amaranth":
        raise ValueError("bench top runs on the generated Verilog: use --simulator verilator "
                         "or icarus")
    cfg, hw = design.cfg, design.hw
    net, data = trained_network(cfg, dataset)
    B, T = cfg.batch, cfg.timesteps
    x = data.encode(data.x_train[:steps * B], T)
    xs = np.stack([x[:, s * B:(s + 1) * B] for s in range(steps)])
    ys = np.stack([data.y_train[s * B:(s + 1) * B] for s in range(steps)])
    start = [w.copy() for w in net.weights]
    golden = Network(cfg, "fixed", weights=start)
    ideal = {"fe": 0.0, "wue": 0.0, "be": 0.0}
    stage(f"the golden model on the {steps} measured steps")
    for s in range(steps):
        result = golden.train_step(xs[s], ys[s])
        for key, value in ideal_step_cycles(design, result.stats).items():
            ideal[key] += value / steps
    runs = {}
    for mode, pipeline in (("pipelined", True), ("sequential", False)):
        res = run_top(design, start, xs, ys, pipeline=pipeline, queue=True, check_every=False,
                      simulator=simulator)
        for l, want in enumerate(golden.weights):
            if not np.array_equal(res[f"w_final_{l}"], want):
                raise AssertionError(f"{mode}: weight matrix {l} ({cfg.weight_names()[l]}) "
                                     f"differs from the golden model")
        runs[mode] = res
    c = runs["pipelined"]["counters"]
    cs = runs["sequential"]["counters"]
    per_step = c["active_cycles"] / steps
    ideal_step = max(ideal.values())
    busy = {k: c[f"{k}_busy"] / steps for k in ("fe", "out", "be", "wue")}
    wall = float(runs["pipelined"]["wall_seconds"])
    return {
        "cycles_per_sample": c["active_cycles"] / (steps * B),
        "cycles_per_sample_sequential": cs["active_cycles"] / (steps * B),
        "pipeline_saving": 1 - c["active_cycles"] / cs["active_cycles"],
        "cycles_per_step": per_step,
        "cycles_per_step_sequential": cs["active_cycles"] / steps,
        "busy_cycles_per_step": busy,
        "ideal_cycles_per_step": ideal_step,
        "ideal_cycles_per_engine": ideal,
        "utilization": ideal_step / per_step,
        "sim_cycles_per_second": float(runs["pipelined"]["compute_cycles"]) /
        float(runs["pipelined"]["compute_wall_seconds"]),
        "sim_cycles_per_second_with_host_io": c["active_cycles"] / wall,
        "sim_wall_seconds": wall,
        "weights_match_golden": True,
        "counters": c,
        "counters_sequential": cs,
        "steps": steps, "batch": B, "timesteps": T,
        "hw": hw.to_dict(),
        "design": design.key(),
        "data": f"{dataset} training set, first {steps * B} samples, rate code, after one golden "
                f"epoch (seed 0)",
        "method": "RTL (Verilator via cocotb), steps queued back to back; cycles from the "
                  "accelerator's counters; see spikeforge.sim.bench.top",
    }
