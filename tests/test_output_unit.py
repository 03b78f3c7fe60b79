"""Output unit (counts, class read-out, output gradient) bit for bit against the golden model."""

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spikeforge.model.config import Config
from spikeforge.model.network import Network
from spikeforge.hdl.design import Design
from spikeforge.hdl.outgrad import OutputUnit
from spikeforge.hdl.params import HwParams


class Harness(Elaboratable):
    def __init__(self, cfg, pes, spikes, labels):
        T, B, n = spikes.shape
        mm = Design(cfg, HwParams(pes=pes)).memmap
        self.S = mm.blocks[-1]                  # gradient words of the output layer per point
        words = [sum(int(v) << i for i, v in enumerate(spikes[t, b]))
                 for t in range(T) for b in range(B)]
        self.width = mm.spike_width
        self.unit = OutputUnit(Design(cfg, HwParams(pes=pes)))
        self.x = Memory(shape=self.width, depth=mm.spike_depth, init=words)
        self.labels = Memory(shape=8, depth=mm.label_stride, init=[int(v) for v in labels])
        self.pred = Memory(shape=8, depth=mm.label_stride, init=[])
        self.g = Memory(shape=pes * cfg.e_bits, depth=max(T * B * self.S, 2), init=[])
        self.g_rd = self.g.read_port(domain="comb")
        self.pred_rd = self.pred.read_port(domain="comb")

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        for name in ("x", "labels", "pred", "g"):
            m.submodules[name] = getattr(self, name)
        wiring.connect(m, self.unit.x_rd, self.x.read_port())
        wiring.connect(m, self.unit.label_rd, self.labels.read_port())
        wiring.connect(m, self.unit.pred_wr, self.pred.write_port())
        wiring.connect(m, self.unit.g_wr, self.g.write_port())
        return m


def run(cfg, pes, spikes, labels, train=True):
    h = Harness(cfg, pes, spikes, labels)
    T, B, n = spikes.shape
    out = {}

    async def tb(ctx):
        ctx.set(h.unit.train, train)
        ctx.set(h.unit.start, 1)
        await ctx.tick()
        ctx.set(h.unit.start, 0)
        cycles = 1
        while not ctx.get(h.unit.done):
            await ctx.tick()
            cycles += 1
        await ctx.tick()
        out["cycles"] = cycles
        out["pred"] = []
        for b in range(B):
            ctx.set(h.pred_rd.addr, b)
            out["pred"].append(ctx.get(h.pred_rd.data))
        g = np.zeros((T, B, h.S * pes), dtype=np.int64)
        for t in range(T):
            for b in range(B):
                for k in range(h.S):
                    ctx.set(h.g_rd.addr, k * T * B + t * B + b)
                    word = ctx.get(h.g_rd.data)
                    for q in range(pes):
                        v = (word >> (q * cfg.e_bits)) & ((1 << cfg.e_bits) - 1)
                        g[t, b, k * pes + q] = v - (1 << cfg.e_bits) if v >> (cfg.e_bits - 1) else v
        out["g"] = g[:, :, :n]
        out["pad"] = g[:, :, n:]

    sim = Simulator(h)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("n_out,pes,T,B,e_bits,e_frac,density", [
    (10, 8, 8, 4, 16, 8, 0.5),
    (10, 4, 5, 3, 8, 4, 0.9),        # saturating gradients: (count - target) << 4 overflows 8 bits
    (3, 8, 4, 2, 16, 8, 0.0),        # no output spikes at all: ties everywhere -> class 0
    (7, 2, 6, 3, 12, 5, 1.0),        # every neuron fires every step
])
def test_output_unit_equals_golden(n_out, pes, T, B, e_bits, e_frac, density):
    cfg = Config(layers=(12, n_out), timesteps=T, batch=B, e_bits=e_bits, e_frac=e_frac,
                 target_true=T - 1, target_false=1).fit_accumulators().validate()
    rng = np.random.default_rng(n_out * 7 + pes)
    spikes = (rng.random((T, B, n_out)) < density).astype(np.int64)
    labels = rng.integers(0, n_out, size=B)
    out = run(cfg, pes, spikes, labels)
    net = Network(cfg, "fixed")
    counts = spikes.sum(axis=0)
    assert out["pred"] == net.classify(counts).tolist()
    golden = net.arith.loss_grad(counts, net.targets(labels, n_out))
    assert np.array_equal(out["g"], np.broadcast_to(golden, spikes.shape))
    assert not out["pad"].any()
    blocks = -(-n_out // pes)
    tree = max(1, (n_out - 1).bit_length())        # registered arg-max levels
    assert out["cycles"] <= B * (T + 5 + tree + T * blocks) + 2
