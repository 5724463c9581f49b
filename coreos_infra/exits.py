"""The one place where errors become exit codes, for the ``coreos-infra`` command and the invoke tasks.

:func:`exit_on_errors` wraps an entry point: a :class:`CoreosInfraError` prints ``Error: <message>``
and exits 1, any other ``OSError`` prints one line naming the path and exits 1, and an interrupt
(Ctrl-C, or SIGTERM, which the block turns into :class:`KeyboardInterrupt` so that every ``finally``
and context manager cleans up) prints ``interrupted`` and exits 130. No traceback in any of these cases.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import ParamSpec, TypeVar

from coreos_infra.errors import CoreosInfraError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def os_error_line(e: OSError) -> str:
    """``<path>: <reason>`` (both paths for a rename/link), or the reason alone when no path is known."""
    reason = e.strerror or str(e)
    if e.filename is None:
        return reason
    if e.filename2 is not None:
        return f"{e.filename} -> {e.filename2}: {reason}"
    return f"{e.filename}: {reason}"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt like SIGINT does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report(e: BaseException, *, debug: bool = False) -> int | None:
    """Print the one-line message for ``e`` and return its exit code; None: not ours, let it propagate.

    With ``debug`` only interrupts are handled (errors keep their traceback).
    """
    if isinstance(e, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if debug:
        return None
    if isinstance(e, CoreosInfraError):
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_ERROR
    if isinstance(e, OSError):
        print(f"Error: {os_error_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    return None


@contextlib.contextmanager
def exit_on_errors(*, debug: bool = False) -> Iterator[None]:
    """Run the block (SIGTERM raising KeyboardInterrupt); a reported error becomes ``SystemExit(code)``.

    For invoke tasks. Nested uses are harmless: the ``SystemExit`` of the inner one passes the outer one.
    """
    try:
        with interrupts_raise():
            yield
    except BaseException as e:
        code = report(e, debug=debug)
        if code is None:
            raise
        raise SystemExit(code) from None


def exit_status(func: Callable[[], int], *, debug: bool = False) -> int:
    """Call ``func`` (SIGTERM raising KeyboardInterrupt) and return its exit code or that of its error."""
    try:
        with interrupts_raise():
            return func()
    except BaseException as e:
        code = report(e, debug=debug)
        if code is None:
            raise
        return code


def exits_on_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`exit_on_errors` for entry points such as invoke tasks."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with exit_on_errors():
            return func(*args, **kwargs)

    return wrapper
