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
