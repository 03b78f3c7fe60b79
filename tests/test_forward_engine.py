"""Forward Engine: bit-exact with the golden model (``Network.forward_layer``), in the Amaranth
simulator and on the generated Verilog under Verilator (and Icarus when installed).

Every output word (u and o of every point and neuron) is compared; a failure names the first
mismatching index. The default run covers G = 1 and G = 6, partial blocks and groups, all-zero and
all-one spikes, saturating weights and real digits data; ``pytest -m slow`` runs a bigger table.
"""

import gc

import numpy as np
import pytest

from conftest import require_simulator

from spikeforge.hdl.forward import ForwardEngine
from spikeforge.hdl.lut import SubsetSumLut
from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config, preset
from spikeforge.model.fixedpoint import smax, smin
from spikeforge.hdl.design import Design
from spikeforge.sim.bench.common import real_step
from spikeforge.sim.verify.engines import first_mismatch, golden_forward
from spikeforge.sim.verify.engines import simulate as _simulate


def simulate(kind, cfg, hw, cases, simulator="verilator"):
    return _simulate(kind, Design(cfg, hw), cases, simulator=simulator)


def simulate_cases_amaranth(kind, cfg, hw, cases):
    return _simulate(kind, Design(cfg, hw), cases, simulator="amaranth")


def small_cfg(layers, T, B, **widths):
    cfg = Config(layers=tuple(layers), timesteps=T, batch=B, target_true=min(T, 6), **widths)
    return cfg.fit_accumulators().validate()


