"""Log formatting: JSON lines in production, readable text in development; request ids in every line. The JSON
lines are python-json-logger's (orjson) formatter under our field names.

And the edge filters: client errors (4xx) logged as one WARNING line without traceback, and repeated lines of
one cause throttled (a fuzzer or a socket flood must not write a traceback per request)."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, LogData, merge_record_extra
from pythonjsonlogger.orjson import OrjsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed through `extra=` and is a structured field. The request
# id has its own place in a line; uvicorn's `color_message` repeats the message with terminal colours.
_NOT_FIELDS = frozenset({*RESERVED_ATTRS, "request_id", "color_message"})


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(OrjsonFormatter):
    """One JSON object per line: ts (UTC, milliseconds), level, logger, message, request_id when there is one, the
    structured fields passed through `extra=`, then exc_info. Values JSON has no type for are written as str()."""

    converter = staticmethod(time.gmtime)
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message", "request_id"],
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            reserved_attrs=sorted(_NOT_FIELDS),
            json_default=str,
        )

    def process_log_record(self, log_data: LogData) -> LogData:
        if not log_data.get("request_id"):
            del log_data["request_id"]
        if "exc_info" in log_data:  # the traceback last, after the fields
            log_data["exc_info"] = log_data.pop("exc_info")
        return log_data


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        request_id = getattr(record, "request_id", None)
        fields = merge_record_extra(record, {}, reserved=_NOT_FIELDS)
        if request_id:
            fields = {"request_id": request_id, **fields}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


# Causes remembered at most; beyond this, causes idle for a full interval are forgotten (their pending counts too).
_MAX_CAUSES = 10_000


def _exception_site(exc_info: Any) -> tuple[str, str, int] | None:
    """(exception type, file, line) of the innermost frame: what distinguishes one bug from another."""
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return None
    exc_type, _, tb = exc_info
    if tb is None:
        return (exc_type.__qualname__, "", 0)
    while tb.tb_next is not None:
        tb = tb.tb_next
    return (exc_type.__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)


def throttle_cause(record: logging.LogRecord) -> tuple[object, ...]:
    """What makes two records "the same line": logger, level, HTTP status when the record has one, and the raise
    site of the exception when there is one, else the message template (never the formatted message: its
    arguments differ per request). Django logs SuspiciousOperation with the client's text as the template
    ("Invalid HTTP_HOST header: 'x'..."), so the raise site must win over the template."""
    site = _exception_site(record.exc_info)
    what: object = site if site is not None else str(record.msg)[:200]
    return (record.name, record.levelno, getattr(record, "status_code", None), what)


class ThrottleFilter(logging.Filter):
    """Let one record per cause through every `interval_sec`; the next one through carries `suppressed=N`
    (a structured field both formatters print) for the records dropped in between. 0 disables throttling.

    Attach it to the loggers that emit the records (not only to handlers), so every handler — and pytest's
    caplog — sees the same throttled stream."""

    def __init__(self, interval_sec: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_sec = interval_sec
        self._clock = clock
        self._lock = threading.Lock()  # records arrive from the event loop and from sync_to_async threads
        self._last: dict[tuple[object, ...], float] = {}
        self._suppressed: dict[tuple[object, ...], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.interval_sec <= 0:
            return True
        cause = throttle_cause(record)
        now = self._clock()
        with self._lock:
            last = self._last.get(cause)
            if last is not None and now - last < self.interval_sec:
                self._suppressed[cause] = self._suppressed.get(cause, 0) + 1
                return False
            if len(self._last) >= _MAX_CAUSES:
                self._forget_idle(now)
            self._last[cause] = now
            suppressed = self._suppressed.pop(cause, 0)
        if suppressed:
            record.suppressed = suppressed
        return True

    def _forget_idle(self, now: float) -> None:
        for cause in [c for c, t in self._last.items() if now - t >= self.interval_sec]:
            del self._last[cause]
            self._suppressed.pop(cause, None)
        if len(self._last) >= _MAX_CAUSES:  # that many distinct causes at once: start over rather than grow
            self._last.clear()
            self._suppressed.clear()

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
            self._suppressed.clear()


def is_client_error(record: logging.LogRecord) -> bool:
    status = getattr(record, "status_code", None)
    return isinstance(status, int) and 400 <= status < 500


class ClientErrorFilter(logging.Filter):
    """Django logs client mistakes with a traceback: a bad Host header (django.security.DisallowedHost, ERROR),
    a malformed multipart body, a 404 or 403 (django.request). A 4xx is the client's doing, not a bug: log it
    as one WARNING line, naming the exception type, without the traceback. 5xx records are left alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not is_client_error(record):
            return True
        if isinstance(record.exc_info, tuple) and record.exc_info[0] is not None:
            record.error = record.exc_info[0].__name__
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True
