"""``spikeforge bench be``: the Backward Engine's cycles on real data, with and without skipping.

What is measured, and how:

1. Data: the preset's data set (``load_dataset``), deterministic rate code (``encode(..., "rate")``),
   the golden fixed-point network ``Network(cfg, "fixed", seed=0)`` trained for one epoch
   (``train_step`` over the training set in batches of ``cfg.batch``, shuffled with
   ``default_rng([0, 0])``, as ``spikeforge train`` does). Then the first ``cfg.batch`` test
   samples: golden forward pass and output-layer ``g`` (spike-count error), and every layer of
   that training step's backward pass is run on the RTL (``g`` of a lower layer is the
   engine's own ``g_below`` output, checked word for word against the golden model).
2. Cycles: the engine's hardware counter (``busy`` cycles from ``start`` to ``done``), summed over
   layers, once with ``sparse = 1`` (``cycles``) and once with ``sparse = 0`` on the same vectors
   and the same build (``cycles_dense``).
3. Sparsity: ``input_sparsity`` = share of zero ``eps`` over the layers that have a layer below
   (those whose zeros the engine can skip); ``output_sparsity`` = share of entries of those
   layers below with ``h = 0``. Figures over all layers are reported too.
4. ``ideal_cycles``: the cycles a perfect engine with the same resources needs: a recurrence unit
   of ``P`` neurons per cycle and ``P`` multiply-accumulate lanes, fully overlapped, no pipeline
   fill, no lane imbalance, i.e. per layer ``max(R, M)`` with ``R = T * B * ceil(n_out / P)`` and
   ``M = sum over points p of nnz_eps(p) * needed_j(p) / P`` (0 for the first layer).
   ``ideal_cycles_write_floor`` counts ``max(nnz_eps(p), 1)`` instead: a needed ``g_below`` entry
   of a point without any non-zero eps must still be written (as 0), one lane-cycle each.
   ``ideal_cycles_dense`` counts every eps and every ``j``. The target is ``cycles_dense / cycles >= 0.7 * cycles_dense /
   ideal_cycles``, i.e. ``ideal_cycles / cycles >= 0.7``.
"""

import time

import numpy as np

__all__ = ["run", "real_layer_jobs", "ideal_cycles", "trained_network"]


