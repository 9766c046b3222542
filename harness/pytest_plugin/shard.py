"""``--shard I/N``: split the collected tests into N disjoint parts, balanced by recorded durations.

Every CI job of a strategy matrix collects the same items and keeps only its own part, so the partition must be a
pure function of the item ids, the shard count and the durations: no randomness, no clock, no host facts. Given
recorded durations (a previous ``results.json``, or a ``harness.durations/1`` file written by ``harness merge
--durations-out``), items are placed longest first on the shard with the least work so far (the LPT rule of
Graham, "Bounds on multiprocessing timing anomalies", 1969: never worse than 4/3 of the optimal makespan). Items
without a recorded duration count as the median of the recorded ones (1 s when none is recorded), so a suite with no
history is split into parts of equal size. The plugin partitions the sorted item keys, so the split does not depend
on the order pytest collected them in.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError
from harness.pytest_plugin.collect import case_of
from harness.run.durations import DURATIONS_SCHEMA

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
DEFAULT_DURATION_S = 1.0


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as written on the command line and in CI matrices
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/3"`` -> ``Shard(2, 3)``; anything else is a one-line error that shows the expected form."""
    match = _SHARD_RE.match(text or "")
    if not match:
        raise HarnessError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. --shard 2/3")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise HarnessError(f"--shard {text}: the index must be between 1 and {max(count, 1)}, e.g. --shard 1/{count}")
    return Shard(index, count)


def load_durations(path: str | Path) -> dict[str, float]:
    """Seconds per case id from a results file (``harness.results/1``) or a durations file (``harness.durations/1``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"--shard-durations {path}: no such file; pass a results.json of an earlier run") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"--shard-durations {path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    if isinstance(data, dict) and data.get("schema") == DURATIONS_SCHEMA:
        raw = data.get("durations_s", {})
        if isinstance(raw, dict):
            return {str(k): float(v) for k, v in raw.items() if _positive(v)}
    if isinstance(data, dict) and str(data.get("schema", "")).startswith("harness.results/"):
        cases = data.get("cases", [])
        return {str(c["id"]): float(c["duration_s"]) for c in cases if "id" in c and _positive(c.get("duration_s"))}
    raise HarnessError(
        f"--shard-durations {path}: neither a results file nor a {DURATIONS_SCHEMA} file; "
        "pass a results.json written by the harness"
    )


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def partition(ids: Sequence[str], count: int, durations: Mapping[str, float] | None = None) -> list[list[str]]:
    """Split ``ids`` into ``count`` disjoint lists that together hold every id once, each in collection order."""
    if count < 1:
        raise ValueError("count must be at least 1")
    known = [durations[i] for i in ids if durations and i in durations]
    fallback = statistics.median(known) if known else DEFAULT_DURATION_S
    weights = [durations.get(i, fallback) if durations else fallback for i in ids]
    # Longest first; ties keep the collection order, which with equal weights deals the items out round-robin.
    order = sorted(range(len(ids)), key=lambda n: (-weights[n], n))
    loads = [0.0] * count
    owner = [0] * len(ids)
    for n in order:
        shard = min(range(count), key=lambda s: (loads[s], s))
        loads[shard] += weights[n]
        owner[n] = shard
    parts: list[list[str]] = [[] for _ in range(count)]
    for n, item_id in enumerate(ids):
        parts[owner[n]].append(item_id)
    return parts


def item_key(item: pytest.Item) -> str:
    """What durations are recorded under: the case id for a benchmark case, else the pytest node id."""
    case = case_of(item)
    return case.id if case is not None else item.nodeid


class ShardPlugin:
    """Registered by the harness plugin when ``--shard`` is given; keeps this shard's items, deselects the rest."""

    def __init__(self, shard: Shard, durations: dict[str, float]) -> None:
        self.shard = shard
        self.durations = durations
        self.selected: list[str] = []  # case ids (or node ids) this shard owns, recorded in results.json
        self.total = 0

    @pytest.hookimpl(trylast=True)  # after -k / -m deselection, so the balance is over what will really run
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keys = [item_key(item) for item in items]
        if len(set(keys)) != len(keys):  # two items with one key would make the partition ambiguous
            keys = [item.nodeid for item in items]
        # Partition the sorted keys, not the collection order: --ff, --lf or a shuffling plugin reorder items
        # differently on each job, and the shards must still agree on who runs what.
        mine = set(partition(sorted(keys), self.shard.count, self.durations)[self.shard.index - 1])
        keep = [item for item, key in zip(items, keys, strict=True) if key in mine]
        drop = [item for item, key in zip(items, keys, strict=True) if key not in mine]
        self.total = len(items)
        self.selected = [key for key in keys if key in mine]
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep

    def pytest_report_header(self, config: pytest.Config) -> str:
        source = f", balanced by {len(self.durations)} recorded durations" if self.durations else ""
        return f"harness shard {self.shard}{source}"

    def record(self) -> dict[str, Any]:
        """What results.json keeps about this shard, so ``harness merge`` can prove that nothing went missing."""
        return {"index": self.shard.index, "count": self.shard.count, "items": list(self.selected)}


def configure(config: pytest.Config) -> ShardPlugin | None:
    """Register the shard filter for ``--shard``; a bad value is a usage error before anything is collected."""
    text = config.getoption("shard", None)
    if not text:
        return None
    try:
        shard = parse_shard(text)
        path = config.getoption("shard_durations", None)
        durations = load_durations(path) if path else {}
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    plugin = ShardPlugin(shard, durations)
    config.pluginmanager.register(plugin, "harness-shard")
    return plugin


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only part I of N of the collected tests (deterministic; e.g. one part per CI job)",
    )
    group.addoption(
        "--shard-durations",
        default=None,
        metavar="FILE",
        help="balance --shard by the case durations in FILE (a results.json, or harness merge --durations-out)",
    )
