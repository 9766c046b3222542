"""Where the time went: a case's layer profile and its fusion-aware diff as the report and ``harness explain`` show
them.

The rows are computed here once from the result records, for every renderer: per case the largest groups of the
:class:`~harness.attribution.diff.ProfileDiff` (label, baseline ms, current ms, delta, share of the end-to-end
change, kind of change) with the unattributed rest, and the layer table (each layer of the current profile with its
group's delta, plus the layers the current profile no longer has). The comparison a case is explained against is,
in this order: a baseline given on the command line, the diff the run recorded (``CaseResult.attribution``), the
profile kept in the case's baseline entry. A report judged against another baseline (``harness report --baseline``)
uses that baseline's profile only, so the section explains the verdict the page shows.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.attribution.diff import GroupChange, ProfileDiff, diff_profiles
from harness.attribution.record import LayerProfile, LayerTime
from harness.attribution.scopes import common_module
from harness.core.errors import HarnessError
from harness.core.fsio import read_user_json
from harness.core.metrics import format_ms
from harness.core.results import SCHEMA as RESULTS_SCHEMA
from harness.core.results import CaseResult, RunResults
from harness.view.rebase import load_entries
from harness.view.report_view import ReportView

TOP_GROUPS = 6  # groups a plot and a summary table show; the rest are added up in one line
MAX_LAYERS = 200  # layer-table rows per case in the report; results.json keeps every layer
UNATTRIBUTED = "unattributed"
NO_MODULE = "(no module)"
# Below a nanosecond a delta is the rounding of the four-digit times it is computed from, not a change
ROUNDING_MS = 1e-6
NO_PROFILE = "no layer profile was recorded; rerun without --no-profile"
NO_BASELINE_PROFILE = (
    "nothing to compare with: the baseline holds no layer profile; record baselines with --update-baselines"
)


@dataclass(frozen=True)
class GroupRow:
    """One line of the groups table (or one pair of bars of the plot)."""

    label: str
    baseline_ms: float
    current_ms: float
    change: str  # one of harness.attribution.diff.CHANGES, or "unattributed" for the rest
    share: float | None  # signed part of the end-to-end change (0.71: 71%); None when it did not change
    above_noise: bool = True
    nodes: tuple[str, ...] = ()  # the group's ONNX nodes, on either side

    @property
    def delta_ms(self) -> float:
        return self.current_ms - self.baseline_ms


@dataclass(frozen=True)
class LayerRow:
    """One layer of the per-case layer table: the current profile's layers, then the ones it no longer has."""

    name: str
    kind: str
    nodes: tuple[str, ...]
    time_ms: float | None  # None: the layer is in the baseline only
    share: float | None  # of the current profile's layer total
    delta_ms: float | None  # its group's delta; None without a comparison
    change: str  # its group's change, '' without a comparison
    group: str  # its group's label when the group holds other layers too, else ''
    precision: str | None = None
    tactic: str | None = None


