"""The YAML of a suite file: read strictly (a key given twice is an error, not a silent overwrite), keeping the
node tree so a later check can name the line a model is written on."""

from __future__ import annotations

from typing import Any

import yaml

from harness.suite.schema import MODEL_SOURCES


def read_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree (which knows the line of every value)."""
    loader = UniqueKeyLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()


def model_lines(root: yaml.Node | None) -> list[int]:
    """Per entry of the top-level ``models:`` list, the line of its source key (``path``, ``onnx_zoo``, ``torch``),
    or of the entry itself when it has none; [] when there is no such list."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key_node, value_node in root.value:
        if key_node.value != "models" or not isinstance(value_node, yaml.SequenceNode):
            continue
        lines = []
        for item in value_node.value:
            keys = item.value if isinstance(item, yaml.MappingNode) else []
            marks = [k.start_mark for k, _ in keys if isinstance(k, yaml.ScalarNode) and k.value in MODEL_SOURCES]
            lines.append((marks[0] if marks else item.start_mark).line + 1)
        return lines
    return []


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that gives one key twice (plain YAML keeps the last one without a word)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing duplicate keys in a mapping: YAML 1.2 requires keys to be unique, and a suite
    whose second ``batch_sizes:`` silently replaced the first would measure something other than what it reads."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if first is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"key '{key}' is given twice "
                    f"(lines {first.start_mark.line + 1} and {key_node.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)
