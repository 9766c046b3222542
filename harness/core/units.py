"""Byte sizes as people write them: ``256M``, ``1.5G``, ``512MiB`` in suites and options, ``256M`` in case ids.

Binary units throughout (1M = 2**20 bytes), as TensorRT's memory-pool limits and trtexec's ``--memPoolSize`` count.
"""

from __future__ import annotations

import re
from typing import Any

from harness.core.errors import HarnessError

SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
UNIT_BYTES = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(value: Any, what: str = "size") -> int:
    """Bytes from an int or text such as ``256M``, ``1.5G``, ``512MiB`` (binary units: 1M = 2**20 bytes)."""
    if isinstance(value, bool):
        raise HarnessError(f"{what}: expected a size such as 256M or 1G, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise HarnessError(f"{what}: a size cannot be negative ({value})")
        return value
    match = SIZE_PATTERN.match(str(value))
    if not match:
        raise HarnessError(f"{what}: expected a size such as 256M, 1G or a byte count, got {value!r}")
    return int(float(match.group(1)) * UNIT_BYTES[match.group(2).lower()])


def format_size(num_bytes: int) -> str:
    """The shortest exact label: ``256M``, ``1G``, ``1536M``, ``4096`` (used in case ids)."""
    for unit, factor in (("T", 2**40), ("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if num_bytes >= factor and num_bytes % factor == 0:
            return f"{num_bytes // factor}{unit}"
    return str(num_bytes)
