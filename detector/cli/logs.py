"""Structured logging: ``--log-format json`` for machines, short text for people.

Log records never carry payloads or secrets: shells log counts, reasons and identifiers only.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

__all__ = ["setup_logging", "JsonFormatter"]

_STD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                d[k] = v
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(d, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_")}
        s = f"{record.levelname.lower():7s} {record.name}: {record.getMessage()}"
        if extra:
            s += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            s += "\n" + self.formatException(record.exc_info)
        return s


def setup_logging(fmt: str = "text", quiet: bool = False, level: int = logging.INFO) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(logging.WARNING if quiet else level)
