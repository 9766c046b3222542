"""Judgement: the gate (a verdict per case from its trials and its baseline), the accuracy check of a typed
model against fp32, and the baseline files committed in a repository."""
