"""The fusion-aware difference between two layer profiles: which groups of ONNX nodes got slower, and why.

Method. Every layer of either profile is a vertex of one graph; two layers are joined by an edge when the sets of ONNX
nodes they implement overlap, on the same side or across the two sides. The groups are the graph's connected
components (found with a disjoint-set forest, :class:`scipy.cluster.hierarchy.DisjointSet`). A layer that fused
``Conv_12`` and ``Relu_13`` in one build and the two layers of another build that ran them apart land in one group,
so every layer is in exactly one group and the groups' deltas add up to the layers' total delta. What the layers do
not explain (launch gaps, host work, synchronisation) is left as ``unattributed_ms``: the end-to-end change minus the
groups' deltas.

Layers that name no ONNX node (a backend or an engine without metadata) are matched instead by their ``signature``
(op type and shapes), k-th with k-th where several share one, then by layer type and name.

Each group's change is classified, first match wins: ``added`` (only in the current profile), ``removed`` (only in
the baseline), ``fusion changed`` (the node set is split into layers differently on the two sides), ``precision
changed`` (the same layers run at another precision or format, or reformat layers came or went), ``tactic changed``
(the same layers with another tactic or kernel), else ``slower`` / ``faster`` / ``unchanged`` by the noise rule.

Noise rule. Each layer carries ``spread_ms``, half the interquartile range of its per-inference times. A side's
noise is the root of the sum of its layers' squared spreads (the layers vary independently); a group's noise is the
two sides' noise added (either median may sit that far off) plus a floor, the largest of 2% of the group's baseline
time, 3 µs and 0.5% of the baseline's layer total. The floor keeps layers whose profiler gave no spread (trtexec's
profile file) from being flagged for timer and launch jitter, and a small kernel that another process runs a few
percent off (a layer's spread is taken within one process; between processes a GPU kernel moves more) from being
named for a change far below any gate's tolerance. A shared machine drifts: a rerun may find every layer 20% faster.
The median relative change of the groups on both sides (``common_change``; 0 with fewer than three groups) is taken
as that drift, and its part of a group's baseline time is added to the group's noise: a change every layer shares (a
slower clock, a uniformly slower release) names no group, while a group that moved more than the rest still stands
out. The median holds while fewer than half the groups changed. A group is ``above_noise`` only when ``|delta|``
exceeds its noise.

Sources. TREx (NVIDIA's trt-engine-explorer, ``trex/compare_engines.py``: ``match_layers``) aligns the layers of
two engine plans by a signature of layer type and tensor shapes, searched in execution order; the signature
fallback here follows it. Polygraphy's layer-wise comparison (``polygraphy run --trt --onnxrt --trt-outputs mark all
--onnxrt-outputs mark all``) compares the two runtimes' outputs of the tensors both name, for accuracy rather than
time. Ours: joining layers through the ONNX nodes they implement, the connected components across fusions (so a
changed fusion is one group rather than unmatched layers), the classification and the noise rule.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.attribution.record import LayerProfile, LayerTime
from harness.core.errors import HarnessError

# What happened to a group between the two profiles; "unattributed" is the part of the end-to-end change the layers
# do not explain (launch gaps, host work, reformats outside any node).
CHANGES = (
    "slower",
    "faster",
    "tactic changed",
    "precision changed",
    "fusion changed",
    "added",
    "removed",
    "unchanged",
)

# The noise floor of a group (see the module docstring): a fraction of its baseline time and an absolute time.
RELATIVE_FLOOR = 0.02
ABSOLUTE_FLOOR_MS = 0.003
TOTAL_SHARE_FLOOR = 0.005  # of the baseline profile's layer total
# The smallest part of the change a group other than the largest must hold to be named in a message.
NAMED_SHARE = 0.05
# A label names at most this many layers; the rest are counted.
LABEL_LAYERS = 3
# The fewest groups on both sides whose median change is taken for a drift they share.
COMMON_MIN_GROUPS = 3
REFORMAT = "Reformat"


def _ms(value: float) -> float:
    """Four significant digits, as the profiles keep their times."""
    return float(f"{value:.4g}") if math.isfinite(value) and value != 0 else float(value)


def _number(data: dict[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise HarnessError(f"{where}: '{key}' should be a number")
    return float(value)


def _names(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise HarnessError(f"{where}: '{key}' should be a list of names")
    return tuple(value)


@dataclass(frozen=True)
class GroupChange:
    label: str  # how people read it: the current layers' names joined ("Conv_12+Relu_13"), else the baseline's
    nodes: tuple[str, ...]  # the ONNX nodes of the group, on either side
    baseline_layers: tuple[str, ...]
    current_layers: tuple[str, ...]
    baseline_ms: float
    current_ms: float
    change: str  # one of CHANGES
    above_noise: bool  # the delta is larger than the two profiles' noise for this group
    noise_ms: float = 0.0

    @property
    def delta_ms(self) -> float:
        return self.current_ms - self.baseline_ms

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "change": self.change,
            "baseline_ms": _ms(self.baseline_ms),
            "current_ms": _ms(self.current_ms),
            "above_noise": self.above_noise,
            "noise_ms": _ms(self.noise_ms),
        }
        for key in ("nodes", "baseline_layers", "current_layers"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "group") -> GroupChange:
        if not isinstance(data, dict) or not isinstance(data.get("label"), str):
            raise HarnessError(f"{where}: a group needs a 'label' (a string)")
        where = f"{where} '{data['label']}'"
        if data.get("change") not in CHANGES:
            raise HarnessError(f"{where}: 'change' should be one of {', '.join(CHANGES)}")
        if not isinstance(data.get("above_noise"), bool):
            raise HarnessError(f"{where}: 'above_noise' should be true or false")
        return cls(
            label=data["label"],
            nodes=_names(data, "nodes", where),
            baseline_layers=_names(data, "baseline_layers", where),
            current_layers=_names(data, "current_layers", where),
            baseline_ms=_number(data, "baseline_ms", where),
            current_ms=_number(data, "current_ms", where),
            change=data["change"],
            above_noise=data["above_noise"],
            noise_ms=_number(data, "noise_ms", where) if "noise_ms" in data else 0.0,
        )


def _signed_ms(value: float) -> str:
    """``+0.41 ms``, ``+0.014 ms``: two decimals from 0.1 ms up, two significant digits below."""
    return f"{value:+.2f} ms" if round(abs(value), 2) >= 0.1 else f"{value:+.2g} ms"


@dataclass(frozen=True)
class ProfileDiff:
    groups: tuple[GroupChange, ...]  # largest |delta| first
    baseline_ms: float  # the baseline profile's end-to-end (or layer total where no end-to-end was taken)
    current_ms: float
    unattributed_ms: float  # the end-to-end change minus the groups' deltas
    # the median relative change of the groups on both sides (0.05: +5%): a drift they share, no group's doing
    common_change: float = 0.0
    # how much slower (+) or faster (-) the runner was in the current pass than in the baseline's (speed probe); the
    # current times were scaled to the baseline's speed before the diff. None where a pass has no probe reading.
    runner_change: float | None = None

    @property
    def delta_ms(self) -> float:
        return self.current_ms - self.baseline_ms

    def share(self, group: GroupChange) -> float:
        """``group``'s part of the end-to-end change (signed; the groups and the unattributed rest add up to 1)."""
        return group.delta_ms / self.delta_ms if self.delta_ms else 0.0

    def contributors(self, top: int = 3) -> tuple[GroupChange, ...]:
        """The ``top`` groups above the noise that moved in the direction of the end-to-end change, largest first;
        after the first, only those holding at least :data:`NAMED_SHARE` of the change."""
        if not self.delta_ms:
            return ()
        same_way = [g for g in self.groups if g.above_noise and g.delta_ms * self.delta_ms > 0]
        # after the largest, a group too small a part of the change to act on is left to the tables
        named = same_way[:1] + [g for g in same_way[1:] if abs(self.share(g)) >= NAMED_SHARE]
        return tuple(named[:top])

    def where(self, top: int = 3) -> str:
        """The regression message's tail: ``where: Conv_12+Relu_13 +0.41 ms (71% of the change, tactic changed),
        Add_40 +0.09 ms (16%)``; only groups above the noise, '' when none is."""
        parts: list[str] = []
        for group in self.contributors(top):
            why = [f"{self.share(group):.0%}" + ("" if parts else " of the change")]
            if group.change not in ("slower", "faster"):
                why.append(group.change)
            parts.append(f"{group.label} {_signed_ms(group.delta_ms)} ({', '.join(why)})")
        return "where: " + ", ".join(parts) if parts else ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "baseline_ms": _ms(self.baseline_ms),
            "current_ms": _ms(self.current_ms),
            "unattributed_ms": _ms(self.unattributed_ms),
        }
        if self.common_change:
            out["common_change"] = round(self.common_change, 4)
        if self.runner_change is not None:
            out["runner_change"] = round(self.runner_change, 4)
        out["groups"] = [group.to_dict() for group in self.groups]
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "diff") -> ProfileDiff:
        if not isinstance(data, dict):
            raise HarnessError(f"{where}: a profile diff should be an object")
        groups = data.get("groups")
        if not isinstance(groups, list):
            raise HarnessError(f"{where}: 'groups' should be a list")
        return cls(
            groups=tuple(GroupChange.from_dict(item, f"{where} group {i}") for i, item in enumerate(groups)),
            baseline_ms=_number(data, "baseline_ms", where),
            current_ms=_number(data, "current_ms", where),
            unattributed_ms=_number(data, "unattributed_ms", where),
            common_change=_number(data, "common_change", where) if "common_change" in data else 0.0,
            runner_change=_number(data, "runner_change", where) if data.get("runner_change") is not None else None,
        )


