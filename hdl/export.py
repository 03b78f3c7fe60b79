"""Verilog export of Amaranth components (Yosys >= 0.40: the builtin one, or ``YOSYS=...``).

Every file starts with a header of Verilator ``lint_off`` metacomments, one per rule in
:data:`VERILATOR_WAIVERS`, each with its reason: constructs of Amaranth's Yosys-based Verilog writer,
not of the designs. So ``verilator --lint-only -Wall FILE.v`` is clean with no extra arguments, and
no other warning is hidden (never a blanket ``-Wno-lint``/``-Wno-fatal``).
"""

import os

from amaranth.back import verilog

from spikeforge.model.atomic import atomic_write_text

__all__ = ["to_verilog", "write_verilog", "VERILATOR_WAIVERS", "waiver_header"]

VERILATOR_WAIVERS = (
    ("WIDTHEXPAND", "write_verilog prints constants and operands at their own width and relies on "
                    "Verilog's context-determined sizing (`state == 1'h1`); Amaranth fixed every "
                    "width when it elaborated the design"),
    ("WIDTHTRUNC", "the same writer uses `!vector` for `vector == 0` and `data >> amount` into a "
                   "narrower wire for a variable bit-select"),
    ("CASEINCOMPLETE", "casez for If/Switch/FSM has no default: the default assignment before "
                       "the case is the default"),
    ("PROCASSINIT", "registers are declared with their reset value (`reg x = 4'h0;`) and "
                    "assigned in a clocked process: how Amaranth gives every signal a defined "
                    "initial value"),
    ("UNUSEDSIGNAL", "leftovers of flattening the hierarchy: unused halves of signature members, "
                     "wide intermediates of which one slice is used"),
    ("DECLFILENAME", "submodules are named `<top>.<child>` inside the top module's file"),
)


def waiver_header():
    lines = ["// Lint waivers (verilator lint_off) for constructs of Amaranth's Verilog writer (spikeforge.hdl.export):"]
    for rule, reason in VERILATOR_WAIVERS:
        lines.append(f"//   {rule}: {reason}")
    lines += [f"/* verilator lint_off {rule} */" for rule, _ in VERILATOR_WAIVERS]
    return "\n".join(lines) + "\n"


def to_verilog(component, name):
    """Verilog text of ``component`` with top module ``name``; ports from its signature."""
    return waiver_header() + verilog.convert(component, name=name, emit_src=False)


def write_verilog(component, name, directory):
    """Atomically write ``directory/name.v`` and return its path."""
    path = os.path.join(directory, f"{name}.v")
    atomic_write_text(path, to_verilog(component, name))
    return path
