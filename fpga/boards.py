"""Open FPGA boards spikeforge builds for, through amaranth-boards and the yowasp tools only."""

from dataclasses import dataclass

__all__ = ["Board", "BOARDS", "board", "board_for", "board_names"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: str          # "module:Class" in amaranth_boards
    family: str            # ecp5 | ice40
    preset: str            # the network preset that fits it
    description: str
    hw: tuple = ()         # HwParams overrides that fit it, as (field, value) pairs
    config: tuple = ()     # Config overrides (e.g. a smaller batch buffer), as (field, value) pairs
    clock_mhz: float = None  # the accelerator's clock at most (a PLL below the oscillator); None:
                             # the oscillator itself
    baud: int = 115200     # the UART's rate: the fastest the board's USB-serial bridge allows
    onchip_data: tuple = ()  # presets whose whole data set the board holds on chip (it then
                             # trains by itself, hdl/job.py)
    preset_hw: tuple = ()  # (preset, ((field, value), ...)): hardware overrides for one preset
    loader: str = None     # openFPGALoader's name of the board (-b), for `synth --load`
    seeds: tuple = None    # nextpnr seeds a build tries by default (None: 1, 2, 3)
    placer: str = None     # nextpnr placer a build uses by default (None: the family's)

    def default_seeds(self):
        return tuple(self.seeds) if self.seeds else (1, 2, 3)

    def hw_params(self):
        """The default hardware parameters with this board's overrides."""
        from spikeforge.hdl.params import DEFAULT_HW
        return DEFAULT_HW.replace(**dict(self.hw)) if self.hw else DEFAULT_HW

    def build_config(self, preset_name=None):
        """The network config built for this board: ``preset_name`` (default: the board's own)
        with the board's config overrides."""
        from spikeforge.model.config import preset
        cfg = preset(preset_name or self.preset)
        return cfg.replace(**dict(self.config)).validate() if self.config else cfg

    def design(self, preset_name=None, cfg_changes=None, hw_changes=None):
        """The design built for this board: ``preset_name`` (default: the board's own) with the
        board's config and hardware overrides, then the user's ``cfg_changes``/``hw_changes``."""
        from spikeforge.hdl.design import Design
        from spikeforge.model.config import preset_dataset
        from spikeforge.model.data import DATASET_SAMPLES, DATASET_VMAX
        name = preset_name or self.preset
        data = {}
        if name in self.onchip_data:
            dataset = preset_dataset(name)
            data = {"data_samples": DATASET_SAMPLES[dataset], "data_vmax": DATASET_VMAX[dataset]}
        extra = dict(dict(self.preset_hw).get(name, ()))
        return Design(self.build_config(name), self.hw_params()).replace(
            **(cfg_changes or {}), **{**extra, **data, **(hw_changes or {})})

    def make_top(self, core, baud=None, platform=None):
        """The board top around ``core``: UART at ``baud`` (default: the board's) and, with
        ``clock_mhz``, a PLL.

        Returns ``(top, clock_hz)``, the clock the core runs at.
        """
        from spikeforge.hdl.board import BoardTop
        from spikeforge.hdl.uart import divisor_for
        platform = platform or self.make_platform()
        baud = baud or self.baud
        clock_hz, clock = platform.default_clk_frequency, None
        if self.clock_mhz is not None:
            if self.family != "ecp5":
                raise ValueError(f"{self.name}: a core clock PLL exists for ECP5 boards only")
            from spikeforge.hdl.pll import Ecp5Pll, ecp5_pll_config
            config = ecp5_pll_config(clock_hz, self.clock_mhz * 1e6)
            clock_hz, clock = config["fout_hz"], Ecp5Pll(config)
        return BoardTop(core, divisor_for(clock_hz, baud), clock), clock_hz

    def clock_hz(self):
        """The accelerator's clock on this board (the PLL's output, or the oscillator)."""
        platform = self.make_platform()
        if self.clock_mhz is None:
            return platform.default_clk_frequency
        from spikeforge.hdl.pll import ecp5_pll_config
        return ecp5_pll_config(platform.default_clk_frequency, self.clock_mhz * 1e6)["fout_hz"]

    def with_clock(self, clock_mhz):
        """This board with its core clock PLL set to ``clock_mhz`` (ECP5 boards: a design that
        does not meet timing at the board's own clock runs slower instead)."""
        if self.family != "ecp5":
            raise ValueError(f"--clock: {self.name} has no core clock PLL (ECP5 boards only); "
                             f"drop --clock")
        if not (isinstance(clock_mhz, (int, float)) and 10 <= clock_mhz <= 200):
            raise ValueError(f"--clock must be a frequency in MHz from 10 to 200, got {clock_mhz!r}")
        import dataclasses
        return dataclasses.replace(self, clock_mhz=float(clock_mhz))

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


# The ECP5-85F boards carry the accelerator with groups of G = 8 summed by masked adder trees
# (``table="tree"``) and the small buffers in distributed RAM (TRELLIS_DPR16X4). Measured on
# the ULX3S digits design (spikeforge bench top, RTL; spikeforge synth): LUT tables at G = 4,
# 2,452 cycles per sample; adder trees at G = 4, 2,428 (the trees never wait for a table
# build); LUT tables at G = 8, 4,200 (a 256-entry table takes longer to build than its 64
# look-ups); adder trees at G = 8, 1,514, at 53.4 MHz with 44.5k LUT4 against 57.4 MHz and
# 37.9k LUT4 for LUT tables at G = 4. Digits with 16 PEs per engine, mnist16 with 8 ...
ECP5_HW = (("pes", 8), ("fe_group", 8), ("wue_group", 8), ("table", "tree"), ("dist_ram", True))
ECP5_PRESET_HW = (("digits", (("pes", 16),)),)
# ... with a batch buffer of 8 samples (the state memories scale with the batch; at batch 16 the
# router was left with thousands of wires overused at the block-RAM rows for most placements;
# digits trains to 0.9806 at batch 8 against 0.9722 at 16) ...
ECP5_CONFIG = (("batch", 8),)
# ... and run at 50 MHz from a PLL (every block-RAM read registered; the ULX3S build reaches
# 57 MHz, see reports/)
ECP5_CLOCK_MHZ = 50.0
# The ULX3S's digits design sums groups of G = 16 in both LUT engines (1,052 cycles per sample
# in its training job against 1,464 at G = 8; the look-up pattern and the accumulator address
# have a register copy per lane, hdl/lut.py): it routes with the static placer, seed 2 (49.6
# MHz, timing met at 45 MHz; seed 1 left router2 diverging at both 45 and 50 MHz, HeAP did not
# route), so it runs at 45 MHz from the PLL (3 Mbaud is exactly 15 cycles per bit)
ULX3S_PRESET_HW = (("digits", (("pes", 16), ("fe_group", 16), ("wue_group", 16))),)
ULX3S_CLOCK_MHZ = 45.0
# With digits the ECP5 boards train by themselves: the whole digits set (1,797 samples,
# intensities 0..16) on chip, with its order banks and the training job (hdl/job.py); mnist16
# (5,000 x 256 bytes) would need the SDRAM
ONCHIP = ("digits",)
# The ULX3S's FT231X bridge runs 3 Mbaud (45 MHz / 15 cycles per bit, exact; 50 MHz / 17 is 2% off);
# on the OrangeCrab's Feather pins a common USB-serial adapter (FT232R, CP2102N) runs 1 Mbaud
ULX3S_BAUD = 3_000_000
FEATHER_BAUD = 1_000_000

ICE40_HW = (("fe_group", 2), ("pes", 1), ("wue_group", 2), ("counters", False),
            ("dist_ram", False), ("table", "tree"))
# digits on the iCEBreaker by hardware in the loop: 64-64-10, batch 1, digits4's 8-bit weight
# and 12-bit membrane formats (digits: 0.9667 after 20 epochs, seed 0), accumulators as narrow
# as the config's validation allows
HIL_CONFIG = (("layers", (64, 64, 10)), ("batch", 1), ("w_bits", 8), ("w_frac", 5),
              ("u_bits", 12), ("e_bits", 10), ("e_frac", 4), ("lr", 2.0 ** -8),
              ("init_gain", 2.0), ("fwd_acc_bits", 14), ("bwd_acc_bits", 24),
              ("wgrad_acc_bits", 13))

BOARDS = {b.name: b for b in [
    Board("ulx3s-85f", "ulx3s:ULX3S_85F_Platform", "ecp5", "digits",
          "Radiona ULX3S, Lattice ECP5 LFE5U-85F (primary target)", hw=ECP5_HW,
          preset_hw=ULX3S_PRESET_HW, onchip_data=ONCHIP, config=ECP5_CONFIG,
          clock_mhz=ULX3S_CLOCK_MHZ, baud=ULX3S_BAUD, loader="ulx3s", seeds=(2,),
          placer="static"),
    # mnist16 (256-256-10) from on-chip memory on the same device and design parameters: one
    # block-RAM copy of W (one read port, see hdl/top.py) is what makes it fit. With 150 of 208
    # block RAMs the -6 ULX3S does not reach 50 MHz with this RTL: G = 8 adder trees routed
    # 48.3 MHz against 50 (seed 1) and 42.6 against 45 (the Weight Update Engine's value-load
    # enable spanning the chip), LUT tables at G = 4 45.7 against 50 (its accumulator's
    # distributed-RAM address); so 40 MHz with the trees (12,672 cycles per sample against
    # 23,787), and the FT231X at 2 Mbaud (20 cycles per bit exactly). The digits design's
    # P = 16, G = 16 (3,912 cycles per sample) did not route here: router2 stalled at 18-51k
    # overused wires with the small buffers in distributed RAM or in block RAM (README)
    Board("ulx3s-85f-mnist16", "ulx3s:ULX3S_85F_Platform", "ecp5", "mnist16",
          "Radiona ULX3S, Lattice ECP5 LFE5U-85F, mnist16", hw=ECP5_HW,
          config=ECP5_CONFIG, clock_mhz=40.0, baud=2_000_000, loader="ulx3s"),
    Board("orangecrab-85f", "orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", "ecp5", "digits",
          "OrangeCrab r0.2, Lattice ECP5 LFE5U-85F; UART on Feather pins 0 (RX) / 1 (TX)",
          hw=ECP5_HW, preset_hw=ECP5_PRESET_HW, onchip_data=ONCHIP, config=ECP5_CONFIG,
          clock_mhz=ECP5_CLOCK_MHZ, baud=FEATHER_BAUD, loader="orangecrab"),
    Board("orangecrab-85f-mnist16", "orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", "ecp5",
          "mnist16", "OrangeCrab r0.2, Lattice ECP5 LFE5U-85F, mnist16; UART on Feather pins "
          "0 (RX) / 1 (TX)", hw=ECP5_HW, config=ECP5_CONFIG, clock_mhz=ECP5_CLOCK_MHZ,
          baud=FEATHER_BAUD, loader="orangecrab"),
    Board("icebreaker", "icebreaker:ICEBreakerPlatform", "ice40", "digits4",
          "1BitSquared iCEBreaker, Lattice iCE40UP5K", loader="icebreaker",
          # no distributed RAM on the iCE40: small buffers in block RAM; adder trees beat LUT
          # tables in flip-flops here (22.8 against 22.0 MHz, 4,394 against 4,618 logic cells,
          # both before the output unit's arg-max was registered; now 26.2 MHz, 4,431 cells)
          hw=ICE40_HW),
    # the inference-only accelerator (Forward Engine and output unit) as a hardware-in-the-loop
    # backend: the 8x8 digits in a 64-64-10 network with digits4's 8-bit formats, which the full
    # accelerator does not fit on the UP5K (reports/data/hil_board.json)
    Board("icebreaker-hil", "icebreaker:ICEBreakerPlatform", "ice40", "digits",
          "1BitSquared iCEBreaker, Lattice iCE40UP5K, inference-only (HIL backend), digits "
          "64-64-10 in 8-bit weights", loader="icebreaker", hw=ICE40_HW + (("learn", False),),
          config=HIL_CONFIG),
]}


def board_names():
    """The board names as a sentence fragment: ``a, b or c``."""
    names = list(BOARDS)
    return ", ".join(names[:-1]) + " or " + names[-1]


def board_for(platform, design):
    """The board on ``platform`` whose own design is ``design`` (a dict of ``Design.to_dict``),
    or None."""
    for b in BOARDS.values():
        if b.platform == platform and b.design().to_dict() == design:
            return b
    return None


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}") from None
