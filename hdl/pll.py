"""Clock generation for the board tops: an ECP5 ``EHXPLLL`` that clocks the accelerator below the
board oscillator when the design's Fmax is lower than the oscillator frequency.

The divider search follows the ECP5 sysCLOCK PLL limits (Lattice TN1263): phase-detector input
``f_in / CLKI_DIV`` in 3.125-400 MHz, VCO ``f_in / CLKI_DIV * CLKFB_DIV`` in 400-800 MHz with the
feedback taken internally from ``CLKOS3`` divided by 1, and the output ``CLKOP = VCO / CLKOP_DIV``.
"""

from amaranth import *
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["ecp5_pll_config", "Ecp5Pll"]

PFD_HZ = (3.125e6, 400e6)
VCO_HZ = (400e6, 800e6)


def ecp5_pll_config(fin_hz, fout_max_hz):
    """Dividers giving the highest ``CLKOP`` frequency not above ``fout_max_hz`` from ``fin_hz``.

    Returns a dict ``clki_div``, ``clkfb_div``, ``clkop_div``, ``vco_hz``, ``fout_hz``.
    """
    if fin_hz <= 0 or fout_max_hz <= 0:
        raise ValueError(f"PLL frequencies must be positive, got {fin_hz} -> {fout_max_hz}")
    best = None
    for clki_div in range(1, 129):
        pfd = fin_hz / clki_div
        if not PFD_HZ[0] <= pfd <= PFD_HZ[1]:
            continue
        for clkfb_div in range(1, 81):
            vco = pfd * clkfb_div
            if not VCO_HZ[0] <= vco <= VCO_HZ[1]:
                continue
            clkop_div = -(-vco // fout_max_hz)          # smallest divider not above the target
            if not 1 <= clkop_div <= 128:
                continue
            fout = vco / clkop_div
            if best is None or fout > best["fout_hz"] + 1e-3:
                best = {"clki_div": clki_div, "clkfb_div": clkfb_div, "clkop_div": int(clkop_div),
                        "vco_hz": vco, "fout_hz": fout}
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes at most {fout_max_hz / 1e6:.3f} MHz from "
                         f"{fin_hz / 1e6:.3f} MHz")
    return best


class Ecp5Pll(Elaboratable):
    """The ``sync`` domain at ``config["fout_hz"]`` from the platform's default clock, held in
    reset until the PLL has locked.

    Parameters
    ----------
    config : dict from :func:`ecp5_pll_config`
    """

    def __init__(self, config):
        self.config = dict(config)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        clk_in = platform.request(platform.default_clk, 0).i
        clkop = Signal()
        locked = Signal()
        m.domains.sync = ClockDomain("sync")
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{platform.default_clk_frequency / 1e6:.4f}",
            a_FREQUENCY_PIN_CLKOP=f"{cfg['fout_hz'] / 1e6:.4f}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=cfg["clki_div"], p_FEEDBK_PATH="INT_OS3", p_CLKOS3_ENABLE="ENABLED",
            p_CLKOS3_DIV=1, p_CLKFB_DIV=cfg["clkfb_div"],
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=cfg["clkop_div"],
            p_CLKOP_CPHASE=cfg["clkop_div"] - 1, p_CLKOP_FPHASE=0,
            i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clkop, o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clkop)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        return m
