"""Progress of the long phases of a run: recipe conversion, calibration, engine builds, the measuring pass.

On a terminal one line is rewritten in place (pytest's own terminal writer, so it never fights pytest's output); in a
CI log, where carriage returns pile up into one unreadable line, a phase prints a plain line at most every
``log_every_s`` seconds and one when it ends. Phases shorter than ``min_seconds`` (a terminal) or ``log_min_seconds``
(a log, where every line stays: a 2 s engine build per case would double a suite's log) leave nothing behind, and
``-q`` silences all of it. The layout follows tqdm's: ``label [done/total] note, N s left``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


class Phase:
    """One phase in progress; ``advance`` after every unit of work (a round, a case, a sample)."""

    def __init__(self, progress: Progress, label: str, total: int | None) -> None:
        self._progress = progress
        self.label = label
        self.total = total
        self.done = 0
        self.note = ""
        self.started = progress.clock()
        self._last_shown = self.started
        self.logged = False  # a plain progress line was written (a log): the phase then always says how it ended

    def advance(self, steps: int = 1, note: str = "") -> None:
        self.done += steps
        if note:
            self.note = note
        self._progress._update(self)

    def elapsed(self) -> float:
        return self._progress.clock() - self.started

    def line(self) -> str:
        parts = [f"harness: {self.label}"]
        if self.total:
            parts.append(f"[{self.done}/{self.total}]")
        if self.note:
            parts.append(self.note)
        text = " ".join(parts)
        left = self.seconds_left()
        if left is not None:
            text += f", {_duration(left)} left"
        return text

    def seconds_left(self) -> float | None:
        """Linear estimate from the units done so far (None before the first one)."""
        if not self.total or self.done <= 0 or self.done >= self.total:
            return None
        return self.elapsed() / self.done * (self.total - self.done)


class Progress:
    """Reports phases to a line writer; ``rewrite`` (a terminal only) replaces the current line in place."""

    def __init__(
        self,
        write_line: Callable[[str], None],
        rewrite: Callable[[str], None] | None = None,
        *,
        quiet: bool = False,
        min_seconds: float = 1.0,
        log_min_seconds: float = 5.0,
        log_every_s: float = 10.0,
        refresh_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write_line = write_line
        self._rewrite = rewrite
        self.quiet = quiet
        self.min_seconds = min_seconds
        self.log_min_seconds = log_min_seconds
        self.log_every_s = log_every_s
        self.refresh_s = refresh_s
        self.clock = clock
        self._live = False

    @classmethod
    def silent(cls) -> Progress:
        return cls(lambda line: None, quiet=True)

    @classmethod
    def for_pytest(cls, config: Any) -> Progress:
        """pytest's terminal reporter: live on a terminal, sparse lines in CI logs, nothing under ``-q``.

        Writes step around pytest's output capture (as its live logging does), so a phase inside a test item is seen.
        """
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or getattr(config.option, "verbose", 0) < 0:
            return cls.silent()
        capture = config.pluginmanager.get_plugin("capturemanager")

        def uncaptured(write: Callable[[], None]) -> None:
            if capture is None:
                write()
                return
            with capture.global_and_fixture_disabled():
                write()

        def write_line(line: str) -> None:
            uncaptured(lambda: reporter.write_line(line))

        def rewrite(line: str) -> None:
            def show() -> None:
                if line:
                    reporter.ensure_newline()  # a line of our own, not the end of pytest's "file.yaml ..." line
                    reporter.rewrite(line, erase=True)
                else:  # clear the live line and return to its start
                    reporter.rewrite("", erase=True)
                    reporter.write("\r")

            uncaptured(show)

        return cls(write_line, rewrite if reporter.isatty else None)

    @classmethod
    def for_stream(cls, stream: TextIO | None = None, quiet: bool = False) -> Progress:
        """A plain stream (the ``harness`` command's stderr)."""
        out = stream or sys.stderr

        def write_line(line: str) -> None:
            out.write(line + "\n")
            out.flush()

        def rewrite(line: str) -> None:
            out.write("\r\x1b[2K" + line)  # carriage return, then erase the line (ECMA-48 EL)
            out.flush()

        return cls(write_line, rewrite if out.isatty() else None, quiet=quiet)

    @contextmanager
    def phase(self, label: str, total: int | None = None) -> Iterator[Phase]:
        phase = Phase(self, label, total)
        failed = False
        try:
            yield phase
        except BaseException:
            failed = True
            raise
        finally:
            self._finish(phase, failed)

    def _update(self, phase: Phase) -> None:
        if self.quiet:
            return
        now = self.clock()
        if self._rewrite is not None:
            if now - phase._last_shown >= self.refresh_s and now - phase.started >= self.min_seconds / 2:
                self._rewrite(phase.line())
                self._live = True
                phase._last_shown = now
        elif now - phase._last_shown >= self.log_every_s:
            self._write_line(phase.line())
            phase._last_shown = now
            phase.logged = True

    def _finish(self, phase: Phase, failed: bool) -> None:
        if self.quiet:
            return
        if self._live and self._rewrite is not None:
            self._rewrite("")
            self._live = False
        elapsed = phase.elapsed()
        shortest = self.min_seconds if self._rewrite is not None else self.log_min_seconds
        if elapsed < shortest and not failed and not phase.logged:
            return
        count = f" ({phase.done}/{phase.total})" if phase.total else ""
        outcome = "stopped" if failed else "done"
        self._write_line(f"harness: {phase.label}: {outcome}{count} in {_duration(elapsed)}")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
