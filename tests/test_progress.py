"""Stages with ETA (model/progress.py): the first run says it has no ETA, the next run's ETA is
the last run's remaining stage times, a failed run is not recorded, and the CLI's ETA for a board
build uses the stored build's stage times under build_board's own stage labels."""

import io
import json
import time

import pytest

from spikeforge.model.progress import Stages, format_seconds, report, stage


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def run(path, clock, durations, stream, fail=False, expected=None):
    with Stages("cmd", "key", history=str(path), stream=stream, heartbeat=0, clock=clock,
                expected=expected) as st:
        for k, d in enumerate(durations):
            st(f"[{k + 1}/{len(durations)}] step {chr(ord('a') + k)} (log: /tmp/x{k})")
            clock.t += d
        if fail:
            raise RuntimeError("boom")


def test_first_run_has_no_eta_and_the_next_uses_its_stage_times(tmp_path):
    path, clock = tmp_path / "p.json", FakeClock()
    out = io.StringIO()
    run(path, clock, [10, 20, 30], out)
    assert "ETA unknown (first run" in out.getvalue()
    stored = json.loads(path.read_text())["cmd | key"]
    assert [s["seconds"] for s in stored["stages"]] == [10, 20, 30]

    out = io.StringIO()
    run(path, clock, [12, 20, 30], out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/3] step a")
    assert "ETA 1 min 00 s, from the last run" in lines[0]      # 10 + 20 + 30
    assert "ETA 50 s" in lines[1]                                # 20 + 30
    assert "ETA 30 s" in lines[2]


def test_a_failed_run_is_not_recorded(tmp_path):
    path, clock = tmp_path / "p.json", FakeClock()
    run(path, clock, [10, 20], io.StringIO())
    with pytest.raises(RuntimeError):
        run(path, clock, [500, 500], io.StringIO(), fail=True)
    stored = json.loads(path.read_text())["cmd | key"]
    assert [s["seconds"] for s in stored["stages"]] == [10, 20]


def test_other_stages_fall_back_to_the_total_and_details_pass_through(tmp_path):
    path, clock = tmp_path / "p.json", FakeClock()
    run(path, clock, [10, 20], io.StringIO())
    out = io.StringIO()
    with Stages("cmd", "key", history=str(path), stream=out, heartbeat=0, clock=clock) as st:
        st("a detail line")
        st.stage("something else")
        clock.t += 5
        assert st.eta() == pytest.approx(25)                    # 30 recorded - 5 elapsed
    assert out.getvalue().splitlines()[0] == "a detail line"


def test_expected_durations_give_the_first_eta(tmp_path):
    out = io.StringIO()
    run(tmp_path / "p.json", FakeClock(), [1, 1], out,
        expected=[("step a (x)", 100), ("step b", 50)])
    assert "ETA 2 min 30 s, from the stored build" in out.getvalue().splitlines()[0]


def test_module_functions_reach_the_active_reporter(tmp_path):
    out = io.StringIO()
    report("nobody listens")                                     # no reporter: no error
    with Stages("cmd", "key", history=str(tmp_path / "p.json"), stream=out, heartbeat=0):
        stage("deep stage")
        report("deep detail")
    text = out.getvalue()
    assert "[1] deep stage" in text and "deep detail" in text


def test_heartbeat_reports_a_long_stage(tmp_path):
    out = io.StringIO()
    with Stages("cmd", "key", history=str(tmp_path / "p.json"), stream=out,
                heartbeat=0.2) as st:
        st.stage("a long one")
        time.sleep(5.6)                                          # the beat polls every 5 s
    assert "... a long one:" in out.getvalue()


def test_format_seconds():
    assert format_seconds(5) == "5 s"
    assert format_seconds(125) == "2 min 05 s"
    assert format_seconds(3725) == "1 h 02 min"


def test_board_build_eta_uses_build_boards_stage_labels():
    from spikeforge.cli.main import _stored_build_stages
    from spikeforge.fpga.boards import board
    from spikeforge.fpga.synth import seed_workers, stage_labels
    from spikeforge.reports.generate import stored_synth

    target = board("icebreaker")
    design = target.design()
    stored = stored_synth(target.name, design.key())
    assert stored is not None, "reports/data holds the iCEBreaker build of its own design"
    expected = _stored_build_stages(target, design, (1, 2, 3), jobs=1)
    assert [l for l, _ in expected] == stage_labels("ice40", (1, 2, 3), seed_workers((1, 2, 3), 1))
    # three seeds one at a time: three times the stored seed's place and route
    assert expected[2][1] == pytest.approx(3 * max(stored["seconds"]["per_seed"].values()))
    assert expected[1][1] == stored["seconds"]["synthesis"]
