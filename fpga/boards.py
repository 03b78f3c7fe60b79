"""Open FPGA boards spikeforge builds for, through amaranth-boards and the yowasp tools only."""

from dataclasses import dataclass

__all__ = ["Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: str          # "module:Class" in amaranth_boards
    family: str            # ecp5 | ice40
    preset: str            # the network preset that fits it
    description: str
    hw: tuple = ()         # HwParams overrides that fit it, as (field, value) pairs

    def hw_params(self):
        """The default hardware parameters with this board's overrides."""
        from spikeforge.hdl.params import DEFAULT_HW
        return DEFAULT_HW.replace(**dict(self.hw)) if self.hw else DEFAULT_HW

    def make_platform(self):
        import importlib
        module, cls = self.platform.split(":")
        platform = getattr(importlib.import_module(f"amaranth_boards.{module}"), cls)()
        if self.name.startswith("orangecrab"):
            # no UART on the board: use the Feather RX/TX pins (io 0 / io 1)
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource
            platform.add_resources([UARTResource(0, rx="0", tx="1", conn=("io", 0),
                                                 attrs=Attrs(IO_TYPE="LVCMOS33"))])
        return platform


# The ECP5-85F boards carry the digits accelerator with 4 PEs per engine: the default 8 PEs
# synthesise (26k LUT4, 181 of 208 DP16KD) but nextpnr does not route that block-RAM-bound design
# in useful time; 4 PEs halve the logic, keep every memory (170 DP16KD) and route.
ECP5_HW = (("fe_pes", 4), ("wue_pes", 4), ("be_pes", 4))

BOARDS = {b.name: b for b in [
    Board("ulx3s-85f", "ulx3s:ULX3S_85F_Platform", "ecp5", "digits",
          "Radiona ULX3S, Lattice ECP5 LFE5U-85F (primary target)", hw=ECP5_HW),
    Board("orangecrab-85f", "orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", "ecp5", "digits",
          "OrangeCrab r0.2, Lattice ECP5 LFE5U-85F; UART on Feather pins 0 (RX) / 1 (TX)",
          hw=ECP5_HW),
    Board("icebreaker", "icebreaker:ICEBreakerPlatform", "ice40", "digits4",
          "1BitSquared iCEBreaker, Lattice iCE40UP5K",
          hw=(("fe_group", 2), ("fe_pes", 1), ("wue_group", 2), ("wue_pes", 1), ("be_pes", 1),
              ("counters", False))),
]}


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None