# -- grouping --------------------------------------------------------------------------------------------------------

Vertex = tuple[str, int]  # ("b" | "c", index of the layer in its profile)


def _fallback_keys(baseline: Sequence[LayerTime], current: Sequence[LayerTime]) -> dict[Vertex, Hashable]:
    """A shared key for each pair of node-less layers that match across the sides: same signature (k-th with k-th,
    same names paired first), else same type and name. Unmatched node-less layers get no key."""
    keys: dict[Vertex, Hashable] = {}
    loose = {
        side: [i for i, layer in enumerate(layers) if not layer.nodes]
        for side, layers in (("b", baseline), ("c", current))
    }
    by_side = {"b": baseline, "c": current}

    def pair(attribute: Any) -> None:
        buckets: dict[Hashable, dict[str, list[int]]] = defaultdict(lambda: {"b": [], "c": []})
        for side in ("b", "c"):
            for i in loose[side]:
                if (side, i) not in keys and (value := attribute(by_side[side][i])) is not None:
                    buckets[value][side].append(i)
        for value, sides in buckets.items():
            for k, (b, c) in enumerate(zip(sides["b"], sides["c"], strict=False)):
                keys[("b", b)] = keys[("c", c)] = ("match", value, k)

    pair(lambda layer: (layer.signature, layer.name) if layer.signature else None)
    pair(lambda layer: layer.signature)
    pair(lambda layer: (layer.kind, layer.name))
    return keys


