"""Generate the Verilog of every engine for a configuration (``spikeforge verilog``).

Each engine module listed in :data:`ENGINE_MODULES` exposes ``verilog_units(design)``, returning
``[(module_name, component), ...]`` built from the :class:`~spikeforge.hdl.design.Design`.
"""

import importlib

from .export import write_verilog

__all__ = ["ENGINE_MODULES", "units", "write_all", "write_axis"]

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


def write_axis(design, directory):
    """Write ``sf_accelerator_axis.v``, the AXI-Stream-named wrapper (:mod:`spikeforge.hdl.axis`)."""
    from .axis import verilog_units
    return [write_verilog(component, name, directory) for name, component in verilog_units(design)]


def write_all(design, directory):
    """Write one ``.v`` per unit into ``directory`` (the top headed by a comment that documents
    its ports, reset and protocol), and the integration kit: ``sf_accelerator.json`` (the
    machine-readable description) and ``sf_accelerator.h`` (:mod:`spikeforge.hdl.describe`);
    return the paths."""
    from spikeforge.model.atomic import atomic_write_text

    from .describe import describe, verilog_header, write_kit
    paths = [write_verilog(component, name, directory) for name, component in units(design)]
    top = [p for p in paths if p.endswith("sf_accelerator.v")]
    if top:
        with open(top[0]) as f:
            text = f.read()
        atomic_write_text(top[0], verilog_header(describe(design)) + text)
    return paths + write_kit(design, directory)
