"""Where the time went: per-layer profiles of a case and the fusion-aware difference between two of them.

A profile is taken in its own pass after the gated measurement (as trtexec's ``--exportProfile`` is), so profiling
never disturbs the numbers the gate judges. Every backend gives the same record (:mod:`harness.attribution.record`);
this package imports only :mod:`harness.core`, so backends can produce records and the judge and reports can read
them.
"""
