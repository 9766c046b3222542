"""Since when: every run's cases in a history store (SQLite or PostgreSQL), their series, and the change points in
them. Imports :mod:`harness.core` only, so the run appends to it and the reports and commands read it.
"""
