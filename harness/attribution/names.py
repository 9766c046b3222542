"""From the names a profiler prints to the ONNX nodes a layer implements.

TensorRT names its layers in three ways over its releases, and each says which ONNX nodes a layer runs:

- TensorRT 8.6 and later, built with detailed profiling verbosity, give each layer a ``Metadata`` string of
  ``[ONNX Layer: name]`` entries, one per fused node, separated by the ASCII unit separator ``\\x1f`` (8.6 used the
  record separator ``\\x1e``; some tools drop the separator). This is exact: :func:`metadata_nodes`.
- Older engines (and layers without metadata) are named after what they fused: ``a + b + PWN(c)``,
  ``PWN(PWN(x), y)`` for fused pointwise chains, ``{ForeignNode[first...last]}`` for a subgraph handed to Myelin
  (only its two ends are named; with the ONNX graph, the nodes between them in topological order are added),
  ``Reformatting CopyNode for Input Tensor 0 to X`` / ``... Output Tensor 0 to X`` for a format conversion
  (attributed to the consumer / producer layer ``X``), ``QuantizeLinear_7_quantize_scale_node`` for the scale of a
  Q/DQ pair. Weights folded into a layer appear as parameter names (``features.0.0.weight``); Myelin's own layers
  (``[trainStation1]``, ``(Unnamed Layer* 849) [Shuffle]``) implement no ONNX node.
- ONNX Runtime's profiler names the ONNX nodes themselves.

PyTorch's ONNX export (``torch.onnx.export(..., dynamo=False)``) writes the module path into each node name:
``/layer1/layer1.0/conv/Conv`` is the ``Conv`` of module ``layer1.0.conv`` (:func:`module_path`), so a
``torch.profiler`` time per module maps to the nodes of that module (:func:`nodes_of_module`).

An optional :class:`OnnxGraph` (from the ``onnx.ModelProto`` the engine was built from) resolves names against the
real node list: parameters and TensorRT-internal names are dropped, a tensor name stands for the node producing it.
The parsing follows the names as TensorRT writes them (seen in trtexec's ``--exportLayerInfo`` and in the inputs of
TREx, NVIDIA's trt-engine-explorer); the mapping to nodes and modules is the harness's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

REFORMAT = "Reformat"
MYELIN = "Myelin"

_METADATA_ENTRY = re.compile(r"\[ONNX Layer: (.*?)\](?=[\x1e\x1f]|\[ONNX Layer: |\s*$)", re.S)
_REFORMAT = re.compile(r"^Reformatting CopyNode for (?:Input|Output) Tensor \d+ to (.+)$", re.S)
_FOREIGN = re.compile(r"^\{?ForeignNode\[(.*)\]\}?$", re.S)
_PWN = re.compile(r"^PWN\((.*)\)$", re.S)
# TensorRT's ONNX parser names the scale constant of a Q/DQ node after the node
_QDQ_SUFFIX = re.compile(r"_(?:de)?quantize_scale_node$")
# names TensorRT makes up for layers of its own: they implement no ONNX node
_INTERNAL = re.compile(
    r"\(Unnamed Layer\* ?\d+\)|^\[trainStation\d*\]$|^(?:copied_)?(?:un)?squeeze_(?:node_)?after_|^__myl_"
    r"|^Reformatted (?:Input|Output) Tensor"
)
# a PyTorch parameter folded into a layer (features.0.0.weight, classifier.1.bias): a weight, not a node
_PARAMETER = re.compile(r"(?:^|\.)(?:weight|bias|running_mean|running_var)$")


def metadata_nodes(metadata: str | None) -> tuple[str, ...]:
    """The ONNX node names of a TensorRT layer's ``Metadata`` (``[ONNX Layer: a]\\x1f[ONNX Layer: b]``), in order."""
    if not metadata:
        return ()
    return tuple(dict.fromkeys(name.strip() for name in _METADATA_ENTRY.findall(metadata) if name.strip()))


