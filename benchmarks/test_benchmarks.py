"""The benchmark suites as pytest tests: one test per case of every suite (``--suite``, or ini harness_suites)."""


def test_case(harness_case, harness_check):
    harness_check(harness_case)
