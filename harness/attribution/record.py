"""The one record shape of a per-layer profile, whatever backend took it.

A :class:`LayerProfile` is a list of :class:`LayerTime`: one per layer (TensorRT), node (ONNX Runtime) or operator /
module (PyTorch), with the set of ONNX nodes it implements, so profiles of different backends, builds and TensorRT
versions can be compared node by node (:mod:`harness.attribution.diff`). Its JSON form is compact and diffable: one
short object per layer, times to four significant digits, no per-iteration samples; baselines keep it as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.core.errors import HarnessError

SOURCES = ("onnxruntime", "torch", "tensorrt", "trtexec")


def _round(value: float) -> float:
    """Four significant digits: enough to see a change of 0.1%, short enough to diff."""
    return float(f"{value:.4g}") if math.isfinite(value) and value != 0 else float(value)


@dataclass(frozen=True)
class LayerTime:
    name: str  # the backend's layer / node / operator name, as it printed it
    nodes: tuple[str, ...]  # the ONNX nodes it implements, sorted; () where none could be named
    kind: str  # layer or op type (Convolution, Conv, aten::addmm, Reformat, ...)
    time_ms: float  # median time per inference
    spread_ms: float = 0.0  # half the interquartile range of its per-inference times: its noise
    precision: str | None = None  # precision / format where the backend says (fp16, int8, "Half(NCHW)")
    tactic: str | None = None  # tactic or kernel name where the backend says
    signature: str | None = None  # op type + input/output shapes: matches layers where no node names exist
    # the PyTorch module its nodes came from, where the ONNX file says (harness.attribution.scopes)
    module: str | None = None

    @property
    def label(self) -> str:
        """How people read the layer: its module and name where the module is known (``encoder.layer.0.output.dense
        (node_linear_5)``), else its name."""
        return f"{self.module} ({self.name})" if self.module else self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "ms": _round(self.time_ms)}
        if self.nodes != (self.name,):  # the usual case (a node profiled as itself) is left out; none is []
            out["nodes"] = list(self.nodes)
        if self.spread_ms:
            out["spread_ms"] = _round(self.spread_ms)
        for key in ("precision", "tactic", "signature", "module"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "layer") -> LayerTime:
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise HarnessError(f"{where}: a layer needs a 'name' (a string)")
        ms = data.get("ms")
        if not isinstance(ms, (int, float)) or isinstance(ms, bool):
            raise HarnessError(f"{where} '{data['name']}': 'ms' should be a number")
        nodes = data.get("nodes", [data["name"]])
        if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
            raise HarnessError(f"{where} '{data['name']}': 'nodes' should be a list of node names")
        return cls(
            name=data["name"],
            nodes=tuple(sorted(set(nodes))),
            kind=str(data.get("kind", "")),
            time_ms=float(ms),
            spread_ms=float(data.get("spread_ms") or 0.0),
            precision=data.get("precision"),
            tactic=data.get("tactic"),
            signature=data.get("signature"),
            module=data["module"] if isinstance(data.get("module"), str) and data["module"] else None,
        )


@dataclass(frozen=True)
class LayerProfile:
    source: str  # one of SOURCES: which profiler took it
    layers: tuple[LayerTime, ...]
    iterations: int = 0  # inferences profiled
    end_to_end_ms: float | None = None  # the case's median latency in the same pass; layers sum to less (gaps)
    notes: tuple[str, ...] = field(default=())  # what the profiler could not say (no node names, no tactics, ...)
    # the runner's own speed around the pass (harness.measure.probe, ms), where a CPU backend read it
    probe_ms: float | None = None

    @property
    def total_ms(self) -> float:
        """The layers' times added up: what the profile can attribute."""
        return sum(layer.time_ms for layer in self.layers)

    def at_speed_of(self, reference: LayerProfile) -> tuple[LayerProfile, float | None]:
        """This profile with its times at the runner speed of ``reference``'s pass, and the runner's change (+0.13:
        13% slower now), when both passes read the speed probe; else itself and None. The gate scales each trial
        the same way (harness.judge.gate): a host that slows the whole machine moves every layer alike."""
        if not self.probe_ms or not reference.probe_ms:
            return self, None
        factor = reference.probe_ms / self.probe_ms
        layers = tuple(replace(x, time_ms=x.time_ms * factor, spread_ms=x.spread_ms * factor) for x in self.layers)
        e2e = self.end_to_end_ms * factor if self.end_to_end_ms is not None else None
        scaled = replace(self, layers=layers, end_to_end_ms=e2e, probe_ms=reference.probe_ms)
        return scaled, self.probe_ms / reference.probe_ms - 1

    def share(self, layer: LayerTime) -> float:
        """``layer``'s share of the profile's total (0..1)."""
        total = self.total_ms
        return layer.time_ms / total if total > 0 else 0.0

    @classmethod
    def of(cls, source: str, layers: Iterable[LayerTime], **kwargs: Any) -> LayerProfile:
        """A profile with its layers ordered slowest first (ties by name), as tables and files show them."""
        ordered = tuple(sorted(layers, key=lambda layer: (-layer.time_ms, layer.name)))
        return cls(source=source, layers=ordered, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "iterations": self.iterations,
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.end_to_end_ms is not None:
            out["end_to_end_ms"] = _round(self.end_to_end_ms)
        if self.notes:
            out["notes"] = list(self.notes)
        if self.probe_ms is not None:
            out["probe_ms"] = round(self.probe_ms, 4)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> LayerProfile:
        """A profile read back from results.json or a baseline; raises :class:`HarnessError` naming what is wrong."""
        if not isinstance(data, dict) or data.get("source") not in SOURCES:
            raise HarnessError(f"{where}: a layer profile needs a 'source', one of {', '.join(SOURCES)}")
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise HarnessError(f"{where}: 'layers' should be a list")
        e2e = data.get("end_to_end_ms")
        probe = data.get("probe_ms")
        probe_ms = float(probe) if isinstance(probe, (int, float)) and not isinstance(probe, bool) else None
        return cls.of(
            data["source"],
            (LayerTime.from_dict(item, f"{where} layer {i}") for i, item in enumerate(layers)),
            iterations=int(data.get("iterations") or 0),
            end_to_end_ms=float(e2e) if isinstance(e2e, (int, float)) else None,
            notes=tuple(str(n) for n in data.get("notes", [])),
            probe_ms=probe_ms if probe_ms is not None and math.isfinite(probe_ms) and probe_ms > 0 else None,
        )
