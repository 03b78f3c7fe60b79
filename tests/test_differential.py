"""Randomized differential test: the whole accelerator against the golden model, word for word.

Each case draws a random design (layer shapes with the input wider and narrower than the hidden
layers, one weight layer or three, T, batch, every number width, the decay, the learning rate,
the reset-path gradient, P, both group sizes, sparse or dense Backward Engine, pipelining on or
off, LUT tables or adder trees, small buffers in distributed or block RAM) and random data (weights uniform or at the extremes, spikes random, all zero or all one),
loads it through the host protocol, trains two steps and reads every weight back after each,
then runs an inference; everything must equal the golden fixed-point model exactly. A failing case
names its seed: ``pytest tests/test_differential.py -k 'seed_17'`` reruns it.

The default run uses the Amaranth simulator on small cases; ``pytest -m slow`` runs more and
larger cases on the generated Verilog under Verilator.
"""

import dataclasses

import numpy as np
import pytest

from conftest import require_simulator
from spikeforge.hdl.design import Design
from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config, ConfigError
from spikeforge.model.fixedpoint import smax, smin
from spikeforge.model.network import Network

STEPS = 2


def random_design(seed, max_n=12):
    """A valid random design; ``seed`` alone fixes it."""
    rng = np.random.default_rng([seed, 1])
    for _ in range(100):
        shape = rng.choice(["wide_input", "narrow_input", "one_layer", "deep", "any"])
        if shape == "one_layer":
            layers = [int(rng.integers(1, max_n + 1)), int(rng.integers(1, 8))]
        elif shape == "deep":
            layers = [int(rng.integers(1, max_n + 1)) for _ in range(4)]
        else:
            layers = [int(rng.integers(1, max_n + 1)) for _ in range(3)]
            if shape == "wide_input":       # the input needs more blocks than any other layer
                layers[0] = max_n + int(rng.integers(0, 6))
                layers[1] = int(rng.integers(1, 5))
            elif shape == "narrow_input":
                layers[0] = int(rng.integers(1, 4))
        T, B = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        w_bits = int(rng.integers(4, 17))
        w_frac = int(rng.integers(1, w_bits - 1))
        e_bits = int(rng.integers(4, 17))
        try:
            cfg = Config(
                layers=tuple(layers), timesteps=T, batch=B,
                alpha=float(rng.choice([0.5, 0.75, 0.875, 0.25, 1.0])),
                lr=float(rng.choice([2.0 ** -3, 2.0 ** -5, 2.0 ** -4 + 2.0 ** -6])),
                target_true=int(rng.integers(0, T + 1)), target_false=int(rng.integers(0, T + 1)),
                reset_grad=bool(rng.integers(0, 2)),
                w_bits=w_bits, w_frac=w_frac,
                u_bits=int(rng.integers(max(w_bits, w_frac + 2), w_bits + 8)),
                e_bits=e_bits, e_frac=int(rng.integers(0, e_bits - 1)),
                init_gain=float(rng.choice([1.0, 3.0])),
            ).fit_accumulators().validate()
            # P >= 4 exercises the Backward Engine's row tokens, G = 8 the ECP5 boards' groups
            hw = HwParams(pes=int(rng.choice([1, 2, 3, 4, 5, 8])),
                          fe_group=int(rng.choice([1, 2, 3, 4, 8])),
                          wue_group=int(rng.choice([1, 2, 3, 4, 8])),
                          be_sparse=bool(rng.integers(0, 2)),
                          pipeline=bool(rng.integers(0, 2)),
                          table=str(rng.choice(["lut", "tree"])),
                          dist_ram=bool(rng.integers(0, 2)))
            if hw.table == "tree":      # adder trees take groups up to 16 (drawn last, so the
                # fields above are those of the earlier draws)
                hw = hw.replace(fe_group=int(rng.choice([hw.fe_group, 11, 16])),
                                wue_group=int(rng.choice([hw.wue_group, 9, 16])))
            if hw.dist_ram:             # (drawn after the rest: earlier seeds keep their designs)
                hw = hw.replace(dist_spill=bool(rng.integers(0, 2)))
            return Design(cfg, hw), shape
        except ConfigError:
            continue
    raise AssertionError(f"seed {seed}: no valid design drawn")


def random_recurrent_design(seed):
    """A valid random design with recurrent hidden layers (a random non-empty subset of them):
    a :func:`random_design` whose config also lists them; ``seed`` alone fixes it."""
    rng = np.random.default_rng([seed, 9])
    for k in range(200):
        design, shape = random_design(seed * 1000 + k)
        hidden = design.cfg.n_layers - 1
        if hidden < 1:
            continue
        rec = tuple(sorted({int(l) for l in rng.integers(0, hidden, int(rng.integers(1, 3)))}))
        try:
            cfg = dataclasses.replace(design.cfg, recurrent=rec).fit_accumulators().validate()
        except ConfigError:
            continue
        return Design(cfg, design.hw), f"{shape}, recurrent {list(rec)}"
    raise AssertionError(f"seed {seed}: no valid recurrent design drawn")