@dataclass(frozen=True)
class CaseAttribution:
    """What the report and ``harness explain`` show for one case with a layer profile."""

    case_id: str
    model: str
    profile: LayerProfile
    diff: ProfileDiff | None
    note: str = ""  # why there is no comparison ('' when there is one)
    against: str = ""  # what the diff compares with, in words

    @property
    def delta_ms(self) -> float | None:
        return self.diff.delta_ms if self.diff else None

    @property
    def change(self) -> float | None:
        """The end-to-end change relative to the baseline (+0.12: 12% slower); None without a comparison."""
        if self.diff is None or self.diff.baseline_ms <= 0:
            return None
        return self.diff.delta_ms / self.diff.baseline_ms

    @property
    def where(self) -> str:
        """The regression message's tail (``where: Conv_12+Relu_13 +0.41 ms (71% of the change, ...)``) or ''."""
        return self.diff.where() if self.diff else ""

    def group_rows(self, top: int = TOP_GROUPS) -> list[GroupRow]:
        """The ``top`` groups with the largest |delta|, as the diff orders them."""
        return [self._row(group) for group in self.diff.groups[:top]] if self.diff else []

    def others(self, top: int = TOP_GROUPS) -> GroupRow | None:
        """The groups after the ``top`` first added up in one row, None when there are none."""
        if self.diff is None or len(self.diff.groups) <= top:
            return None
        rest = self.diff.groups[top:]
        return self._sum_row(f"{len(rest)} more group{'s' if len(rest) != 1 else ''}", rest)

    def _sum_row(self, label: str, parts: Sequence[GroupChange | GroupRow]) -> GroupRow:
        """One row adding ``parts`` up (groups, or rows of groups), above the noise when any part is."""
        return GroupRow(
            label,
            sum(p.baseline_ms for p in parts),
            sum(p.current_ms for p in parts),
            "",
            self._share(sum(p.delta_ms for p in parts)),
            any(p.above_noise for p in parts),
        )

    def unattributed(self) -> GroupRow | None:
        """What the layers do not explain: the end-to-end time minus the layers' total, on each side."""
        if self.diff is None:
            return None
        diff = self.diff
        baseline = _unrounded(diff.baseline_ms - sum(g.baseline_ms for g in diff.groups))
        current = _unrounded(baseline + diff.unattributed_ms)
        return GroupRow(UNATTRIBUTED, baseline, current, UNATTRIBUTED, self._share(diff.unattributed_ms))

    def layer_rows(self, limit: int | None = None) -> list[LayerRow]:
        """The current profile's layers slowest first, then the layers only the baseline had."""
        by_layer: dict[str, GroupChange] = {}
        removed: list[GroupChange] = []
        for group in self.diff.groups if self.diff else ():
            for name in group.current_layers:
                by_layer[name] = group
            if not group.current_layers:
                removed.append(group)
        rows = [self._layer_row(layer.label, layer, by_layer.get(layer.name)) for layer in self.profile.layers]
        rows += [self._layer_row(name, None, group) for group in removed for name in group.baseline_layers]
        return rows if limit is None else rows[:limit]

    def module_rows(self, depth: int, top: int = TOP_GROUPS) -> list[GroupRow]:
        """The groups added up by the PyTorch module their layers come from, its path cut to the first ``depth``
        parts (``encoder.layer.0`` at 3), largest |delta| first, the rest after ``top`` in one row. A group's module
        is the deepest one its current layers share; groups of layers without one (a model the harness did not
        export from torch, a layer a precision recipe added) are one row, ``(no module)``."""
        if self.diff is None:
            return []
        modules = {layer.name: layer.module for layer in self.profile.layers}
        sums: dict[str, list[GroupChange]] = {}
        for group in self.diff.groups:
            key = _module_of([modules.get(name) for name in group.current_layers], depth)
            sums.setdefault(key, []).append(group)
        rows = sorted(
            (self._sum_row(key, groups) for key, groups in sums.items()),
            key=lambda row: (-abs(row.delta_ms), row.label),
        )
        if len(rows) <= top:
            return rows
        rest = rows[top:]
        return [*rows[:top], self._sum_row(f"{len(rest)} more module{'s' if len(rest) != 1 else ''}", rest)]

    def _layer_row(self, name: str, layer: LayerTime | None, group: GroupChange | None) -> LayerRow:
        fused = group is not None and len(group.current_layers) + len(group.baseline_layers) > 2
        return LayerRow(
            name=name,
            kind=layer.kind if layer is not None else "",
            nodes=layer.nodes if layer is not None else (group.nodes if group is not None else ()),
            time_ms=layer.time_ms if layer is not None else None,
            share=self.profile.share(layer) if layer is not None else None,
            delta_ms=group.delta_ms if group is not None else None,
            change=group.change if group is not None else "",
            group=group.label if fused and group is not None and group.label != name else "",
            precision=layer.precision if layer is not None else None,
            tactic=layer.tactic if layer is not None else None,
        )

    def _row(self, group: GroupChange) -> GroupRow:
        return GroupRow(
            group.label,
            group.baseline_ms,
            group.current_ms,
            group.change,
            self._share(group.delta_ms),
            group.above_noise,
            group.nodes,
        )

    def _share(self, delta_ms: float) -> float | None:
        total = self.diff.delta_ms if self.diff else 0.0
        return delta_ms / total if total else None


def _module_of(modules: list[str | None], depth: int) -> str:
    """The deepest module all ``modules`` share, cut to ``depth`` parts; NO_MODULE where one is unknown."""
    if not modules or any(m is None for m in modules):
        return NO_MODULE
    shared = common_module(m for m in modules if m is not None)
    return ".".join(shared.split(".")[:depth]) or NO_MODULE


def _unrounded(value: float) -> float:
    """0 for what is left of subtracting sums of the same times (1e-17 ms), which is no time."""
    return 0.0 if abs(value) < ROUNDING_MS else value


def signed_ms(value: float | None) -> str:
    """A delta in ms, signed, with the 3 significant digits of every latency the reports show: ``+0.410``."""
    if value is None:
        return "–"
    if abs(value) < ROUNDING_MS:
        value = 0.0
    return ("-" if value < 0 else "+") + format_ms(abs(value))


def percent(share: float | None) -> str:
    """A share of the change: ``71%``; ``–`` where the end-to-end time did not change."""
    if share is None:
        return "–"
    text = f"{share:.0%}"
    return "0%" if text == "-0%" else text


def profile_of(case: CaseResult) -> LayerProfile | None:
    """The case's own layer profile, or None when none was taken."""
    data = case.profile
    return LayerProfile.from_dict(data, f"case '{case.id}': profile") if data else None


