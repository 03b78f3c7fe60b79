"""Energy table and ASIC estimate: the stated figures are the ones used."""

import pytest

from spikeforge.reports.energy import add_pj, mul_pj, scale_energy, sram_pj


def test_horowitz_table_points():
    assert add_pj(8) == pytest.approx(0.025)
    assert add_pj(16) == pytest.approx(0.05)
    assert add_pj(32) == pytest.approx(0.1)
    assert mul_pj(8) == pytest.approx(0.2)
    assert mul_pj(32) == pytest.approx(3.2)           # table: 3.1
    assert sram_pj(8 * 1024, 64) == pytest.approx(10)
    assert sram_pj(32 * 1024, 64) == pytest.approx(20)
    assert sram_pj(1024 * 1024, 64) == pytest.approx(100)
    assert sram_pj(32 * 1024, 16) == pytest.approx(5)
    assert sram_pj(2 * 1024, 64) < sram_pj(8 * 1024, 64)


def test_node_scaling_rule():
    assert scale_energy(10.0, 45) == 10.0
    assert scale_energy(10.0, 22.5) == pytest.approx(5.0)
    assert scale_energy(10.0, 45, volts=0.45) == pytest.approx(2.5)


def test_asic_estimate_counts_a_real_netlist(tmp_path):
    from amaranth import Cat, Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out

    from spikeforge.fpga.asic import estimate
    from spikeforge.hdl.export import write_verilog

    class Mac(wiring.Component):
        a: In(8)
        b: In(8)
        acc: Out(20)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=16, depth=64, init=[])
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [rd.addr.eq(self.a[:6]), wr.addr.eq(self.b[:6]), wr.data.eq(Cat(self.a, self.b)),
                         wr.en.eq(self.b[7])]
            m.d.sync += self.acc.eq(self.acc + self.a * self.b + rd.data)
            return m

    r = estimate(write_verilog(Mac(), "mac", tmp_path), "mac")
    assert r["flip_flops"] >= 20
    assert r["memory_bits"] == 64 * 16
    assert r["logic_transistors"] > 500                 # an 8x8 multiplier and two adders
    assert r["area_um2"]["total"] > r["area_um2"]["sram"] > 0
    half = estimate(write_verilog(Mac(), "mac", tmp_path), "mac", node_nm=22.5)
    assert half["area_um2"]["total"] == pytest.approx(r["area_um2"]["total"] / 4)


def test_register_write_rule():
    from spikeforge.reports.energy import register_pj
    assert register_pj(16) == pytest.approx(0.0301 / 0.00967 * 0.05)
    assert register_pj(32) == pytest.approx(2 * register_pj(16))


def test_fpga_energy_estimate_follows_its_stated_rule():
    """The FPGA figure is the event-count energy at 40 nm / 1.1 V times the FPGA/ASIC gap;
    an adder-tree design is priced by its trees, not by 2^G-entry table builds."""
    from spikeforge.hdl.design import Design
    from spikeforge.model.config import preset
    from spikeforge.hdl.params import DEFAULT_HW
    from spikeforge.reports.energy import (FPGA_ASIC_DYNAMIC_RATIO, energy_breakdown,
                                           fpga_energy)
    counters = {k: 1000 for k in (
        "fe_x_reads", "fe_w_reads", "fe_writes", "wue_x_reads", "wue_eps_reads", "wue_lookups",
        "wue_w_reads", "wue_w_writes", "be_u_reads", "be_g_reads", "be_eps_reads",
        "be_eps_writes", "be_w_reads", "be_g_writes", "out_reads", "out_writes")}
    tree = Design(preset("digits"), DEFAULT_HW.replace(table="tree", fe_group=16, wue_group=16))
    lut = Design(preset("digits"), DEFAULT_HW.replace(table="lut", fe_group=8, wue_group=8))
    e = fpga_energy(counters, tree, 10, 40_000)
    asic = energy_breakdown(counters, tree, 10)["total_pj_per_sample"]
    assert e["asic_45nm_pj_per_sample"] == asic
    assert e["fpga_pj_per_sample"] == pytest.approx(
        asic * (40 / 45) * (1.1 / 0.9) ** 2 * FPGA_ASIC_DYNAMIC_RATIO)
    assert e["fpga_dynamic_w"] == pytest.approx(e["fpga_pj_per_sample"] * 1e-12 * 40_000)
    assert "estimate" in e["method"] and "static" in e["method"]
    fe_tree = energy_breakdown(counters, tree, 10)["forward"]
    assert "adder trees" in fe_tree and "LUT builds" not in fe_tree
    assert "LUT builds" in energy_breakdown(counters, lut, 10)["forward"]
    # a 16-input tree: 15 adds per look-up and lane (not a 65,535-entry table build)
    P, cfg = tree.memmap.P, tree.cfg
    assert fe_tree["adder trees"] == pytest.approx(1000 * P * 15 * add_pj(cfg.w_bits + 16) / 10)
