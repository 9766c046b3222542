"""Errors that reach the user as one line, without a Python traceback.

Three kinds of trouble end a command, and each is shown differently:

- a mistake the user can fix (:class:`HarnessError`, :class:`SuiteError`): one line saying what and what to do;
- the environment refusing a write (:class:`OutputError`: a full disk, a read-only folder): one line naming the path;
- a defect of the harness itself: one line saying where :func:`log_internal_error` kept the traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

ERROR_LOG = "harness-error.log"


class HarnessError(Exception):
    """A mistake the user can fix: the message says what is wrong and what to do."""


class SuiteError(HarnessError):
    """A suite file that cannot be used; the message names the file and the key."""


class OutputError(HarnessError):
    """A file the run must write could not be written (disk full, permissions, read-only file system)."""


class CaseSkipped(Exception):
    """A case that cannot run in this configuration; the message is the reason shown by pytest."""


_ADVICE = {
    errno.ENOSPC: "free disk space or point the option at another disk",
    errno.EDQUOT: "free space under your quota or point the option at another disk",
    errno.EROFS: "the file system is read-only; point the option at a writable folder",
    errno.EACCES: "make it writable for this user or point the option at a writable folder",
    errno.EPERM: "make it writable for this user or point the option at a writable folder",
    errno.ENOTDIR: "a part of the path is a file; point the option at a folder",
    errno.EISDIR: "a folder has that name; remove it or choose another file name",
}


def output_error(exc: OSError, path: str | os.PathLike[str], option: str = "") -> OutputError:
    """``exc`` (raised while writing ``path``) as one line: the path, the system's reason and what to do."""
    reason = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or 0, "check the folder and the disk")
    if option:
        advice = advice.replace("the option", option)
    return OutputError(f"{path}: cannot write ({reason}); {advice}")


def log_internal_error(exc: BaseException, folder: str | os.PathLike[str] | None = None) -> Path:
    """Append ``exc``'s traceback to ``<folder>/harness-error.log`` (a temporary folder when that cannot be
    written) and return the log's path, so a defect of the harness costs the user one line, not the evidence."""
    text = f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} pid {os.getpid()}\n" + "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__)
    )
    for base in ([Path(folder)] if folder is not None else []) + [Path(tempfile.gettempdir())]:
        log = base / ERROR_LOG
        try:
            base.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(text)
        except OSError:
            continue
        return log
    return Path(os.devnull)


def internal_error_line(exc: BaseException, log: Path) -> str:
    """The one line shown for a defect of the harness: what broke and where the traceback is."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"internal error: {type(exc).__name__}: {first} (traceback in {log}; please report it with that file attached)"
    )
