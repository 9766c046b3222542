"""Which session a run gets: :class:`~harness.run.ab.ABSession` when A/B options are given, else the ordinary
:class:`~harness.run.session.HarnessSession`. The one place that knows both, so that the session never imports A/B
mode and the entry points need not know which mode they start."""

from __future__ import annotations

from harness.core.progress import Progress
from harness.run.ab import ABSession
from harness.run.config import RunConfig
from harness.run.session import HarnessSession


def open_session(config: RunConfig, progress: Progress | None = None) -> HarnessSession:
    """The session for ``config``: A/B mode when ``config.ab`` is set."""
    if config.ab is not None:
        return ABSession(config, progress)
    return HarnessSession(config, progress)