def vectors(cfg, seed):
    """Random, all-zero, all-one and saturating vectors for every layer shape of ``cfg``."""
    rng = np.random.default_rng(seed)
    T, B = cfg.timesteps, cfg.batch
    lo, hi = smin(cfg.w_bits), smax(cfg.w_bits)
    cases = []
    for n_in, n_out in zip(cfg.layers[:-1], cfg.layers[1:]):
        scale = max(1, cfg.vth_int // 2)
        cases.append({"x": rng.integers(0, 2, (T, B, n_in)),
                      "w": rng.integers(-scale, scale + 1, (n_out, n_in))})
        cases.append({"x": (rng.random((T, B, n_in)) < 0.9).astype(np.int64),
                      "w": rng.integers(lo, hi + 1, (n_out, n_in))})
        cases.append({"x": np.zeros((T, B, n_in), np.int64),
                      "w": rng.integers(lo, hi + 1, (n_out, n_in))})
        cases.append({"x": np.ones((T, B, n_in), np.int64),
                      "w": np.full((n_out, n_in), hi)})
        w = np.full((n_out, n_in), lo)
        w[::2] = hi
        cases.append({"x": np.ones((T, B, n_in), np.int64), "w": w})
    return cases


def check(cfg, cases, results):
    assert len(results) == len(cases)
    for index, (case, res) in enumerate(zip(cases, results)):
        u, o = golden_forward(cfg, case["x"], case["w"])
        for name, got, want in (("u", res["u"], u), ("o", res["o"], o)):
            msg = first_mismatch(got, want)
            assert msg is None, f"case {index} ({case['w'].shape}): {name}: {msg}"
        assert res["cycles"] > 0


# (layers, T, B, widths, G, P): small enough for the Amaranth simulator
AMARANTH_TABLE = [
    ((3, 2), 1, 1, {}, 1, 1),
    ((10, 7, 5), 3, 2, {}, 3, 3),
    ((13, 5, 3), 2, 3, {}, 6, 2),
    ((9, 6), 2, 2, {"w_bits": 8, "w_frac": 4, "u_bits": 8}, 2, 4),   # u saturates
]


@pytest.mark.parametrize("layers,T,B,widths,G,P", AMARANTH_TABLE)
def test_forward_amaranth(layers, T, B, widths, G, P):
    cfg = small_cfg(layers, T, B, **widths)
    hw = HwParams(fe_group=G, pes=P)
    cases = vectors(cfg, seed=G * 10 + P)
    check(cfg, cases, simulate_cases_amaranth("fe", cfg, hw, cases))


@pytest.mark.parametrize("table", ["lut", "tree"])
@pytest.mark.parametrize("G,invert", [(1, 0), (3, 0), (4, 0), (1, 3), (3, 0b1010), (4, 0b01101)])
def test_subset_sum_lut_amaranth(table, G, invert):
    """Both banks hold every subset sum of their G values: after G + latency + 2**G cycles
    (``lut``, Gray-code build) or G + latency (``tree``), and the bank being looked up is
    untouched while the other is loaded and built. A lane with ``invert`` (its own copy of the
    pattern, :func:`~spikeforge.hdl.lut.lane_selects`) gives the same sums for the XORed
    ``Cat(sel, sel_bank)``."""
    from amaranth.sim import Simulator

    from spikeforge.hdl.lut import LutBuildControl, build_order, drive_lut
    from amaranth.hdl import Module, Signal

    bits, latency = 8, 2
    rng = np.random.default_rng(G)
    sets = [[-128, 127, -5, 3][:G] if G <= 4 else None,
            [int(v) for v in rng.integers(-128, 128, G)]]
    m = Module()
    m.submodules.ctl = ctl = LutBuildControl(G, table, latency)
    m.submodules.lut = lut = SubsetSumLut(G, bits, table, invert=invert)
    load_val, bank = Signal(bits), Signal()
    drive_lut(m, lut, ctl, load_val.as_signed(), bank)
    got = {}

    async def tb(ctx):
        for b, values in enumerate(sets):
            ctx.set(bank, b)
            ctx.set(ctl.start, 1)
            await ctx.tick()
            ctx.set(ctl.start, 0)
            cycles, pending = 0, []
            while not ctx.get(ctl.ready):
                # the read data of fetch i come `latency` cycles after it
                pending.append(values[ctx.get(ctl.fetch_idx)] if ctx.get(ctl.fetch_en) else 0)
                ctx.set(load_val, pending[-1 - latency] if len(pending) > latency else 0)
                await ctx.tick()
                cycles += 1
            got[b, "cycles"] = cycles
        for b, values in enumerate(sets):
            ctx.set(lut.sel_bank, b ^ (invert >> G))
            for sel in range(1 << G):
                ctx.set(lut.sel, sel ^ (invert & ((1 << G) - 1)))
                got[b, sel] = ctx.get(lut.out)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for b, values in enumerate(sets):
        for sel in range(1 << G):
            want = sum(v for s, v in enumerate(values) if sel >> s & 1)
            assert got[b, sel] == want, (table, b, sel)
        assert got[b, "cycles"] == G + latency + ((1 << G) if table == "lut" else 0)
    order = build_order(G)
    assert sorted(g for g, _, _ in order) == list(range(1, 1 << G))


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_forward_rejects_bad_params():
    with pytest.raises(TypeError):
        ForwardEngine({"layers": (3, 2)})
    with pytest.raises(TypeError):
        ForwardEngine(preset("digits"))
    with pytest.raises(ValueError):
        HwParams(fe_group=0).validate()
    gc.collect()     # the half-built components warn when collected; do it under this test's filter


# ---- generated Verilog under cocotb -----------------------------------------------------------

SIMULATORS = ["verilator", "icarus"]

# (layers, T, B, widths, G, P): each one Verilog build serving many vectors
RTL_TABLE = [
    ((10, 7, 5), 3, 2, {}, 1, 3),
    ((13, 5, 3), 2, 3, {"w_bits": 8, "w_frac": 4, "u_bits": 8}, 6, 2),
]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("layers,T,B,widths,G,P", RTL_TABLE)
def test_forward_rtl(simulator, layers, T, B, widths, G, P):
    require_simulator(simulator)
    cfg = small_cfg(layers, T, B, **widths)
    hw = HwParams(fe_group=G, pes=P)
    cases = vectors(cfg, seed=G + P)
    check(cfg, cases, simulate("fe", cfg, hw, cases, simulator=simulator))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_forward_rtl_digits(simulator):
    """The digits preset at the default P and G: real digits data of one training step (both
    layers) plus the edge-case vectors at full size."""
    require_simulator(simulator)
    cfg = preset("digits")
    hw = HwParams()
    net, traces, _ = real_step(cfg, "digits")
    cases = [{"x": tr.x, "w": w} for tr, w in zip(traces, net.weights)]
    assert traces[0].o.sum() > 0 and traces[1].x.sum() > 0, "real data should spike"
    cases += vectors(cfg, seed=3)[2:4]
    results = simulate("fe", cfg, hw, cases, simulator=simulator)
    check(cfg, cases, results)
    # the RTL equals the golden trace of the real step itself, too
    for tr, res in zip(traces, results):
        assert np.array_equal(res["u"], tr.u) and np.array_equal(res["o"], tr.o)


SLOW_TABLE = [
    ((5, 4), 1, 1, {}, 1, 1),
    ((17, 9, 4), 4, 3, {}, 2, 4),
    ((20, 11), 2, 5, {}, 4, 5),
    ((12, 16, 7), 5, 2, {"alpha": 0.75}, 5, 3),
    ((30, 6), 3, 2, {"alpha": 0.875, "u_bits": 24}, 6, 6),
    ((8, 8), 2, 2, {"w_bits": 6, "w_frac": 3, "u_bits": 6}, 3, 8),
    ((64, 40, 10), 8, 4, {}, 4, 8),
]


@pytest.mark.slow
@pytest.mark.parametrize("layers,T,B,widths,G,P", SLOW_TABLE)
def test_forward_rtl_table(layers, T, B, widths, G, P):
    require_simulator("verilator")
    cfg = small_cfg(layers, T, B, **widths)
    hw = HwParams(fe_group=G, pes=P)
    cases = vectors(cfg, seed=len(layers) + G)
    check(cfg, cases, simulate("fe", cfg, hw, cases))


def test_subset_sum_lut_rejects_a_bad_invert():
    with pytest.raises(ValueError, match=r"invert must be an int in 0\.\.15, got 16"):
        SubsetSumLut(3, 8, "tree", invert=16)
