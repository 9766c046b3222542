"""The run: one benchmarking session taking each case from model to verdict (session.py, its options in
config.py), its stages apart (precision.py: recipes and the accuracy check; interleave.py: the interleaved measuring
pass), A/B mode as a session of its own (ab.py; start.py picks the session for the options), and the merge of several
runs' results (merge.py, durations.py)."""