def split_top_level(text: str, separators: tuple[str, ...] = (" + ", ", ")) -> list[str]:
    """``text`` split at the separators that sit outside any brackets (node names may hold ``( )`` and ``[ ]``)."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0 and (sep := next((s for s in separators if text.startswith(s, i)), None)):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


@dataclass(frozen=True)
class Part:
    """A name inside a TensorRT layer name; ``until`` is the last node of a ``ForeignNode[first...last]`` range."""

    name: str
    until: str | None = None


def fused_parts(layer_name: str) -> tuple[Part, ...]:
    """The names a TensorRT layer name is made of, wrappers removed: ``a + b + PWN(c, PWN(d))`` → a, b, c, d."""
    reformat = _REFORMAT.match(layer_name.strip())
    text = reformat.group(1) if reformat else layer_name.strip()
    parts: list[Part] = []
    for piece in split_top_level(text):
        if pointwise := _PWN.match(piece):
            parts.extend(fused_parts(pointwise.group(1)))
        elif foreign := _FOREIGN.match(piece):
            first, dots, last = foreign.group(1).partition("...")
            if dots and first.strip() and last.strip():
                parts.append(Part(first.strip(), until=last.strip()))
            else:
                parts.extend(fused_parts(foreign.group(1)))
        else:
            parts.append(Part(piece))
    return tuple(parts)


def layer_kind(layer_name: str) -> str | None:
    """``Reformat`` for a format conversion, ``Myelin`` for Myelin's own layers, else None (the caller's type)."""
    if _REFORMAT.match(layer_name.strip()):
        return REFORMAT
    if layer_name.startswith("[trainStation") or layer_name.startswith("__myl_"):
        return MYELIN
    return None


@dataclass(frozen=True)
class OnnxGraph:
    """The facts of an ONNX graph that name resolution needs: node names in topological order, who produces each
    tensor, the parameters."""

    nodes: tuple[str, ...]
    producers: dict[str, str] = field(default_factory=dict)  # tensor name -> node name
    initializers: frozenset[str] = frozenset()

    @classmethod
    def from_model(cls, model: onnx.ModelProto) -> OnnxGraph:
        """The graph of ``model`` (a node without a name is called ``<op_type>_<index>``)."""
        nodes, producers = [], {}
        for index, node in enumerate(model.graph.node):
            name = node.name or f"{node.op_type}_{index}"
            nodes.append(name)
            for output in node.output:
                producers[output] = name
        return cls(tuple(nodes), producers, frozenset(init.name for init in model.graph.initializer))

    def between(self, first: str, last: str) -> tuple[str, ...]:
        """The nodes from ``first`` to ``last`` in topological order (both ends where either is unknown)."""
        order = {name: i for i, name in enumerate(self.nodes)}
        if first not in order or last not in order:
            return tuple(name for name in (first, last) if name in order)
        low, high = sorted((order[first], order[last]))
        return self.nodes[low : high + 1]

    def resolve(self, name: str) -> tuple[str, ...]:
        """The node ``name`` stands for: itself, the node producing a tensor of that name, or none."""
        known = set(self.nodes)
        for candidate in (name, _QDQ_SUFFIX.sub("", name)):
            if candidate in known:
                return (candidate,)
            if candidate in self.producers and candidate not in self.initializers:
                return (self.producers[candidate],)
        return ()


def _guess(name: str) -> tuple[str, ...]:
    """A part taken for a node without the graph: TensorRT's own names and parameters are dropped."""
    if _INTERNAL.search(name) or _PARAMETER.search(name):
        return ()
    return (_QDQ_SUFFIX.sub("", name),)


def _between_ends(graph: OnnxGraph, first: str, last: str) -> tuple[str, ...]:
    """A ``ForeignNode[first...last]``: the nodes between its ends, or the ends the graph knows."""
    ends = graph.resolve(first) + graph.resolve(last)
    return graph.between(*ends) if len(ends) == 2 else ends


def layer_nodes(layer_name: str, metadata: str | None = None, graph: OnnxGraph | None = None) -> tuple[str, ...]:
    """The ONNX nodes a TensorRT layer implements, sorted: from its ``Metadata`` where it has one, else from its
    name; resolved against ``graph`` where given."""
    from_metadata = metadata_nodes(metadata)
    if from_metadata:
        return tuple(sorted(from_metadata))
    nodes: list[str] = []
    for part in fused_parts(layer_name):
        if graph is not None:
            nodes.extend(_between_ends(graph, part.name, part.until) if part.until else graph.resolve(part.name))
        else:
            nodes.extend(_guess(part.name) + (_guess(part.until) if part.until else ()))
    return tuple(sorted(set(nodes)))


def module_path(node_name: str) -> str | None:
    """The PyTorch module that a node of the harness's ONNX export belongs to: ``/layer1/layer1.0/conv/Conv`` →
    ``layer1.0.conv``, ``/ReduceMean`` → ``""`` (the model itself); None for a name not written by that export.

    The exporter writes one scope per module, each named by its attribute, qualified by its parent's path where the
    parent is a container (``layer1`` then ``layer1.0``)."""
    if not node_name.startswith("/"):
        return None
    scopes = node_name.split("/")[1:-1]  # the last piece is the op (Conv, Conv_1)
    path = ""
    for scope in scopes:
        path = scope if not path or scope.startswith(path + ".") else f"{path}.{scope}"
    return path


def nodes_of_module(module: str, node_names: Iterable[str]) -> tuple[str, ...]:
    """The nodes of ``node_names`` that belong to PyTorch module ``module`` or to one of its submodules."""
    found = []
    for name in node_names:
        path = module_path(name)
        if path is not None and (not module or path == module or path.startswith(module + ".")):
            found.append(name)
    return tuple(found)