def baseline_profile_of(case: CaseResult) -> LayerProfile | None:
    """The layer profile kept in the case's baseline entry, or None."""
    data = (case.baseline or {}).get("profile")
    return LayerProfile.from_dict(data, f"case '{case.id}': baseline profile") if data else None


def recorded_diff(case: CaseResult) -> ProfileDiff | None:
    """The diff the run recorded with the case, or None."""
    data = case.attribution
    return ProfileDiff.from_dict(data, f"case '{case.id}': attribution") if data else None


def explain(
    case: CaseResult,
    baseline: LayerProfile | None = None,
    against: str = "",
    rebased: bool = False,
) -> CaseAttribution | None:
    """The case's attribution against ``baseline`` when given, else against what its record holds; None when the
    case has no layer profile. ``rebased``: the record's baseline entry was replaced (``--baseline``), so the diff
    the run recorded against its own baseline no longer applies; only the new entry's profile is used. A profile or
    diff in the record that cannot be read raises :class:`HarnessError`."""
    profile = profile_of(case)
    if profile is None:
        return None
    model = str(case.params.get("model", case.id))
    if baseline is not None:
        return CaseAttribution(case.id, model, profile, diff_profiles(baseline, profile), against=against)
    recorded = None if rebased else recorded_diff(case)
    if recorded is not None:
        return CaseAttribution(case.id, model, profile, recorded, against="the diff recorded by the run")
    entry_profile = baseline_profile_of(case)
    if entry_profile is not None:
        diff = diff_profiles(entry_profile, profile)
        return CaseAttribution(case.id, model, profile, diff, against="the baseline entry's profile")
    return CaseAttribution(case.id, model, profile, None, note=NO_BASELINE_PROFILE)


def report_attributions(view: ReportView) -> tuple[list[CaseAttribution], list[str]]:
    """The attribution of every case with a layer profile, regressed and ambiguous cases first, and one line per
    case whose profile cannot be read (the report says so instead of failing)."""
    first = view.with_label("regressed", "ambiguous")
    ordered = first + [c for c in view.cases if c not in first]
    shown, problems = [], []
    for case in ordered:
        try:
            attribution = explain(case.case, rebased=view.baseline_source is not None)
        except HarnessError as exc:
            problems.append(str(exc))
            continue
        if attribution is not None:
            shown.append(attribution)
    return shown, problems


def select_cases(results: RunResults, pattern: str | None, source: str) -> list[CaseResult]:
    """The cases whose id is ``pattern`` or matches it as a glob (all without one); raises when none does."""
    if pattern is None:
        return list(results.cases)
    exact = [c for c in results.cases if c.id == pattern]
    chosen = exact or [c for c in results.cases if fnmatch.fnmatchcase(c.id, pattern)]
    if not chosen:
        known = ", ".join(c.id for c in results.cases[:8]) + (" ..." if len(results.cases) > 8 else "")
        raise HarnessError(
            f"--case {pattern}: no case of {source} has this id or matches it"
            + (f"; its cases: {known}" if known else "; it holds no case")
        )
    return chosen


def baseline_profiles(path: Path, results: RunResults) -> tuple[Callable[[CaseResult], LayerProfile | None], str]:
    """The layer profiles of a baseline (a ``harness.baseline/*`` file or folder, or another run's results.json),
    as a lookup by case (suite and id, or the id alone where it is unique), and a description of where they came
    from."""
    profiles, description = stored_profiles(path, results)
    by_id: dict[str, list[Any]] = {}
    for (_suite, case_id), stored in profiles.items():
        by_id.setdefault(case_id, []).append(stored)

    def lookup(case: CaseResult) -> LayerProfile | None:
        found = profiles.get((str(case.params.get("suite", "")), case.id))
        if found is None and len(by_id.get(case.id, [])) == 1:  # e.g. a results file of a renamed suite
            found = by_id[case.id][0]
        return LayerProfile.from_dict(found, f"--baseline {path}: case '{case.id}': profile") if found else None

    return lookup, description


def stored_profiles(path: Path, results: RunResults) -> tuple[dict[tuple[str, str], Any], str]:
    """The layer profiles (as stored, unread) that a baseline file or folder or another run's results.json keeps,
    by (suite, case id), and a description of where they came from; a folder's baseline key is that of
    ``results``."""
    profiles: dict[tuple[str, str], Any] = {}
    data = None if path.is_dir() else read_user_json(path, f"--baseline {path}", "a JSON file", "no such file")
    if isinstance(data, dict) and data.get("schema") == RESULTS_SCHEMA:
        for case in RunResults.from_dict(data, str(path)).cases:
            if case.profile:
                profiles[(str(case.params.get("suite", "")), case.id)] = case.profile
        return profiles, str(path)
    entries, description = load_entries(path, results)
    return {key: entry["profile"] for key, entry in entries.items() if entry.get("profile")}, description
