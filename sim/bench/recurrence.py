"""``spikeforge bench recurrence``: what a recurrent layer costs on the accelerator, against
feed-forward layers, in RTL simulation (Verilator) on real data.

The design must have recurrent layers (e.g. ``--preset digits_rows``). Three networks run the
same number of training steps queued back to back on the same hardware parameters, each checked
word for word against the golden model (the bench fails otherwise):

- ``recurrent``: the design itself, on ``STEPS`` batches of its data set (after one golden epoch,
  as ``bench top``).
- ``feedforward``: the same layer sizes without ``V`` (``recurrent=[]``), the same batches.
- ``same_synapses``: a feed-forward network whose recurrent layers take their ``n_out`` inputs as
  extra inputs (``n_in + n_out``: as many synapses as ``W`` and ``V`` together), its extra inputs
  random spikes at the rate the recurrent layer fired in its own run.

Cycles are the accelerator's counters (``active_cycles`` and each engine's busy cycles per
step). The recurrent layer's extra cost has three sources: its forward pass goes time step by
time step (a table or tree per ``B`` points instead of ``T * B``), the Backward Engine forms
``V^T eps[t+1]`` on top of the feed-forward backward pass, and the Weight Update Engine's second
pass per block for ``dV``.
"""

import dataclasses

import numpy as np

from .be import trained_network

__all__ = ["run", "STEPS"]

STEPS = 4


def _steps(design, xs, ys, start, simulator):
    """Run ``xs``/``ys`` queued on ``design`` from weights ``start``; check against golden."""
    from spikeforge.model.network import Network
    from spikeforge.sim.verify.top import run_top
    res = run_top(design, start, xs, ys, pipeline=design.hw.pipeline, queue=True,
                  check_every=False, simulator=simulator)
    golden = Network(design.cfg, "fixed", weights=[w.copy() for w in start])
    for x, y in zip(xs, ys):
        golden.train_step(x, y)
    for l, want in enumerate(golden.weights):
        if not np.array_equal(res[f"w_final_{l}"], want):
            raise AssertionError(f"{design}: weight matrix {design.cfg.weight_names()[l]} "
                                 f"differs from the golden model")
    c, n = res["counters"], len(xs)
    return {"layers": list(design.cfg.layers), "recurrent": list(design.cfg.recurrent),
            "cycles_per_step": c["active_cycles"] / n,
            "busy_cycles_per_step": {k: c[f"{k}_busy"] / n for k in ("fe", "out", "be", "wue")},
            "synapses": sum(design.cfg.fan_in_of(l) * design.cfg.layers[l + 1]
                            for l in range(design.cfg.n_layers)),
            "weights_match_golden": True}


def run(design, dataset, simulator="verilator", steps=STEPS):
    from spikeforge.hdl.design import Design
    from spikeforge.model.progress import stage

    cfg = design.cfg
    if not cfg.recurrent:
        raise ValueError("bench recurrence measures a design with recurrent layers: use "
                         "--preset digits_rows (or --set recurrent=0)")
    if cfg.recurrent != (0,):
        raise ValueError("bench recurrence compares a recurrent first layer (recurrent=0), got "
                         f"recurrent={list(cfg.recurrent)}")
    if simulator == "amaranth":
        raise ValueError("bench recurrence runs on the generated Verilog: use --simulator "
                         "verilator or icarus")
    net, data = trained_network(cfg, dataset)
    B, T = cfg.batch, cfg.timesteps
    x = data.encode(data.x_train[:steps * B], T)
    xs = np.stack([x[:, s * B:(s + 1) * B] for s in range(steps)])
    ys = np.stack([data.y_train[s * B:(s + 1) * B] for s in range(steps)])
    out = {"bench": "recurrence", "dataset": dataset, "design_key": design.key(),
           "hw": design.hw.to_dict(), "steps": steps, "batch": B, "timesteps": T}

    stage("the recurrent network")
    out["recurrent"] = _steps(design, xs, ys, net.weights, simulator)

    stage("the same layers without V")
    ff_cfg = dataclasses.replace(cfg, recurrent=()).fit_accumulators().validate()
    ff = Design(ff_cfg, design.hw)
    out["feedforward"] = _steps(ff, xs, ys, net.weights[:cfg.n_layers], simulator)

    stage("a feed-forward network with as many synapses")
    rate = float(net.forward(xs[0])[0].o.mean())      # the recurrent layer's spike rate
    layers = list(cfg.layers)
    layers[0] += cfg.layers[1]
    wide_cfg = dataclasses.replace(cfg, recurrent=(), layers=tuple(layers)) \
        .fit_accumulators().validate()
    wide = Design(wide_cfg, design.hw)
    rng = np.random.default_rng(0)
    extra = (rng.random(xs.shape[:3] + (cfg.layers[1],)) < rate).astype(xs.dtype)
    w = net.weights
    start = [np.concatenate([w[0], w[cfg.n_layers]], axis=1)] + list(w[1:cfg.n_layers])
    out["same_synapses"] = _steps(wide, np.concatenate([xs, extra], axis=3), ys, start,
                                  simulator)
    out["same_synapses"]["extra_input_rate"] = rate
    r = out["recurrent"]["cycles_per_step"]
    out["cost_vs_feedforward"] = r / out["feedforward"]["cycles_per_step"]
    out["cost_vs_same_synapses"] = r / out["same_synapses"]["cycles_per_step"]
    out["data"] = (f"{dataset} training set, first {steps * B} samples, rate code, after one "
                   f"golden epoch (seed 0); the same-synapse network's extra inputs are random "
                   f"spikes at the recurrent layer's own rate ({rate:.3f})")
    out["method"] = ("RTL (Verilator via cocotb), steps queued back to back; cycles from the "
                     "accelerator's counters; weights checked against the golden model after "
                     "each run; see spikeforge.sim.bench.recurrence")
    return out
