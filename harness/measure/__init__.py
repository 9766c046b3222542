"""Measurement: the timed loop of one trial, the CPU speed probe, and trials interleaved round by round."""
