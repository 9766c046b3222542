"""Since when: every run's cases in a history store (SQLite or PostgreSQL), their series, and the change points in
them. Imports :mod:`harness.core` (and the machine's git facts) only, so the run appends to it and the reports and
commands read it.
"""
