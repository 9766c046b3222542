"""Shared test set-up (keep tiny)."""

# pytester's in-process runs drop the modules first imported inside them, and numpy-based extensions cannot be loaded
# twice in one process: import scipy.stats (the gate's tests) once, up front.
import contextlib

import scipy.stats  # noqa: F401

# The same for hypothesis's pytest plugin where it is installed (not a dependency of the harness): imported inside each
# in-process run, it costs ~3.5 s a run.
with contextlib.suppress(ImportError):
    import hypothesis  # noqa: F401
