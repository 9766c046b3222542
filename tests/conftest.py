"""Shared test set-up (keep tiny)."""

# pytester's in-process runs drop the modules first imported inside them, and numpy-based extensions cannot be loaded
# twice in one process: import scipy.stats (the gate's tests) once, up front.
import contextlib

import pytest
import scipy.stats  # noqa: F401

# The same for hypothesis's pytest plugin where it is installed (not a dependency of the harness): imported inside each
# in-process run, it costs ~3.5 s a run.
with contextlib.suppress(ImportError):
    import hypothesis  # noqa: F401


@pytest.fixture
def harness(capsys):
    """The ``harness`` command line in this process: ``harness(*args)`` gives (exit status, stdout, stderr)."""
    from harness.cli.main import main

    def call(*args: object) -> tuple[int, str, str]:
        try:
            status = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own refusals
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return call
