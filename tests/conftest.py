"""Shared test set-up (keep tiny)."""

# pytester's in-process runs drop the modules first imported inside them, and numpy-based extensions cannot be loaded
# twice in one process: import scipy.stats (the gate's tests) once, up front.
import scipy.stats  # noqa: F401
