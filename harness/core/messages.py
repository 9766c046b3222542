"""Exceptions from runtimes and converters, made into the one-line causes the harness's own errors quote."""

from __future__ import annotations

import re


def condensed(exc: BaseException, limit: int = 600) -> str:
    """An exception's message as one line: runtime prefixes and stack-like lines dropped, every cause line kept."""
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc)) or type(exc).__name__
    text = re.sub(r"\S*onnxruntime_src\S*:\d+\s+(?:[\w:<>,~*& ]+\([^)]*\)\s*)?", "", text)  # C++ source locations
    noise = ("Traceback", 'File "', "^", "Stacktrace", "~")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(noise)]
    one = re.sub(r"\s+", " ", "; ".join(lines))
    return one if len(one) <= limit else one[: limit - 1] + "…"