def random_data(design, seed):
    """Initial weights and ``STEPS`` batches of spikes and labels, redrawn (up to 30 times) until
    the first golden step has non-zero ``eps`` in every layer: data that trains nothing would
    leave most of the backward datapath unchecked."""
    for attempt in range(30):
        data = _draw_data(design, seed, attempt)
        if all(active_eps(design, *data[:3])):
            break
    return data


def active_eps(design, weights, xs, ys):
    """Per layer: has the first golden training step a non-zero eps?"""
    net = Network(design.cfg, "fixed", weights=[w.copy() for w in weights])
    traces = net.forward(xs[0])
    net.backward(traces, ys[0])
    return [bool(np.any(t.eps != 0)) for t in traces]


def _draw_data(design, seed, attempt):
    cfg = design.cfg
    rng = np.random.default_rng([seed, 2, attempt])
    weights = Network(cfg, "fixed", seed=seed).weights
    kind = rng.choice(["init", "uniform", "extremes"])
    if kind != "init":
        lo, hi = smin(cfg.w_bits), smax(cfg.w_bits)
        weights = [rng.integers(lo, hi + 1, size=w.shape) if kind == "uniform"
                   else rng.choice([lo, hi], size=w.shape) for w in weights]
    T, B, n0 = cfg.timesteps, cfg.batch, cfg.layers[0]
    spikes = rng.choice(["random", "zeros", "ones"], p=[0.6, 0.2, 0.2])
    if spikes == "random":
        xs = (rng.random((STEPS, T, B, n0)) < rng.uniform(0.2, 0.8)).astype(np.int64)
    else:
        xs = np.full((STEPS, T, B, n0), int(spikes == "ones"), dtype=np.int64)
    ys = rng.integers(0, cfg.layers[-1], size=(STEPS, B))
    return [np.asarray(w, dtype=np.int64) for w in weights], xs, ys, f"{kind} weights, " \
        f"{spikes} spikes"


async def drive(drv, weights, xs, ys):
    """Load, train step by step (weights read back after each), infer; then, from the same
    weights, queue every step back to back (the engines of consecutive steps overlap when
    pipelined) and read the weights after the last."""
    await drv.connect()
    await drv.load_weights(weights)
    after = []
    for x, y in zip(xs, ys):
        await drv.train_step(x, y)
        after.append(await drv.read_weights())
    pred, state = await drv.forward(xs[0])
    await drv.load_weights(weights)
    for x, y in zip(xs, ys):
        await drv.queue_train(x, y)
    await drv.wait()
    return after + [await drv.read_weights()], pred, state


def run_amaranth(design, weights, xs, ys):
    from amaranth.sim import Simulator

    from spikeforge.hdl.top import Accelerator
    from spikeforge.sim.host.driver import AcceleratorDriver
    from spikeforge.sim.host.transports import AmaranthTransport

    acc = Accelerator(design)
    out = {}

    async def tb(ctx):
        drv = AcceleratorDriver(AmaranthTransport(ctx, acc.rx, acc.tx), design)
        out["after"], out["pred"], out["state"] = await drive(drv, weights, xs, ys)

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out["after"], out["pred"], out["state"]


def run_verilator(design, weights, xs, ys):
    from spikeforge.sim.verify.top import run_top

    res = run_top(design, weights, xs, ys, pipeline=design.hw.pipeline, check_every=True)
    mats = range(len(design.cfg.weight_shapes()))
    after = [[res[f"w_after{s}_{l}"] for l in mats] for s in range(STEPS)]
    queued = run_top(design, weights, xs, ys, pipeline=design.hw.pipeline, queue=True,
                     check_every=False)
    after.append([queued[f"w_final_{l}"] for l in mats])
    return after, res["pred"], None


