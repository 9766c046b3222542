"""--shard I/N: every case in exactly one shard, deterministic, balanced by recorded durations."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.pytest_plugin.shard import Shard, load_durations, parse_shard, partition
from harness.run.durations import durations_document

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]


def collect(*args: str) -> subprocess.CompletedProcess[str]:
    """``pytest benchmarks --collect-only -q ARGS`` in the repository, as a user (or the CI matrix) runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def node_ids(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


# -- the partition itself --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13])
@pytest.mark.parametrize("with_durations", [False, True])
def test_every_id_lands_in_exactly_one_shard(count, with_durations):
    rng = random.Random(count)
    ids = [f"model{i}-fp{rng.choice([16, 32])}-b{i}" for i in range(11)]
    durations = {i: rng.uniform(0.1, 30) for i in ids[::2]} if with_durations else None
    parts = partition(ids, count, durations)
    assert len(parts) == count
    flat = [i for part in parts for i in part]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat))
    for part in parts:  # each shard keeps the collection order
        assert part == sorted(part, key=ids.index)
    assert partition(ids, count, durations) == parts  # deterministic


def test_without_durations_shards_differ_in_size_by_at_most_one():
    ids = [f"c{i}" for i in range(10)]
    sizes = [len(p) for p in partition(ids, 3)]
    assert sorted(sizes) == [3, 3, 4]
    assert partition(ids, 3)[0] == ["c0", "c3", "c6", "c9"]  # dealt out in collection order


def test_recorded_durations_balance_the_work():
    # One slow case and many quick ones: by count the slow case would share a shard with half the quick ones.
    ids = ["slow", *[f"quick{i}" for i in range(8)]]
    durations = {"slow": 40.0, **{f"quick{i}": 5.0 for i in range(8)}}
    parts = partition(ids, 2, durations)
    loads = [sum(durations[i] for i in part) for part in parts]
    assert sorted(loads) == [40.0, 40.0]
    assert ["slow"] in parts
    # Without durations the same split would be 45 s against 35 s.
    naive = [sum(durations[i] for i in part) for part in partition(ids, 2)]
    assert max(naive) > max(loads)


def test_lpt_stays_within_four_thirds_of_the_optimum():
    rng = random.Random(7)
    for _ in range(50):
        ids = [f"c{i}" for i in range(rng.randint(3, 30))]
        durations = {i: rng.uniform(0.5, 20) for i in ids}
        count = rng.randint(2, 6)
        loads = [sum(durations[i] for i in part) for part in partition(ids, count, durations)]
        lower_bound = max(sum(durations.values()) / count, max(durations.values()))
        assert max(loads) <= 4 / 3 * lower_bound + 1e-9


def test_cases_without_a_recorded_duration_count_as_the_median():
    ids = ["a", "b", "new1", "new2"]
    parts = partition(ids, 2, {"a": 10.0, "b": 10.0})
    assert sorted(len(p) for p in parts) == [2, 2]
    assert {"a", "b"} not in [set(p) for p in parts]


@pytest.mark.parametrize(("text", "expected"), [("1/3", Shard(1, 3)), (" 3 / 3 ", Shard(3, 3)), ("1/1", Shard(1, 1))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected
    assert str(expected) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "3", "a/b", "1/3/5", "-1/3", ""])
def test_parse_shard_refuses_what_is_not_i_of_n(text):
    with pytest.raises(HarnessError, match=r"--shard .*e\.g\. --shard \d/\d"):
        parse_shard(text)


def test_durations_come_from_a_results_file_or_a_durations_file(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(
        json.dumps(
            {
                "schema": "harness.results/1",
                "environment": {},
                "cases": [
                    {"id": "a", "params": {}, "duration_s": 2.5},
                    {"id": "b", "params": {}, "duration_s": 0.0},  # never ran: no information
                ],
            }
        )
    )
    assert load_durations(results) == {"a": 2.5}
    doc = tmp_path / "durations.json"
    doc.write_text(json.dumps(durations_document({"x": 1.23456, "y": 3})))
    assert load_durations(doc) == {"x": 1.235, "y": 3.0}
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something/1"}')
    with pytest.raises(HarnessError, match="neither a results file"):
        load_durations(bad)
    with pytest.raises(HarnessError, match="no such file"):
        load_durations(tmp_path / "missing.json")


# -- through pytest, on the example suite -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def everything() -> list[str]:
    """The unsharded collection of the example suite."""
    return node_ids(collect())


def test_shards_of_the_example_suite_cover_every_case_exactly_once(everything):
    assert len(everything) >= 4
    shards = [node_ids(collect("--shard", f"{i}/3")) for i in (1, 2, 3)]
    flat = [node for shard in shards for node in shard]
    assert sorted(flat) == sorted(everything)
    assert len(flat) == len(set(flat))
    assert all(shards)  # 4 cases over 3 shards: none is empty


def test_shards_follow_recorded_durations_and_k_selection(tmp_path, everything):
    ids = [re.search(r"\[(.*)\]$", n).group(1) for n in everything]
    slow = ids[-1]
    durations = tmp_path / "durations.json"
    durations.write_text(json.dumps(durations_document({i: (30.0 if i == slow else 1.0) for i in ids})))
    first = node_ids(collect("--shard", "1/2", "--shard-durations", str(durations)))
    second = node_ids(collect("--shard", "2/2", "--shard-durations", str(durations)))
    assert [n for n in first if n.endswith(f"[{slow}]")] == first  # the slow case has a shard to itself
    assert sorted(first + second) == sorted(everything)
    # -k first, then the shard: the shards split exactly what -k selected
    selected = node_ids(collect("-k", "b1"))
    split = node_ids(collect("-k", "b1", "--shard", "1/2")) + node_ids(collect("-k", "b1", "--shard", "2/2"))
    assert sorted(split) == sorted(selected) and len(selected) >= 2


def test_more_shards_than_cases_leaves_an_empty_shard_that_passes(everything):
    proc = collect("--shard", f"{len(everything) + 1}/{len(everything) + 1}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert node_ids(proc) == []


def test_a_bad_shard_is_a_usage_error_with_the_expected_form():
    proc = collect("--shard", "4/3")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--shard 4/3: the index must be between 1 and 3" in proc.stderr


REORDERING_CONFTEST = """
import os

def pytest_collection_modifyitems(items):
    if os.environ.get("REVERSE_ITEMS"):  # as --ff, --lf or a shuffling plugin would
        items.reverse()
"""


def test_the_split_does_not_depend_on_the_collection_order(pytester, monkeypatch):
    pytester.makeconftest(REORDERING_CONFTEST)
    pytester.makepyfile("import pytest\n\n@pytest.mark.parametrize('n', range(7))\ndef test_n(n):\n    pass\n")

    def shards() -> list[set[str]]:
        return [
            {line for line in pytester.runpytest("--collect-only", "-q", "--shard", f"{i}/3").outlines if "::" in line}
            for i in (1, 2, 3)
        ]

    forward = shards()
    monkeypatch.setenv("REVERSE_ITEMS", "1")
    assert shards() == forward
    assert sorted(len(s) for s in forward) == [2, 2, 3] and len(set().union(*forward)) == 7
