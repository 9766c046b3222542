"""How a suite mistake is worded: the key path (``models[0].inputs.x``), what was found instead, the nearest
allowed name. Every part of the suite schema words its one-line errors with these, so they read alike."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

# Makes the exception for a mistake at a key path: (key, problem) -> SuiteError naming the suite file.
Fail = Callable[[str, str], Exception]


def join_key(key: str, name: Any) -> str:
    """``models[0]`` + ``path`` -> ``models[0].path``; a top-level key stands alone."""
    return str(name) if key == "(top)" else f"{key}.{name}"


def kind_of(value: Any) -> str:
    """What a value is, in the suite's words: ``a mapping``, ``a list``, ``text``, ``nothing``..."""
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false"}.get(type(value), type(value).__name__)


def is_number(value: Any) -> bool:
    """An int or a float; YAML's ``true``/``false`` are not numbers."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def nearest(value: Any, choices: Iterable[str], otherwise: str) -> str:
    """``did you mean 'x'?`` for the closest choice, else ``otherwise`` (e.g. ``use one of a, b``)."""
    near = difflib.get_close_matches(str(value), list(choices), n=1)
    return f"did you mean '{near[0]}'?" if near else otherwise


def check_known(raw: dict[str, Any], key: str, allowed: tuple[str, ...], fail: Fail) -> None:
    """Refuse the first key of ``raw`` that is not in ``allowed``, naming the nearest one."""
    for name in raw:
        if name not in allowed:
            hint = nearest(name, allowed, f"allowed keys: {', '.join(allowed)}")
            raise fail(join_key(key, name), f"unknown key; {hint}")