def _components(baseline: Sequence[LayerTime], current: Sequence[LayerTime]) -> list[list[Vertex]]:
    """The connected components of the layers of both sides, joined where their node sets (or fallback keys) meet."""
    from scipy.cluster.hierarchy import DisjointSet

    vertices: list[Vertex] = [("b", i) for i in range(len(baseline))] + [("c", i) for i in range(len(current))]
    forest = DisjointSet(vertices)
    fallback = _fallback_keys(baseline, current)
    first_with: dict[Hashable, Vertex] = {}
    for vertex in vertices:
        layer = (baseline if vertex[0] == "b" else current)[vertex[1]]
        keys: Iterable[Hashable] = [("node", n) for n in layer.nodes] if layer.nodes else [fallback.get(vertex)]
        for key in keys:
            if key is not None:
                forest.merge(first_with.setdefault(key, vertex), vertex)
    return [sorted(component) for component in forest.subsets()]


def _partition_key(layer: LayerTime) -> tuple[str, ...]:
    """The part of the group's node set a layer runs; a node-less layer is one part (the fallback matched at most
    one on each side into its group)."""
    return layer.nodes


def _partition(layers: Iterable[LayerTime]) -> list[tuple[str, ...]]:
    return sorted(_partition_key(layer) for layer in layers)


def _side_noise(layers: Iterable[LayerTime]) -> float:
    return math.sqrt(sum(layer.spread_ms**2 for layer in layers))


