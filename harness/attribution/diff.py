"""The fusion-aware difference between two layer profiles: which groups of ONNX nodes got slower, and why.

(The method and its sources are described where :func:`diff_profiles` is implemented.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.attribution.record import LayerProfile

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
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Any, where: str = "group") -> GroupChange:
        raise NotImplementedError


@dataclass(frozen=True)
class ProfileDiff:
    groups: tuple[GroupChange, ...]  # largest |delta| first
    baseline_ms: float  # the baseline profile's end-to-end (or layer total where no end-to-end was taken)
    current_ms: float
    unattributed_ms: float  # the end-to-end change minus the groups' deltas

    @property
    def delta_ms(self) -> float:
        return self.current_ms - self.baseline_ms

    def share(self, group: GroupChange) -> float:
        """``group``'s part of the end-to-end change (signed; the groups and the unattributed rest add up to 1)."""
        raise NotImplementedError

    def where(self, top: int = 3) -> str:
        """The regression message's tail: ``where: Conv_12+Relu_13 +0.41 ms (71% of the change, tactic changed),
        Add_40 +0.09 ms (16%)``; only groups above the noise, '' when none is."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Any, where: str = "diff") -> ProfileDiff:
        raise NotImplementedError


def diff_profiles(baseline: LayerProfile, current: LayerProfile) -> ProfileDiff:
    """Group the layers of both profiles by overlapping ONNX node sets and classify each group's change."""
    raise NotImplementedError
