"""Structured logs: one JSON object a line, extra fields kept."""

from __future__ import annotations

import json
import logging

import pytest

from vigil.core.logs import setup_logging


def test_json_logs_keep_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("info", "json")
        logging.getLogger("vigil.test").info("hello %s", "there", extra={"tenant": "t1"})
        logging.getLogger("vigil.test").debug("not at info")
        (line,) = capsys.readouterr().err.strip().splitlines()
        doc = json.loads(line)
        assert (doc["level"], doc["logger"], doc["msg"], doc["tenant"]) == (
            "INFO", "vigil.test", "hello there", "t1")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
