"""Log output: the plain text format, or one JSON object per line for log collectors.

``log_format=json`` (``CALLAGENT_LOG_FORMAT=json``) turns the JSON one on. The stdlib is enough:
a record becomes ``{"time", "level", "logger", "message"}``, plus ``call_id`` when the line is
about a call (``extra={"call_id": ...}``) and ``exception`` with the traceback text when any.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_EXTRA_FIELDS = ("call_id", "org_id", "campaign_id")
"""Fields a log call may attach with ``extra=``; others stay out (they could carry personal data)."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, fmt: str = "text") -> None:
    """Root logging to stderr at ``level``, as text or JSON (as logging.basicConfig: once)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
