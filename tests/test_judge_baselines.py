"""--update-baselines records what may serve as a yardstick: a case with wrong outputs keeps the stored baseline."""

import json

import numpy as np
import pytest

from tests.test_judge_accuracy import _run, _write

pytest_plugins = ["pytester"]


def test_a_case_failing_its_accuracy_check_is_not_recorded_as_a_baseline(pytester: pytest.Pytester):
    # Calibration on constant data: the int8 outputs are wrong (cosine ~0.04), fp32 is fine.
    _write(pytester, np.full((4, 3, 224, 224), 0.5))
    result, data = _run(pytester, "--update-baselines")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    stored = json.loads(next((pytester.path / "bl").glob("*/acc.json")).read_text())
    assert sorted(stored["cases"]) == ["squeezenet-fp32-b2"]
    int8 = next(c for c in data["cases"] if c["id"] == "squeezenet-int8-b2")
    assert any("not recorded as a baseline: its outputs failed the accuracy check" in w for w in int8["warnings"])
