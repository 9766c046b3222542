"""Files that must survive: atomic writes (a crash or Ctrl-C leaves either the old file or the new one, never half
of one) and strict JSON that still carries NaN and infinities (:func:`dumps_json` / :func:`loads_json`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates the file 0600; give the result the permissions a plain open() would (0666 less umask).
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        # Includes KeyboardInterrupt: remove the partial temporary file, keep the old target.
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# -- JSON with non-finite numbers ------------------------------------------------------------------------------------
# JSON has no NaN or Infinity (RFC 8259, section 6), and strict parsers (browsers' JSON.parse, jq) refuse Python's
# ``NaN`` literal. A measurement, an accuracy number or a hand-edited baseline can still hold one, and no write may
# fail for it. So every document is strict JSON: a non-finite number is written as ``null``, and the document's
# top-level ``nonfinite`` object maps the JSON Pointer (RFC 6901) of each such value to "NaN", "Infinity" or
# "-Infinity". :func:`loads_json` puts the numbers back; any other reader sees ``null`` and can find out why.
NONFINITE_KEY = "nonfinite"
_NONFINITE_TEXT = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _nonfinite_text(value: float) -> str:
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _pointer_token(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _plain(value: Any) -> Any:
    """What ``json`` cannot write, as what it can: numpy scalars and arrays as numbers and lists, paths as text,
    sets as sorted lists, anything else as its text, so a record never fails to be written for one odd value."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _encode(value: Any, pointer: str, found: dict[str, str]) -> Any:
    """``value`` with every non-finite float replaced by None, recording where in ``found``."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found[pointer] = _nonfinite_text(value)
        return None
    if isinstance(value, dict):
        return {k: _encode(v, f"{pointer}/{_pointer_token(k)}", found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{pointer}/{i}", found) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, int)):
        return value
    return _encode(_plain(value), pointer, found)


def dumps_json(data: Any) -> str:
    """Strict JSON made for diffs (sorted keys, two-space indent, trailing newline); non-finite numbers are written
    as ``null`` and listed under the top-level ``nonfinite`` key (a top-level mapping is required to hold them)."""
    try:  # the common case: every number is finite, no copy is made
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False, default=_plain) + "\n"
    except ValueError:
        pass
    found: dict[str, str] = {}
    encoded = _encode(data, "", found)
    if isinstance(encoded, dict):
        encoded = {**encoded, NONFINITE_KEY: found}
    return json.dumps(encoded, indent=2, sort_keys=True, allow_nan=False, default=_plain) + "\n"


def loads_json(text: str | bytes, *, literals: bool = True) -> Any:
    """Parse a document written by :func:`dumps_json`, with its non-finite numbers restored.

    ``literals``: also accept the non-standard ``NaN`` / ``Infinity`` / ``-Infinity`` tokens (files edited by hand or
    written by other tools); False refuses them with ``ValueError``. Raises ``json.JSONDecodeError`` (a
    ``ValueError``) for text that is not JSON."""
    data = json.loads(text) if literals else json.loads(text, parse_constant=_refuse_constant)
    if isinstance(data, dict) and isinstance(data.get(NONFINITE_KEY), dict):
        data = dict(data)
        for pointer, name in data.pop(NONFINITE_KEY).items():
            if name in _NONFINITE_TEXT and isinstance(pointer, str):
                _restore(data, pointer, _NONFINITE_TEXT[name])
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; write null (see harness.core.fsio)")


def _restore(data: Any, pointer: str, value: float) -> None:
    """Set the ``null`` at ``pointer`` back to ``value``; a pointer that leads nowhere (a hand edit) is ignored."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    if not tokens:
        return
    node = data
    for token in tokens[:-1]:
        node = _child(node, token)
        if node is None:
            return
    last = tokens[-1]
    if isinstance(node, dict) and last in node and node[last] is None:
        node[last] = value
    elif isinstance(node, list) and last.isdigit() and int(last) < len(node) and node[int(last)] is None:
        node[int(last)] = value


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


def read_json(path: str | os.PathLike[str], *, literals: bool = True) -> Any:
    """:func:`loads_json` of a UTF-8 file (``UnicodeDecodeError``, ``OSError`` and ``ValueError`` pass through)."""
    return loads_json(Path(path).read_bytes().decode("utf-8"), literals=literals)


def read_user_json(path: Path, label: str, expected: str, missing: str) -> Any:
    """:func:`read_json` of a file a user named, every way it can be unusable made one :class:`HarnessError` line:
    ``label`` names it (``--baseline x.json``), ``expected`` is what to pass instead (``a results.json``),
    ``missing`` what to do when it does not exist."""
    try:
        return read_json(path)
    except FileNotFoundError:
        raise HarnessError(f"{label}: {missing}") from None
    except IsADirectoryError:
        raise HarnessError(f"{label}: is a folder; pass {expected} inside it") from None
    except OSError as exc:
        raise HarnessError(f"{label}: cannot be read ({exc.strerror or exc}); check its permissions") from None
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{label}: not UTF-8 text (byte {exc.start}); pass {expected}") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{label}: not valid JSON (line {exc.lineno}): {exc.msg}") from None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, dumps_json(data))


# -- shared files: locks and output folders --------------------------------------------------------------------------
LOCK_TIMEOUT_S = 600.0  # a writer holding a lock this long is stuck (a build takes minutes; a JSON write milliseconds)


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file that guards ``path``: named after the file's absolute path, in the temporary folder, so the
    data folders (committed baselines, caches) hold only data and every process of this user on this host that
    writes the same file takes the same lock."""
    target = Path(path).resolve()
    digest = hashlib.sha256(str(target).encode("utf-8")).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"harness-locks-{_uid()}" / f"{target.name}.{digest}.lock"


def _uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "user"


def locked(path: str | os.PathLike[str], timeout_s: float = LOCK_TIMEOUT_S) -> Any:
    """An exclusive inter-process lock on ``path`` for a read-modify-write (``with locked(p): ...``).

    Uses ``filelock.FileLock`` (an ``fcntl.flock`` on POSIX, released by the kernel when a holder dies, so a killed
    run never leaves a stale lock). The lock lives in a file of its own (:func:`lock_path`) because the data file is
    replaced by :func:`atomic_write_bytes`, and a lock on a replaced inode would guard nothing.
    """
    from filelock import FileLock

    target = lock_path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return FileLock(str(target), timeout=timeout_s)


def writable_dir_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot take output files (None when it can): it is a file, it cannot be created, or a file
    cannot be written in it. Probed by creating a file, since ``os.access`` says yes to root on read-only mounts
    and knows nothing of a full disk's quota."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        return "is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".harness-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc})"
    return None


def require_writable(folder: str | os.PathLike[str], option: str) -> None:
    """Refuse an output folder that cannot take files before any work is done: a :class:`HarnessError` naming the
    command's ``option`` (one line, exit status 2 for the CLI)."""
    problem = writable_dir_problem(folder)
    if problem:
        raise HarnessError(f"{option} {folder}: {problem}; point {option} at a writable folder")