def trained_network(cfg, dataset, epochs=1, seed=0):
    """The golden fixed-point network after ``epochs`` of training; returns (net, data)."""
    from spikeforge.model.data import load_dataset
    from spikeforge.model.network import Network

    from spikeforge.model.progress import stage
    stage(f"training the golden model {epochs} epoch(s) on {dataset}: the network measured")
    data = load_dataset(dataset)
    net = Network(cfg, "fixed", seed=seed)
    B = cfg.batch
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(data.x_train))
        x = data.encode(data.x_train[order], cfg.timesteps)
        y = data.y_train[order]
        for i in range(len(order) // B):
            net.train_step(x[:, i * B:(i + 1) * B], y[i * B:(i + 1) * B])
    return net, data


def real_layer_jobs(cfg, net, x, labels, sparse):
    """Golden traces of one training step and the engine jobs of every layer (top first).

    The output layer's ``g`` is the golden spike-count error; the ``g`` of each lower layer is the
    golden ``g_below`` of the layer above (which the engine reproduces word for word)."""
    from spikeforge.sim.verify.backward import golden_layer, make_job

    traces = net.forward(x)
    a = net.arith
    counts = net.counts(traces)
    g_out = a.loss_grad(counts, net.targets(np.asarray(labels), cfg.layers[-1]))
    g = np.broadcast_to(g_out, traces[-1].o.shape).copy()
    jobs = []
    mode = "sparse" if sparse else "dense"
    for layer in range(len(traces) - 1, -1, -1):
        tr = traces[layer]
        if layer > 0:
            job = make_job(cfg, tr.u, g, net.weights[layer], a.surrogate(traces[layer - 1].u),
                           sparse=sparse, name=f"layer{layer}_{mode}")
            g = golden_layer(cfg, job)["g_below"]
        else:
            job = make_job(cfg, tr.u, g, sparse=sparse, name=f"layer{layer}_{mode}")
        jobs.append(job)
    return traces, jobs


def ideal_cycles(job, eps, P, dense=False, write_floor=False):
    """Lower bound of the engine's cycles for one layer (see the module docstring).

    ``max(R, M / P)``: ``R = T*B*ceil(n_out/P)`` recurrence words, ``M`` the multiply-accumulates
    implied by the measured sparsity (``sum_p nnz_eps(p) * needed_j(p)``; with ``write_floor``,
    ``max(nnz_eps(p), 1)``: a needed output of a point without non-zero eps is still written)."""
    T, B, n_out = job["u"].shape
    recurrence = T * B * -(-n_out // P)
    if not job["has_below"]:
        return float(recurrence)
    n_in = job["n_in"]
    if dense:
        macs = T * B * n_out * n_in
    else:
        nnz = (eps != 0).reshape(T * B, n_out).sum(axis=1)
        if write_floor:
            nnz = np.maximum(nnz, 1)
        needed = job["h_below"].reshape(T * B, n_in).sum(axis=1)
        macs = float((nnz * needed).sum())
    return float(max(recurrence, macs / P))


def run(design, dataset, simulator="verilator"):
    """Measure; returns a JSON-ready dict (see the module docstring)."""
    from spikeforge.sim.verify.backward import check_job, golden_layer, run_amaranth, run_verilog

    t_start = time.perf_counter()
    cfg = design.cfg
    net, data = trained_network(cfg, dataset)
    t_train = time.perf_counter() - t_start
    B = cfg.batch
    x = data.encode(data.x_test[:B], cfg.timesteps)
    labels = data.y_test[:B]
    traces, sparse_jobs = real_layer_jobs(cfg, net, x, labels, sparse=True)
    _, dense_jobs = real_layer_jobs(cfg, net, x, labels, sparse=False)
    jobs = sparse_jobs + dense_jobs

    t_sim = time.perf_counter()
    if simulator == "amaranth":
        results = run_amaranth(design, jobs)
    else:
        results = run_verilog(design, jobs, simulator=simulator)
    t_sim = time.perf_counter() - t_sim
    for job, res in zip(jobs, results):
        check_job(cfg, job, res)

    P = design.hw.pes
    layers = []
    n = len(sparse_jobs)
    for job, res_s, res_d in zip(sparse_jobs, results[:n], results[n:]):
        eps = golden_layer(cfg, job)["eps"]
        entry = {
            "layer": job["name"].split("_")[0],
            "n_out": job["n_out"], "n_in": job["n_in"],
            "eps_zero_share": float((eps == 0).mean()),
            "cycles": res_s["cycles"], "cycles_dense": res_d["cycles"],
            "ideal_cycles": ideal_cycles(job, eps, P),
            "ideal_cycles_dense": ideal_cycles(job, eps, P, dense=True),
            "ideal_cycles_write_floor": ideal_cycles(job, eps, P, write_floor=True),
        }
        if job["has_below"]:
            entry["masked_share_below"] = float((job["h_below"] == 0).mean())
            T, B_, n_out = eps.shape
            nnz = (eps != 0).reshape(T * B_, n_out).sum(axis=1)
            needed = job["h_below"].reshape(T * B_, -1).sum(axis=1)
            entry["macs_skipping"] = int((nnz * needed).sum())
            entry["macs_dense"] = int(T * B_ * n_out * job["n_in"])
        layers.append(entry)

    below = [(j, golden_layer(cfg, j)["eps"]) for j in sparse_jobs if j["has_below"]]
    cycles = sum(e["cycles"] for e in layers)
    cycles_dense = sum(e["cycles_dense"] for e in layers)
    ideal = sum(e["ideal_cycles"] for e in layers)
    all_eps = np.concatenate([golden_layer(cfg, j)["eps"].ravel() for j in sparse_jobs])
    result = {
        "cycles": cycles,
        "cycles_dense": cycles_dense,
        "ideal_cycles": ideal,
        "ideal_cycles_dense": sum(e["ideal_cycles_dense"] for e in layers),
        "ideal_cycles_write_floor": sum(e["ideal_cycles_write_floor"] for e in layers),
        "input_sparsity": float(np.mean(np.concatenate([(e == 0).ravel() for _, e in below])))
        if below else 0.0,
        "output_sparsity": float(np.mean(np.concatenate([(j["h_below"] == 0).ravel()
                                                         for j, _ in below]))) if below else 0.0,
        "input_sparsity_all_layers": float((all_eps == 0).mean()),
        "reduction": cycles_dense / cycles,
        "ideal_reduction": cycles_dense / ideal,
        "efficiency": ideal / cycles,
        "target": "reduction >= 0.7 * ideal_reduction (efficiency >= 0.7)",
        "target_met": bool(cycles_dense / cycles >= 0.7 * cycles_dense / ideal),
        "bit_exact": True,
        "layers": layers,
        "hw": {"pes": P, "simulator": simulator},
        "design": design.key(),
        "data": {
            "dataset": dataset, "encoder": "rate", "training": "golden fixed-point, 1 epoch, "
            "seed 0, batches of cfg.batch", "batch": f"first {B} test samples",
            "timesteps": cfg.timesteps, "layers": list(cfg.layers),
            "reset_grad": cfg.reset_grad,
        },
        "method": "cycles: the engine's busy-cycle counter in RTL simulation, summed over every "
                  "layer of one training step's backward pass; cycles_dense: same build and "
                  "vectors with sparse=0; every eps and g_below word checked against the golden "
                  "model; ideal_cycles: per layer max(T*B*ceil(n_out/P), sum_p nnz_eps(p)"
                  "*needed_j(p)/P), see spikeforge/sim/bench/be.py",
        "seconds": {"train": round(t_train, 2), "simulation": round(t_sim, 2),
                    "total": round(time.perf_counter() - t_start, 2)},
    }
    return result
