"""The committed report is the output of ``spikeforge report`` on the committed measurements."""

import json
import os

import pytest

from spikeforge.reports import generate


def _committed():
    results = {name: generate._load(name) for name in generate.ITEMS}
    # board builds may be absent (the report then says so); every other item must be stored
    missing = [name for name, value in results.items()
               if value is None and not name.startswith("synth_")]
    return results, missing


def test_committed_report_is_rendered_from_committed_data(tmp_path):
    results, missing = _committed()
    assert not missing, f"reports/data lacks {missing}: run `spikeforge report`"
    generate.render(results, out_dir=str(tmp_path))
    with open(os.path.join(generate.HERE, "README.md")) as f:
        committed = f.read()
    assert (tmp_path / "README.md").read_text() == committed
    for png in ("energy_by_engine.png", "throughput.png", "fpga_utilisation.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert os.path.exists(os.path.join(generate.HERE, png))
    with open(os.path.join(generate.DATA, "energy.json")) as f:
        assert json.load(f) == json.loads((tmp_path / "data" / "energy.json").read_text())


def test_report_tables_carry_the_measurements(tmp_path):
    results, missing = _committed()
    assert not missing
    generate.render(results, out_dir=str(tmp_path))
    text = (tmp_path / "README.md").read_text()
    top = results["bench_top"]
    assert f"| Accelerator | {top['cycles_per_step']:.0f} |" in text
    for key in generate.SYNTH_KEYS:
        r = results[key]
        name = key.split("_", 1)[1]
        if r is None:
            assert f"| {name} | | | not built for this report" in text
        elif r.get("fits"):
            assert f"| {name} | {r['preset']} |" in text and f"{r['fmax_mhz']:.1f}" in text
    # CPU baselines at their fastest batch, and the sweep's every cell
    for e in results["cpu_sweep"]["engines"].values():
        assert f"{e['best_samples_per_s']:,.0f}" in text
        assert all(f"{v:,.0f}" in text for v in e["samples_per_s"].values())
    link = results["bench_board_ulx3s-85f"]
    assert f"{link['end_to_end_samples_per_s']:,.0f}" in text
    assert f"{link['compute_samples_per_s']:,.0f}" in text


def test_adopt_synth_refuses_a_foreign_build(tmp_path):
    from spikeforge.fpga.boards import board
    (tmp_path / "synth.json").write_text(json.dumps(
        {"board": "ulx3s-85f", "preset": "mnist16", "hw": {},
         "design": board("ulx3s-85f").design(hw_changes={"pes": 3}).to_dict()}))
    with pytest.raises(ValueError, match="not the ulx3s-85f's own"):
        generate.adopt_synth(str(tmp_path))
    from spikeforge.hdl.design import rtl_revision
    own = board("ulx3s-85f").design().to_dict()
    (tmp_path / "synth.json").write_text(json.dumps(
        {"board": "ulx3s-85f", "preset": "digits", "design": own, "rtl": "0" * 16}))
    with pytest.raises(ValueError, match="built from other RTL sources"):
        generate.adopt_synth(str(tmp_path))
    assert rtl_revision(board("ulx3s-85f").design()) != "0" * 16
    (tmp_path / "synth.json").write_text("{broken")
    with pytest.raises(ValueError, match="is not a synth.json"):
        generate.adopt_synth(str(tmp_path))