def check(seed, runner, draw=None):
    design, shape = (draw or random_design)(seed)
    weights, xs, ys, data = random_data(design, seed)
    label = f"seed {seed} ({shape}: {design}, {data}; hw {design.hw})"
    after, pred, state = runner(design, weights, xs, ys)
    golden = Network(design.cfg, "fixed", weights=[w.copy() for w in weights])
    names = design.cfg.weight_names()
    for s in range(STEPS):
        golden.train_step(xs[s], ys[s])
        for l in range(len(names)):                 # W of every layer, then V of each recurrent
            got, want = np.asarray(after[s][l]), golden.weights[l]
            queued = s == STEPS - 1 and len(after) > STEPS
            if queued:               # the same steps queued back to back
                q = np.asarray(after[STEPS][l])
                assert np.array_equal(q, want), (
                    f"{label}: steps queued back to back: {int((q != want).sum())} weights of "
                    f"{names[l]} differ after step {STEPS}")
            if not np.array_equal(got, want):
                i, j = np.argwhere(got != want)[0]
                raise AssertionError(f"{label}: after step {s + 1}, {int((got != want).sum())} "
                                     f"weights of {names[l]} differ; first [{i},{j}]: "
                                     f"accelerator {got[i, j]}, golden {want[i, j]}")
    want = golden.predict(xs[0])
    assert np.asarray(pred).tolist() == want.tolist(), f"{label}: predictions differ"
    if state is not None:           # the forward pass read back (hardware in the loop)
        for l, trace in enumerate(golden.forward(xs[0])):
            expect = {"o": trace.o, "u": trace.u} if design.cfg.reset_grad else \
                {"o": trace.o, "h": golden.arith.surrogate(trace.u)}
            for key, value in expect.items():
                got = np.asarray(state[l][key])
                assert np.array_equal(got, value), (
                    f"{label}: state read back, layer {l} {key}: "
                    f"{int((got != value).sum())} entries differ")


#: fixed seeds, so a failure is reproducible; they cover every shape class
AMARANTH_SEEDS = list(range(16))


@pytest.mark.parametrize("seed", AMARANTH_SEEDS, ids=[f"seed_{s}" for s in AMARANTH_SEEDS])
def test_random_designs_amaranth(seed):
    check(seed, run_amaranth)


def test_seeds_cover_the_shapes():
    """The default seeds draw every shape class (the wide input of the list-field bug, one
    weight layer, several) and both settings of every switch."""
    designs = [random_design(s) for s in AMARANTH_SEEDS]
    shapes = {shape for _, shape in designs}
    assert {"wide_input", "one_layer"} <= shapes, shapes
    assert any(d.memmap.S > d.memmap.out_blocks_max for d, _ in designs)
    for field in ("be_sparse", "pipeline", "dist_ram", "dist_spill"):
        assert {getattr(d.hw, field) for d, _ in designs} == {True, False}, field
    assert {d.hw.table for d, _ in designs} == {"lut", "tree"}
    assert any(max(d.hw.fe_group, d.hw.wue_group) > 8 for d, _ in designs)
    assert {d.cfg.reset_grad for d, _ in designs} == {True, False}
    assert len({d.hw.pes for d, _ in designs}) >= 3
    assert any(d.hw.pes >= 4 and d.hw.be_sparse for d, _ in designs)
    assert any(8 in (d.hw.fe_group, d.hw.wue_group) for d, _ in designs)
    # most cases train every layer (non-zero eps), the wide-input ones among them
    active = [all(active_eps(d, *random_data(d, s)[:3])) for s, (d, _) in
              zip(AMARANTH_SEEDS, designs)]
    assert sum(active) >= 0.7 * len(active), active
    assert any(a and shape == "wide_input" and d.memmap.S > d.memmap.out_blocks_max
               for a, (d, shape) in zip(active, designs))


def full_group_design(seed):
    """Adder trees filled to G = 16: at least 16 inputs per FE group and T * B >= 16 points per
    WUE group (the random designs above are mostly too small to fill a group of 16)."""
    rng = np.random.default_rng([seed, 16])
    for _ in range(100):
        T, B = int(rng.choice([4, 8])), int(rng.choice([2, 4]))
        layers = (int(rng.integers(16, 40)), int(rng.integers(3, 20)), int(rng.integers(2, 8)))
        w_bits = int(rng.integers(6, 17))
        try:
            cfg = Config(layers=layers, timesteps=T, batch=B,
                         alpha=float(rng.choice([0.5, 0.75, 0.875])),
                         lr=float(rng.choice([2.0 ** -3, 2.0 ** -5])),
                         target_true=int(rng.integers(1, T + 1)), target_false=0,
                         reset_grad=bool(rng.integers(0, 2)), w_bits=w_bits,
                         w_frac=int(rng.integers(2, w_bits - 1)),
                         init_gain=float(rng.choice([1.0, 3.0]))).fit_accumulators().validate()
        except ConfigError:
            continue
        hw = HwParams(pes=int(rng.choice([3, 4, 8, 16])), fe_group=16, wue_group=16,
                      table="tree", be_sparse=bool(rng.integers(0, 2)),
                      dist_ram=bool(rng.integers(0, 2)))
        return Design(cfg, hw), "full groups of 16"
    raise AssertionError(f"seed {seed}: no valid design drawn")


