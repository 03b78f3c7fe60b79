"""Verilog export of Amaranth components (Yosys >= 0.40: the builtin one, or ``YOSYS=...``)."""

import os

from amaranth.back import verilog

from spikeforge.model.weights import atomic_write_text

__all__ = ["to_verilog", "write_verilog"]


def to_verilog(component, name):
    """Verilog text of ``component`` with top module ``name``; ports from its signature."""
    return verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, name, directory):
    """Atomically write ``directory/name.v`` and return its path."""
    path = os.path.join(directory, f"{name}.v")
    atomic_write_text(path, to_verilog(component, name))
    return path
