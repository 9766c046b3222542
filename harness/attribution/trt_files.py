"""TensorRT's profiling files read into one :class:`~harness.attribution.record.LayerProfile`.

The files (as trtexec writes them; the engine inspector gives the same layer JSON through the API):

- ``--exportProfile``: ``[{"count": N}, {"name", "timeMs", "averageMs", "medianMs", "percentage"}, ...]``: each
  layer's time summed over the N profiled inferences, its mean and (TensorRT 8.4 and later) median per inference;
- ``--exportLayerInfo`` (``IEngineInspector`` at ``LayerInformationFormat.JSON``): ``{"Layers": [...], ...}``; with
  ``--profilingVerbosity=detailed`` each layer is an object with ``Name``, ``LayerType``, ``ParameterType``,
  ``Inputs``/``Outputs`` (``Name``, ``Dimensions``, ``Format/Datatype``), ``TacticName``/``TacticValue`` and, from
  TensorRT 8.6, ``Metadata`` (``[ONNX Layer: node]`` entries separated by ``\\x1f``); otherwise each layer is just its
  name. The engine's I/O tensors are ``Bindings`` (8.x, 10.x: names) or ``I/O Tensors`` (11.x: objects with
  ``Name``, ``IOMode``, ``DataType``, ``Dimensions``), and newer inspectors write a tensor's ``Format`` and
  ``DataType`` as two keys;
- ``--exportTimes``: one object per inference with ``latencyMs`` and ``computeMs`` (ms);
- ``*.metadata.json`` (written by TREx's scripts around trtexec): ``performance_summary`` with trtexec's summary
  lists (min, max, mean, median, p90, p95, p99) and the build and inference options.

A profile joins the per-layer times with the layer information by layer name: nodes come from ``Metadata`` or the
layer name (:mod:`harness.attribution.names`), precision from the tensors' data types, the tactic from its name.
Layout follows the readers of TREx (NVIDIA's trt-engine-explorer, ``trex/parser.py``); the join into the harness's
record and the spread estimate are ours.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.attribution.names import REFORMAT, OnnxGraph, layer_kind, layer_nodes, split_top_level
from harness.attribution.record import LayerProfile, LayerTime
from harness.core.errors import HarnessError
from harness.core.fsio import read_user_json
from harness.core.stats import nearest_rank

# Data types as the inspector words them ("Row major linear FP32", "Thirty-two wide channel vectorized row major Int8
# format", 10.x's kgen "Half"), in the harness's precision names.
_DATATYPES = {
    "fp32": "fp32",
    "float": "fp32",
    "fp16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "bf16": "bf16",
    "int8": "int8",
    "fp8": "fp8",
    "fp4": "fp4",
    "int4": "int4",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "bool": "bool",
    "double": "fp64",
}
_DATATYPE = re.compile(r"\b(" + "|".join(_DATATYPES) + r")\b", re.I)
_NO_TACTIC = "0x0000000000000000"
# a "Layers:" line (after a log prefix, if any) opens the inspector's one-line text; JSON writes the key quoted
_TEXT_LAYERS = re.compile(r"^(?:.*\] )?Layers:\s*$", re.M)


@dataclass(frozen=True)
class ProfileRow:
    """One layer of ``--exportProfile``: times in ms per inference (``total_ms`` over all profiled inferences)."""

    name: str
    total_ms: float
    average_ms: float
    median_ms: float | None
    percentage: float

    @property
    def time_ms(self) -> float:
        """The median per inference where trtexec wrote it, else the mean."""
        return self.median_ms if self.median_ms is not None else self.average_ms


@dataclass(frozen=True)
class Tensor:
    name: str
    dimensions: tuple[int, ...]
    format: str  # "Row major linear FP32", "Half", ... as the inspector wrote it

    @property
    def precision(self) -> str | None:
        found = _DATATYPE.search(self.format)
        return _DATATYPES[found.group(1).lower()] if found else None


@dataclass(frozen=True)
class InspectedLayer:
    """One layer of the engine inspector's JSON; everything but the name is absent below detailed verbosity."""

    name: str
    kind: str = ""
    inputs: tuple[Tensor, ...] = ()
    outputs: tuple[Tensor, ...] = ()
    tactic: str | None = None
    metadata: str | None = None

    @property
    def precision(self) -> str | None:
        """``int8``, or ``fp32->int8`` where the layer converts (the first input's and first output's types)."""
        first_in = self.inputs[0].precision if self.inputs else None
        first_out = self.outputs[0].precision if self.outputs else None
        if first_in and first_out and first_in != first_out:
            return f"{first_in}->{first_out}"
        return first_out or first_in

    @property
    def signature(self) -> str | None:
        """Layer type and tensor shapes (``Convolution(1x3x224x224)->(1x32x112x112)``): matches a layer across builds
        that name it differently."""
        if not self.inputs and not self.outputs:
            return None

        def shapes(tensors: Sequence[Tensor]) -> str:
            return ",".join("x".join(str(d) for d in t.dimensions) for t in tensors)

        return f"{self.kind}({shapes(self.inputs)})->({shapes(self.outputs)})"


