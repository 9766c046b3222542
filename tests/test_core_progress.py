"""harness.core.progress: live on a terminal, sparse plain lines in CI logs, nothing under -q or for short phases."""

import io

import pytest

from harness.core.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _progress(tty: bool, quiet: bool = False):
    lines: list[str] = []
    rewrites: list[str] = []
    clock = Clock()
    progress = Progress(lines.append, rewrites.append if tty else None, quiet=quiet, clock=clock, log_every_s=10.0)
    return progress, clock, lines, rewrites


def test_ci_log_gets_a_line_every_ten_seconds_and_a_final_one_without_carriage_returns():
    progress, clock, lines, rewrites = _progress(tty=False)
    with progress.phase("interleave zoo-cpu", total=5) as phase:
        for r in range(5):
            clock.now += 6.0
            phase.advance(note=f"round {r + 1}")
    assert rewrites == []
    assert lines[0] == "harness: interleave zoo-cpu [2/5] round 2, 18.0 s left"
    assert lines[-1] == "harness: interleave zoo-cpu: done (5/5) in 30.0 s"
    assert len(lines) == 3  # at 12 s, 24 s, and the end
    assert not any("\r" in line for line in lines)


def test_terminal_rewrites_one_line_then_leaves_the_final_line():
    progress, clock, lines, rewrites = _progress(tty=True)
    with progress.phase("build resnet50-fp16-b8") as phase:
        clock.now += 0.7
        phase.advance(note="building")
        clock.now += 2.0
    assert rewrites == ["harness: build resnet50-fp16-b8 building", ""]
    assert lines == ["harness: build resnet50-fp16-b8: done in 2.7 s"]


def test_short_phases_and_quiet_runs_leave_nothing():
    progress, clock, lines, rewrites = _progress(tty=True)
    with progress.phase("recipe fp16") as phase:
        clock.now += 0.3
        phase.advance()
    quiet, qclock, qlines, qrewrites = _progress(tty=False, quiet=True)
    with quiet.phase("calibrate", total=2) as phase:
        qclock.now += 60
        phase.advance()
    assert (lines, rewrites, qlines, qrewrites) == ([], [], [], [])


def test_a_failing_phase_says_it_stopped_and_the_error_goes_on():
    progress, _clock, lines, _ = _progress(tty=False)
    with pytest.raises(RuntimeError), progress.phase("calibrate int8", total=16) as phase:
        phase.advance(3)
        raise RuntimeError("boom")
    assert lines == ["harness: calibrate int8: stopped (3/16) in 0.0 s"]


def test_stream_progress_writes_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress.for_stream(out)
    progress.min_seconds = progress.log_min_seconds = 0.0
    with progress.phase("merge", total=1) as phase:
        phase.advance()
    assert out.getvalue().startswith("harness: merge: done (1/1) in ")
    assert "\r" not in out.getvalue()


def test_a_ci_log_skips_the_end_line_of_phases_of_a_few_seconds():
    progress, clock, lines, _ = _progress(tty=False)
    with progress.phase("resnet50-fp32-b1: build"):
        clock.now += 2.0
    with progress.phase("resnet50-fp32-b4: build"):
        clock.now += 6.0
    assert lines == ["harness: resnet50-fp32-b4: build: done in 6.0 s"]