def _classify(old: Sequence[LayerTime], new: Sequence[LayerTime], delta: float, noise: float) -> str:
    if not old:
        return "added"
    if not new:
        return "removed"
    old_main = [layer for layer in old if layer.kind != REFORMAT]
    new_main = [layer for layer in new if layer.kind != REFORMAT]
    if _partition(old_main) != _partition(new_main):
        return "fusion changed"
    old_reformats = sum(layer.kind == REFORMAT for layer in old)
    new_reformats = sum(layer.kind == REFORMAT for layer in new)
    # the partitions are equal here, so sorting both sides by the part each layer runs pairs them layer for layer
    pairs = list(zip(sorted(old_main, key=_partition_key), sorted(new_main, key=_partition_key), strict=True))
    if old_reformats != new_reformats or any(_differs(a.precision, b.precision) for a, b in pairs):
        return "precision changed"
    if any(_differs(a.tactic, b.tactic) for a, b in pairs):
        return "tactic changed"
    if abs(delta) <= noise:
        return "unchanged"
    return "slower" if delta > 0 else "faster"


def _differs(old: str | None, new: str | None) -> bool:
    """Both sides say, and say different things (a profiler that does not report tactics changes nothing)."""
    return old is not None and new is not None and old != new


def _label(old: Sequence[LayerTime], new: Sequence[LayerTime]) -> str:
    names = [layer.label for layer in sorted(new or old, key=lambda layer: (-layer.time_ms, layer.name))]
    shown = "+".join(names[:LABEL_LAYERS])
    return shown if len(names) <= LABEL_LAYERS else f"{shown} (+{len(names) - LABEL_LAYERS} more)"


def _group(old: Sequence[LayerTime], new: Sequence[LayerTime], common: float, floor_ms: float) -> GroupChange:
    baseline_ms = sum(layer.time_ms for layer in old)
    current_ms = sum(layer.time_ms for layer in new)
    noise = _side_noise(old) + _side_noise(new) + max(RELATIVE_FLOOR * baseline_ms, floor_ms)
    if old and new:
        noise += abs(common) * baseline_ms  # the drift every group shares is no group's doing
    delta = current_ms - baseline_ms
    nodes = sorted({n for layer in (*old, *new) for n in layer.nodes})
    return GroupChange(
        label=_label(old, new),
        nodes=tuple(nodes),
        baseline_layers=tuple(layer.name for layer in old),
        current_layers=tuple(layer.name for layer in new),
        baseline_ms=baseline_ms,
        current_ms=current_ms,
        change=_classify(old, new, delta, noise),
        above_noise=abs(delta) > noise,
        noise_ms=noise,
    )


def _common_change(sides: Sequence[tuple[Sequence[LayerTime], Sequence[LayerTime]]]) -> float:
    """The median relative change of the groups on both sides: the drift they all share (a slower machine, another
    clock), 0 where fewer than :data:`COMMON_MIN_GROUPS` groups can say."""
    ratios = []
    for old, new in sides:
        before = sum(layer.time_ms for layer in old)
        if old and new and before > 0:
            ratios.append(sum(layer.time_ms for layer in new) / before - 1)
    return statistics.median(ratios) if len(ratios) >= COMMON_MIN_GROUPS else 0.0


def diff_profiles(baseline: LayerProfile, current: LayerProfile) -> ProfileDiff:
    """Group the layers of both profiles by overlapping ONNX node sets and classify each group's change.

    The end-to-end times are the profiles' ``end_to_end_ms`` when both have one, else their layer totals (then
    nothing is unattributed). Where both passes read the speed probe, the current one is first put at the
    baseline's runner speed (:meth:`LayerProfile.at_speed_of`).
    """
    current, runner_change = current.at_speed_of(baseline)
    old_layers, new_layers = baseline.layers, current.layers
    sides = [
        (
            [old_layers[i] for side, i in component if side == "b"],
            [new_layers[i] for side, i in component if side == "c"],
        )
        for component in _components(old_layers, new_layers)
    ]
    common = _common_change(sides)
    floor_ms = max(ABSOLUTE_FLOOR_MS, TOTAL_SHARE_FLOOR * baseline.total_ms)
    groups = sorted(
        (_group(old, new, common, floor_ms) for old, new in sides), key=lambda g: (-abs(g.delta_ms), g.label)
    )
    if baseline.end_to_end_ms is not None and current.end_to_end_ms is not None:
        baseline_ms, current_ms = baseline.end_to_end_ms, current.end_to_end_ms
    else:
        baseline_ms, current_ms = baseline.total_ms, current.total_ms
    attributed = sum(group.delta_ms for group in groups)
    return ProfileDiff(
        groups=tuple(groups),
        baseline_ms=baseline_ms,
        current_ms=current_ms,
        unattributed_ms=(current_ms - baseline_ms) - attributed,
        common_change=common,
        runner_change=runner_change,
    )