FULL_GROUP_SEEDS = [0, 1]


@pytest.mark.parametrize("seed", FULL_GROUP_SEEDS, ids=[f"seed_{s}" for s in FULL_GROUP_SEEDS])
def test_full_groups_of_16_amaranth(seed):
    design = full_group_design(seed)[0]
    assert design.cfg.layers[0] >= 16 and design.cfg.timesteps * design.cfg.batch >= 16
    check(seed, run_amaranth, full_group_design)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 106), ids=[f"seed_{s}" for s in range(100, 106)])
def test_full_groups_of_16_verilator(seed):
    require_simulator("verilator")
    check(seed, run_verilator, full_group_design)


def tail_split_design(seed):
    """``hw.dist_spill``: state memories of 256 words and a short tail (the output block), so
    u, eps and g each split into block RAM and a distributed-RAM tail (hdl/splitmem.py)."""
    rng = np.random.default_rng([seed, 256])
    P = int(rng.choice([2, 4]))
    T, B = [(4, 2), (8, 2), (4, 4)][int(rng.integers(0, 3))]
    hidden_blocks = 256 // (T * B)
    layers = (int(rng.integers(3, 10)), hidden_blocks * P - int(rng.integers(0, P)),
              int(rng.integers(2, P * max(1, hidden_blocks // 8) + 1)))
    w_bits = int(rng.integers(8, 17))
    cfg = Config(layers=layers, timesteps=T, batch=B, alpha=float(rng.choice([0.5, 0.875])),
                 lr=2.0 ** -4, target_true=int(rng.integers(1, T + 1)), target_false=0,
                 reset_grad=bool(rng.integers(0, 2)), w_bits=w_bits,
                 w_frac=int(rng.integers(2, w_bits - 1)),
                 init_gain=3.0).fit_accumulators().validate()
    hw = HwParams(pes=P, fe_group=int(rng.choice([2, 4])), wue_group=int(rng.choice([2, 4])),
                  table=str(rng.choice(["lut", "tree"])), be_sparse=bool(rng.integers(0, 2)),
                  dist_spill=True)
    return Design(cfg, hw), "state memories split at 256 words"


TAIL_SEEDS = [0, 1]


@pytest.mark.parametrize("seed", TAIL_SEEDS, ids=[f"seed_{s}" for s in TAIL_SEEDS])
def test_tail_split_memories_amaranth(seed):
    design = tail_split_design(seed)[0]
    split = {name: spec.split for name, spec in design.memmap.memories.items() if spec.split}
    assert set(split) == {"u", "eps", "g"} and set(split.values()) == {256}, split
    check(seed, run_amaranth, tail_split_design)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 104), ids=[f"seed_{s}" for s in range(100, 104)])
def test_tail_split_memories_verilator(seed):
    require_simulator("verilator")
    check(seed, run_verilator, tail_split_design)


#: recurrent hidden layers (the FE's step-by-step runs, the BE's V^T eps, the WUE's dV pass)
RECURRENT_SEEDS = list(range(8))


@pytest.mark.parametrize("seed", RECURRENT_SEEDS, ids=[f"seed_{s}" for s in RECURRENT_SEEDS])
def test_random_recurrent_designs_amaranth(seed):
    check(seed, run_amaranth, random_recurrent_design)


def test_recurrent_seeds_cover_the_cases():
    """The recurrent seeds draw a recurrent first layer and a recurrent layer with a layer
    below, sparse and dense Backward Engines, and recurrence over several time steps."""
    designs = [random_recurrent_design(s)[0] for s in RECURRENT_SEEDS]
    assert any(0 in d.cfg.recurrent for d in designs)
    assert any(any(l > 0 for l in d.cfg.recurrent) for d in designs)
    assert {d.hw.be_sparse for d in designs} == {True, False}
    assert sum(d.cfg.timesteps > 1 for d in designs) >= len(designs) // 2


VERILATOR_SEEDS = list(range(100, 130))


@pytest.mark.slow
@pytest.mark.parametrize("seed", VERILATOR_SEEDS, ids=[f"seed_{s}" for s in VERILATOR_SEEDS])
def test_random_designs_verilator(seed):
    require_simulator("verilator")
    check(seed, run_verilator)


RECURRENT_VERILATOR_SEEDS = list(range(100, 112))


@pytest.mark.slow
@pytest.mark.parametrize("seed", RECURRENT_VERILATOR_SEEDS,
                         ids=[f"seed_{s}" for s in RECURRENT_VERILATOR_SEEDS])
def test_random_recurrent_designs_verilator(seed):
    require_simulator("verilator")
    check(seed, run_verilator, random_recurrent_design)
