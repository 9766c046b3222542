"""Content-addressed cache of built engines, and the persisted TensorRT timing cache.

An engine is reusable exactly when everything that went into it is the same: the typed model bytes, the build
configuration, the TensorRT flavour and version, and the GPU it was built for. The key hashes all of these, so a
changed model, option or library version can never be served a stale engine. Layout under the cache folder
(default ``.harness-cache/``)::

    engines/<key>.engine        the serialized engine (plan)
    engines/<key>.json          what was built: build time, sizes, the key's inputs, last use
    timing/<label>.cache        TensorRT timing cache, one per flavour+version+GPU

Every file is written atomically (temp file + rename), so a crash or Ctrl-C mid-build never leaves a half engine that
a later run would load. When the engines folder grows past ``max_bytes`` the least recently used engines are evicted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import output_error
from harness.core.fsio import atomic_write_bytes, dumps_json, locked, write_json

DEFAULT_MAX_BYTES = 4 * 2**30


def cache_key(model_sha256: str, build_config: dict[str, Any], library: str, target: str) -> str:
    """sha256 over (model bytes hash, canonical JSON of the build configuration, library label, GPU target)."""
    payload = dumps_json({"model": model_sha256, "config": build_config, "library": library, "target": target})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedEngine:
    key: str
    plan: bytes
    meta: dict[str, Any]  # build_time_ms, engine_bytes, created, model, config, library, target


class EngineCache:
    """Engines by key under ``root/engines``; ``enabled=False`` turns it into a pass-through (always a miss)."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES, enabled: bool = True) -> None:
        self.root = Path(root)
        self.engines = self.root / "engines"
        self.timing = self.root / "timing"
        self.max_bytes = max_bytes
        self.enabled = enabled

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.engines / f"{key}.engine", self.engines / f"{key}.json"

    def get(self, key: str) -> CachedEngine | None:
        if not self.enabled:
            return None
        plan_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            plan = plan_path.read_bytes()
        except (OSError, ValueError):  # missing, unreadable, not UTF-8 or not JSON: a miss, rebuilt and replaced
            return None
        if not isinstance(meta, dict):
            return None
        if len(plan) != meta.get("engine_bytes") or hashlib.sha256(plan).hexdigest() != meta.get("plan_sha256"):
            # A damaged or foreign file: never hand it to the runtime; it is rebuilt and replaced.
            return None
        with contextlib.suppress(OSError):  # a read-only cache still serves its engines
            os.utime(meta_path)  # the metadata's mtime is the "last used" time for eviction
        return CachedEngine(key, plan, meta)

    def put(self, key: str, plan: bytes, meta: dict[str, Any]) -> CachedEngine:
        meta = {
            **meta,
            "engine_bytes": len(plan),
            "plan_sha256": hashlib.sha256(plan).hexdigest(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if self.enabled:
            plan_path, meta_path = self._paths(key)
            # Plan first, metadata last: the metadata is the commit record, so a crash between the two leaves an
            # orphan plan that get() ignores and evict() removes. One lock for the folder: two runs sharing the
            # cache never interleave a write with an eviction (readers need none: every file is replaced whole).
            try:
                with locked(self.engines / "engines"):
                    atomic_write_bytes(plan_path, plan)
                    write_json(meta_path, meta)
                    self.evict(keep=key)
            except OSError as exc:
                raise output_error(exc, plan_path, "--harness-cache") from None
        return CachedEngine(key, plan, meta)

    def entries(self) -> list[tuple[float, int, str]]:
        """(last used, bytes on disk, key) for every engine, oldest first."""
        out = []
        for plan_path in self.engines.glob("*.engine"):
            key = plan_path.stem
            meta_path = self.engines / f"{key}.json"
            try:
                used = meta_path.stat().st_mtime if meta_path.exists() else 0.0
                size = plan_path.stat().st_size + (meta_path.stat().st_size if meta_path.exists() else 0)
            except OSError:
                continue
            out.append((used, size, key))
        return sorted(out)

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def evict(self, keep: str | None = None) -> list[str]:
        """Remove least recently used engines until the folder fits ``max_bytes``; returns the evicted keys."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        evicted = []
        for _, size, key in entries:
            if total <= self.max_bytes:
                break
            if key == keep:
                continue
            for path in self._paths(key):
                path.unlink(missing_ok=True)
            total -= size
            evicted.append(key)
        return evicted

    # -- timing cache -------------------------------------------------------------------------------------------
    def timing_path(self, label: str) -> Path:
        return self.timing / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}.cache"

    def read_timing(self, label: str) -> bytes:
        try:
            return self.timing_path(label).read_bytes()
        except OSError:
            return b""

    def write_timing(self, label: str, data: bytes) -> None:
        if data:
            path = self.timing_path(label)
            try:
                with locked(path):
                    atomic_write_bytes(path, data)
            except OSError as exc:
                raise output_error(exc, path, "--harness-cache") from None
