"""The PyTorch module each ONNX node came from, where the file says: the torch.export-based ONNX exporter's scopes.

Since PyTorch 2.9, ``torch.onnx.export`` exports through ``torch.export`` by default (``dynamo=True``), and its node
names no longer carry the module path (``node_linear_5``, ``node_Conv_12``) the TorchScript exporter wrote
(``/encoder/layer.0/output/dense/MatMul``, read by :func:`harness.attribution.names.module_path`). Instead each node
keeps its scope in ``metadata_props``:

- ``pkg.torch.onnx.name_scopes``: the Python literal of a list of qualified module names from the model down,
  ending with the FX node's own name (``['', 'encoder', 'encoder.layer.0', ..., 'encoder.layer.0.output.dense',
  'linear_5']``);
- ``namespace`` (older releases of the exporter, and kept beside the list): ``/``-joined ``scope: class`` entries in
  the same order (``: __main__.Bert/encoder: ...Encoder/.../linear_5: aten.linear.default``).

A layer that profiles several nodes (a fusion) belongs to the deepest module all of them share, so a user reads
``encoder.layer.0.output.dense (node_linear_5)`` where the profile said ``node_linear_5``. The keys are those the
exporter writes (``torch/onnx/_internal/exporter/_core.py``); the reading is the harness's own.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from harness.attribution.record import LayerProfile

if TYPE_CHECKING:
    import onnx

NAME_SCOPES = "pkg.torch.onnx.name_scopes"
NAMESPACE = "namespace"


def node_module(props: Mapping[str, str]) -> str | None:
    """The qualified name of the module a node was exported from, from its ``metadata_props``; ``""`` for the model
    itself, None where the node carries no scope (another exporter, or a node a tool added later)."""
    scopes = _name_scopes(props.get(NAME_SCOPES))
    if scopes is None:
        scopes = _namespace_scopes(props.get(NAMESPACE))
    if not scopes:
        return None
    modules = scopes[:-1]  # the last entry names the FX node (the op), not a module
    return next((m for m in reversed(modules) if m), "")


def _name_scopes(text: str | None) -> list[str] | None:
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def _namespace_scopes(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [entry.split(":", 1)[0].strip() for entry in text.split("/")]


def module_scopes(model: onnx.ModelProto) -> dict[str, str]:
    """Node name -> module (:func:`node_module`) for the nodes of ``model``'s main graph that carry a scope."""
    scopes = {}
    for node in model.graph.node:
        module = node_module({p.key: p.value for p in node.metadata_props})
        if module is not None and node.name:
            scopes[node.name] = module
    return scopes


@lru_cache(maxsize=8)
def module_scopes_of_file(path: str, sha256: str) -> Mapping[str, str]:
    """:func:`module_scopes` of the ONNX file at ``path`` (its weights left on disk); ``sha256`` keys the cache.
    A file that cannot be read has no scopes: the profile keeps its node names."""
    import onnx

    try:
        return module_scopes(onnx.load(str(Path(path)), load_external_data=False))
    except Exception:  # any reader error: the labels are a convenience, never a case's failure
        return {}


def common_module(modules: Iterable[str]) -> str:
    """The deepest module that holds all of ``modules`` (qualified names; ``""`` is the model itself)."""
    paths = [m.split(".") if m else [] for m in modules]
    if not paths:
        return ""
    shared = []
    for parts in zip(*paths, strict=False):  # as deep as the shortest path
        if any(p != parts[0] for p in parts):
            break
        shared.append(parts[0])
    return ".".join(shared)


def with_modules(profile: LayerProfile, scopes: Mapping[str, str]) -> LayerProfile:
    """``profile`` with each layer's module set from ``scopes``: the deepest module its nodes share, unless that is
    the model itself. Nodes without a scope (a Cast a precision recipe inserted, a node a tool added) and nodes of
    the model's own ``forward`` (``x.relu()`` after a block, fused into that block's Conv) do not count; a layer
    with no other node keeps no module. The profile as it was when ``scopes`` is empty."""
    if not scopes:
        return profile
    layers = []
    for layer in profile.layers:
        known = [scopes[n] for n in layer.nodes if scopes.get(n)]
        module = common_module(known) if known else ""
        layers.append(replace(layer, module=module or None))
    return replace(profile, layers=tuple(layers))
