"""Weight mirror: FE-layout weights to the Backward Engine's banks, checked entry by entry."""

import numpy as np
import pytest
from amaranth import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spikeforge.hdl.design import Design
from spikeforge.hdl.mirror import WeightMirror
from spikeforge.hdl.params import HwParams
from spikeforge.model.config import Config


@pytest.mark.parametrize("layers,P,layer", [((10, 12, 5), 4, 0), ((10, 12, 5), 4, 1),
                                            ((7, 9, 3), 8, 0), ((16, 16, 16), 2, 1)])
def test_mirror_transposes_tiles(layers, P, layer):
    cfg = Config(layers=layers, timesteps=2, batch=1, target_true=2).fit_accumulators().validate()
    n_in, n_out = layers[layer], layers[layer + 1]
    S = -(-max(layers) // P)
    wb = cfg.w_bits
    rng = np.random.default_rng(P + layer)
    w = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(n_out, n_in))
    blocks = -(-n_out // P)
    words = []
    for nb in range(blocks):
        for j in range(n_in):
            word = 0
            for q in range(P):
                i = nb * P + q
                if i < n_out:
                    word |= (int(w[i, j]) & ((1 << wb) - 1)) << (q * wb)
            words.append(word)
    design = Design(cfg, HwParams(pes=P))
    fe_depth, be_depth = design.memmap.weight_depth, design.memmap.bank_depth
    unit = WeightMirror(design)
    src = Memory(shape=P * wb, depth=fe_depth, init=words)
    sentinel = 0x5A5A & ((1 << wb) - 1)
    banks = [Memory(shape=wb, depth=be_depth, init=[sentinel] * be_depth) for _ in range(P)]
    reads = [b.read_port(domain="comb") for b in banks]

    class H(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.unit, m.submodules.src = unit, src
            wiring.connect(m, unit.w_rd, src.read_port())
            for k, b in enumerate(banks):
                m.submodules[f"bank{k}"] = b
                wiring.connect(m, unit.wb_wr[k], b.write_port())
            return m

    got = {}

    async def tb(ctx):
        ctx.set(unit.n_in, n_in)
        ctx.set(unit.n_out, n_out)
        ctx.set(unit.start, 1)
        await ctx.tick()
        ctx.set(unit.start, 0)
        cycles = 1
        while not ctx.get(unit.done):
            await ctx.tick()
            cycles += 1
        await ctx.tick()
        got["cycles"] = cycles
        got["banks"] = [[ctx.get(rp.data) for _ in [ctx.set(rp.addr, a)]][0]
                        for rp in reads for a in range(be_depth)]

    sim = Simulator(H())
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    bank_vals = np.array(got["banks"]).reshape(P, be_depth)
    for i in range(be_depth // S):
        for r in range(S):
            for k in range(P):
                j = r * P + k
                v = int(bank_vals[k, i * S + r])
                v = v - (1 << wb) if v >> (wb - 1) else v
                untouched = sentinel - (1 << wb) if sentinel >> (wb - 1) else sentinel
                if i >= n_out or r >= -(-n_in // P):
                    assert v == untouched
                elif j < n_in:
                    assert v == w[i, j], (i, j)
                else:
                    assert v == 0
    assert got["cycles"] == blocks * (-(-n_in // P)) * (2 * P + 1) + 1
