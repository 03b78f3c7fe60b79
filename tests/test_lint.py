"""``spikeforge verilog`` output passes ``verilator --lint-only -Wall`` (waivers: only the rules
listed with their reasons in each file's header, see ``hdl/export.py``)."""

import subprocess

import pytest

from spikeforge.cli.main import main
from spikeforge.hdl.export import VERILATOR_WAIVERS
from spikeforge.sim.verify.lint import lint
from spikeforge.sim.verify.runner import ensure_verilator_on_path


@pytest.fixture(scope="module")
def verilog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("verilog")
    assert main(["verilog", "--preset", "digits", "-o", str(out)]) == 0
    return out


def test_engines_written(verilog_dir):
    names = {p.name for p in verilog_dir.glob("*.v")}
    assert {"sf_forward_engine.v", "sf_weight_update_engine.v"} <= names


def test_lint_clean(verilog_dir):
    if ensure_verilator_on_path() is None:
        pytest.skip("verilator not installed")
    report = lint(sorted(verilog_dir.glob("*.v")))
    assert report.clean, report.text


def test_plain_verilator_lint(verilog_dir):
    """Without any extra argument (the waivers travel inside the file)."""
    exe = ensure_verilator_on_path()
    if exe is None:
        pytest.skip("verilator not installed")
    for name in ("sf_forward_engine", "sf_weight_update_engine"):
        path = verilog_dir / f"{name}.v"
        proc = subprocess.run([exe, "--lint-only", "-Wall", str(path)], capture_output=True,
                              text=True)
        assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[:4000]


def test_waivers_have_reasons():
    assert all(rule.isupper() and len(reason) > 20 for rule, reason in VERILATOR_WAIVERS)


def test_lint_reports_warnings(tmp_path):
    """A real warning outside the waived rules makes the report unclean."""
    if ensure_verilator_on_path() is None:
        pytest.skip("verilator not installed")
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk, input [3:0] a, output [3:0] y);\n"
                   "  reg [3:0] r;\n  always @(posedge clk) r = a;\n  assign y = r;\nendmodule\n")
    report = lint([bad])
    assert not report.clean
    assert "BLKSEQ" in report.text