@dataclass(frozen=True)
class LayerInfo:
    """The engine inspector's JSON: the layers in execution order and the engine's I/O tensor names."""

    layers: tuple[InspectedLayer, ...]
    io_tensors: tuple[str, ...] = ()

    @property
    def detailed(self) -> bool:
        """True when built with detailed profiling verbosity (layers carry types, tensors, tactics)."""
        return any(layer.kind for layer in self.layers)

    def by_name(self) -> dict[str, InspectedLayer]:
        return {layer.name: layer for layer in self.layers}


# -- reading -----------------------------------------------------------------------------------------------------


def _read(path: Path, flag: str) -> Any:
    """The JSON of a file ``flag`` wrote (a trtexec option, or ``metadata`` for TREx's summaries)."""
    if flag == "metadata":
        expected, missing = (
            "a *.metadata.json file",
            "no such file; pass the profiling metadata file beside the profile",
        )
    else:
        expected = f"a file written by trtexec {flag}"
        missing = f"no such file; run trtexec with {flag}=<file> (and --profilingVerbosity=detailed)"
    return read_user_json(Path(path), str(path), expected, missing)


def _number(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_profile(data: Any, where: str) -> tuple[int, tuple[ProfileRow, ...]]:
    """``(profiled inferences, layers)`` of ``--exportProfile`` data; ``where`` names it in errors."""
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "count" not in data[0]:
        raise HarnessError(f'{where}: expected [{{"count": N}}, {{layer}}, ...] as trtexec --exportProfile writes')
    rows = []
    for index, row in enumerate(data[1:], start=1):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise HarnessError(f"{where}: entry {index} has no layer 'name'; is this a trtexec --exportProfile file?")
        average = _number(row, "averageMs")
        if average is None:
            raise HarnessError(f"{where}: layer '{row['name']}' has no 'averageMs' number")
        rows.append(
            ProfileRow(
                name=row["name"],
                total_ms=_number(row, "timeMs") or 0.0,
                average_ms=average,
                median_ms=_number(row, "medianMs"),
                percentage=_number(row, "percentage") or 0.0,
            )
        )
    count = data[0]["count"]
    return (int(count) if isinstance(count, (int, float)) else 0), tuple(rows)


def read_profile(path: Path) -> tuple[int, tuple[ProfileRow, ...]]:
    """``(profiled inferences, layers)`` from a ``--exportProfile`` file."""
    return parse_profile(_read(path, "--exportProfile"), str(path))


def _tensor(data: Any, where: str) -> Tensor:
    if not isinstance(data, dict):
        raise HarnessError(f"{where}: a tensor should be an object with Name, Dimensions, Format/Datatype")
    dims = data.get("Dimensions", [])
    if not isinstance(dims, list) or not all(isinstance(d, int) for d in dims):
        raise HarnessError(f"{where}: tensor '{data.get('Name', '?')}' has 'Dimensions' that are not integers")
    # 8.x and 10.x write one "Format/Datatype" text; newer inspectors write "Format" and "DataType" apart
    text = data.get("Format/Datatype") or " ".join(
        str(data[k]) for k in ("Format", "DataType", "Datatype") if k in data
    )
    return Tensor(name=str(data.get("Name", "")), dimensions=tuple(dims), format=str(text))


def _layer(data: Any, where: str) -> InspectedLayer:
    if isinstance(data, str):  # profiling verbosity below detailed: the name only
        return InspectedLayer(name=data)
    if not isinstance(data, dict) or not isinstance(data.get("Name"), str):
        raise HarnessError(f"{where}: a layer should be a name or an object with 'Name'")
    name = data["Name"]
    tensors = {}
    for key in ("Inputs", "Outputs"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise HarnessError(f"{where} '{name}': '{key}' should be a list of tensors")
        tensors[key] = tuple(_tensor(item, f"{where} '{name}' {key}") for item in items)
    tactic = data.get("TacticName") or data.get("TacticValue")
    metadata = data.get("Metadata")
    return InspectedLayer(
        name=name,
        kind=str(data.get("ParameterType") or data.get("LayerType") or ""),
        inputs=tensors["Inputs"],
        outputs=tensors["Outputs"],
        tactic=str(tactic) if tactic and tactic != _NO_TACTIC else None,
        metadata=metadata if isinstance(metadata, str) else None,
    )


def _io_names(items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(item if isinstance(item, str) else str(item.get("Name", "")) for item in items if item)


def parse_layer_info(data: Any, where: str) -> LayerInfo:
    """The engine inspector's JSON (``--exportLayerInfo``, or ``IEngineInspector.get_engine_information``)."""
    if not isinstance(data, dict) or not isinstance(data.get("Layers"), list):
        raise HarnessError(f"{where}: expected an object with a 'Layers' list as trtexec --exportLayerInfo writes")
    layers = tuple(_layer(item, f"{where} layer {i}") for i, item in enumerate(data["Layers"]))
    io_tensors = _io_names(data.get("Bindings", data.get("I/O Tensors")))
    return LayerInfo(layers=layers, io_tensors=io_tensors)


def read_layer_info(path: Path) -> LayerInfo:
    """The layers of a ``--exportLayerInfo`` file (JSON), or of the inspector's one-line text as
    ``trtexec --dumpLayerInfo`` and a verbose build log print it (:func:`parse_layer_info_text`)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""  # the JSON reader words the error
    if not _TEXT_LAYERS.search(text[:4096]):
        return parse_layer_info(_read(path, "--exportLayerInfo"), str(path))
    return parse_layer_info_text(text, str(path))


# The one-line text: "Name: n, LayerType: t, Inputs: [ { Name: x, Dimensions: [1,3], ... }], ..., Metadata: m"
_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\] )*(?:\[[A-Z]\] )?")


def _value(text: str) -> Any:
    """A value of the one-line text: ``[a,b]`` a list, ``{ k: v, ... }`` an object, an integer, or the text."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_value(item) for item in split_top_level(inner, (",",))] if inner else []
    if text.startswith("{") and text.endswith("}"):
        return _fields(text[1:-1])
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _fields(text: str) -> dict[str, Any]:
    fields = {}
    for item in split_top_level(text, (", ",)):
        key, _, value = item.partition(": ")
        fields[key.strip()] = _value(value)
    return fields


def _text_layer(line: str) -> dict[str, Any]:
    """One layer line as the JSON form's object: the name and metadata are taken whole (a name may hold brackets
    and commas, the metadata holds separators), the fields between them parsed."""
    line, _, metadata = line.partition(", Metadata: ")
    name, found, rest = line[len("Name: ") :].partition(", LayerType: ")
    layer = _fields("LayerType: " + rest) if found else {}
    layer.update(Name=name, Metadata=metadata)
    return layer


def parse_layer_info_text(text: str, where: str) -> LayerInfo:
    """The engine inspector's one-line text (``LayerInformationFormat.ONELINE``): a ``Layers:`` line, one
    ``Name: ...`` line per layer, then ``I/O Tensors:`` (or ``Bindings:``) with one ``Name: ...`` line per tensor."""
    section = ""
    layers: list[InspectedLayer] = []
    io_tensors: list[str] = []
    for raw in text.splitlines():
        line = _LOG_PREFIX.sub("", raw).strip()
        if line in ("Layers:", "I/O Tensors:", "Bindings:", "Engine Metadata:"):
            section = line
        elif section == "Layers:" and line.startswith("Name: "):
            layers.append(_layer(_text_layer(line), f"{where} layer {len(layers)}"))
        elif section in ("I/O Tensors:", "Bindings:") and line:
            io_tensors.append(line[len("Name: ") :].split(", ", 1)[0] if line.startswith("Name: ") else line)
    if not layers:
        raise HarnessError(
            f"{where}: no 'Layers:' with 'Name: ...' lines; pass trtexec --exportLayerInfo JSON or the layer "
            "information a verbose build prints"
        )
    return LayerInfo(layers=tuple(layers), io_tensors=tuple(io_tensors))


def read_times(path: Path) -> list[float]:
    """Per-inference latencies (ms) of a ``--exportTimes`` file."""
    data = _read(path, "--exportTimes")
    if not isinstance(data, list) or not data:
        raise HarnessError(f"{path}: expected a list of per-inference objects as trtexec --exportTimes writes")
    latencies = [_number(row, "latencyMs") if isinstance(row, dict) else None for row in data]
    if any(value is None for value in latencies):
        raise HarnessError(f"{path}: an inference has no 'latencyMs' number; is this a trtexec --exportTimes file?")
    return [float(value) for value in latencies if value is not None]


def read_metadata(path: Path) -> dict[str, Any]:
    """A ``*.metadata.json`` file (TREx's build or profiling summary) as it is."""
    data = _read(path, "metadata")
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected an object (a TREx *.metadata.json file)")
    return data


def median_latency(metadata: dict[str, Any]) -> float | None:
    """The median latency (ms) of a profiling metadata file's ``performance_summary`` (trtexec's summary list:
    min, max, mean, median, ...)."""
    summary = metadata.get("performance_summary")
    latency = summary.get("Latency") if isinstance(summary, dict) else None
    if isinstance(latency, list) and len(latency) >= 4 and isinstance(latency[3], (int, float)):
        return float(latency[3])
    return None


# -- joining -----------------------------------------------------------------------------------------------------


def half_iqr(values: Sequence[float]) -> float:
    """Half the interquartile range of ``values`` (nearest-rank quartiles, as the harness's statistics take them):
    the spread a :class:`LayerTime` keeps; 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    ordered = sorted(values)
    return (nearest_rank(ordered, 75) - nearest_rank(ordered, 25)) / 2


def _kind(name: str, layer: InspectedLayer) -> str:
    """The inspector's layer type, except that a reformat is always ``Reformat`` (the diff tells format changes
    from fusion changes by it); the name's kind where the inspector gave no type."""
    from_name = layer_kind(name)
    return from_name if from_name == REFORMAT else (layer.kind or from_name or "")


def layer_profile(
    rows: Sequence[ProfileRow],
    info: LayerInfo | None = None,
    *,
    source: str = "trtexec",
    iterations: int = 0,
    graph: OnnxGraph | None = None,
    latencies_ms: Sequence[float] = (),
    end_to_end_ms: float | None = None,
    spreads: Mapping[str, float] | None = None,
) -> LayerProfile:
    """The profile of a TensorRT engine: per-layer times joined with the inspector's layers by name.

    ``latencies_ms`` (per-inference times) give the end-to-end median. ``spreads`` are the layers' half-IQRs where
    the caller kept per-inference samples (``IProfiler``); trtexec's profile file keeps none, so there a layer is
    given its share of the end-to-end half-IQR.
    """
    inspected = info.by_name() if info else {}
    total = sum(row.time_ms for row in rows)
    spread = half_iqr(latencies_ms)
    layers = []
    for row in rows:
        layer = inspected.get(row.name, InspectedLayer(name=row.name))
        share = spread * row.time_ms / total if total > 0 else 0.0
        layers.append(
            LayerTime(
                name=row.name,
                nodes=layer_nodes(row.name, layer.metadata, graph),
                kind=_kind(row.name, layer),
                time_ms=row.time_ms,
                spread_ms=spreads.get(row.name, share) if spreads is not None else share,
                precision=layer.precision,
                tactic=layer.tactic,
                signature=layer.signature,
            )
        )
    notes = []
    if info is None or not info.detailed:
        notes.append("no detailed layer information (build with --profilingVerbosity=detailed): no types or tactics")
    elif not any(layer.metadata for layer in inspected.values()):
        notes.append("no layer Metadata (TensorRT before 8.6): ONNX nodes read from the layer names")
    if not latencies_ms and spreads is None:
        notes.append("no per-inference times: layer spreads unknown, only the noise floor applies")
    if end_to_end_ms is None and latencies_ms:
        end_to_end_ms = statistics.median(latencies_ms)
    return LayerProfile.of(source, layers, iterations=iterations, end_to_end_ms=end_to_end_ms, notes=tuple(notes))


def profile_from_files(
    profile: Path,
    layer_info: Path | None = None,
    *,
    times: Path | None = None,
    metadata: Path | None = None,
    graph: OnnxGraph | None = None,
) -> LayerProfile:
    """A :class:`LayerProfile` (source ``trtexec``) from trtexec's files: ``--exportProfile`` and, where given,
    ``--exportLayerInfo``, ``--exportTimes`` and a profiling ``*.metadata.json``."""
    count, rows = read_profile(profile)
    info = read_layer_info(layer_info) if layer_info else None
    latencies = read_times(times) if times else []
    end_to_end = median_latency(read_metadata(metadata)) if metadata and not latencies else None
    return layer_profile(rows, info, iterations=count, graph=graph, latencies_ms=latencies, end_to_end_ms=end_to_end)
