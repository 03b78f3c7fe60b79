"""Generate the Verilog of every engine for a configuration (``spikeforge verilog``).

Each engine module listed in :data:`ENGINE_MODULES` exposes ``verilog_units(design)``, returning
``[(module_name, component), ...]`` built from the :class:`~spikeforge.hdl.design.Design`.
"""

import importlib

from .export import write_verilog

__all__ = ["ENGINE_MODULES", "units", "write_all"]

ENGINE_MODULES = [
    "spikeforge.hdl.forward",
    "spikeforge.hdl.wupdate",
    "spikeforge.hdl.backward",
    "spikeforge.hdl.top",
]


def units(design):
    found = []
    for name in ENGINE_MODULES:
        found.extend(importlib.import_module(name).verilog_units(design))
    return found


def write_all(design, directory):
    """Write one ``.v`` per unit into ``directory``; return the paths."""
    return [write_verilog(component, name, directory) for name, component in units(design)]
