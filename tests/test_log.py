"""The library's log handler follows ``sys.stderr``: an entry point run in-process (as the CLI and task tests
do, with pytest swapping stderr per test) must not leave a handler bound to a stream that is closed later."""

from __future__ import annotations

import io
import logging

import pytest

from coreos_infra.log import LOG, setup_logging


def test_handler_writes_to_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    setup_logging()
    first.close()  # what pytest does to the capture stream of a finished test
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    errors: list[str] = []
    monkeypatch.setattr(logging.Handler, "handleError", lambda self, record: errors.append(record.msg))
    LOG.info("after the first stream closed")
    assert second.getvalue() == "after the first stream closed\n"
    assert errors == []
