"""The run: one benchmarking session taking each case from model to verdict, its precision stage, A/B mode,
and the merge of several runs' results."""
