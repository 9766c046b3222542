"""The TensorRT logger of this process, and the messages it kept.

TensorRT keeps the first logger it is given and ignores later ones, so the builder (:mod:`harness.trt.backend`) and
the runtime (:mod:`harness.trt.runner`) share one, made on first use by :func:`tensorrt_log`. Messages go to Python
logging (``harness.tensorrt``), and the last ones are kept numbered so a failed build can quote the errors TensorRT
logged while it ran.
"""

from __future__ import annotations

import collections
import functools
import logging
from typing import TYPE_CHECKING

from harness.trt import compat as trt_compat

if TYPE_CHECKING:
    import tensorrt as trt  # the stubs: every call on ``trt`` below is checked against the TensorRT 10.13 API
else:
    trt = trt_compat.module_proxy  # the module actually loaded (tensorrt, tensorrt_rtx or tensorrt_rtx_bindings)

log = logging.getLogger("harness.tensorrt")
KEPT_MESSAGES = 200
ERRORS = ("ERROR", "INTERNAL_ERROR")


class TensorRTLog:
    """TensorRT's messages: forwarded to Python logging, the last :data:`KEPT_MESSAGES` kept with their number."""

    def __init__(self) -> None:
        self.recent: collections.deque[tuple[int, str, str]] = collections.deque(maxlen=KEPT_MESSAGES)
        self.count = 0
        self.logger = self._make_logger()

    def _make_logger(self) -> trt.ILogger:
        messages = self

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
                messages.add(str(severity).rsplit(".", 1)[-1], msg)

        return Logger()

    def add(self, severity: str, msg: str) -> None:
        self.recent.append((self.count, severity, msg))
        self.count += 1
        if severity in ERRORS:
            log.error("TensorRT: %s", msg)
        elif severity == "WARNING":
            log.warning("TensorRT: %s", msg)
        else:
            log.debug("TensorRT: %s", msg)

    def mark(self) -> int:
        """A position; :meth:`errors_since` returns the errors logged after it."""
        return self.count

    def errors_since(self, mark: int) -> list[str]:
        return [msg for i, severity, msg in self.recent if i >= mark and severity in ERRORS]


@functools.cache
def tensorrt_log() -> TensorRTLog:
    """The one log of this process (TensorRT ignores every logger after the first); needs TensorRT loaded."""
    return TensorRTLog()
