"""Logging helpers: one logger tree, step timing and progress bars.

Secrets (password hashes, keys, tokens) are never logged: callers log paths and digests, not contents.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

LOG = logging.getLogger("coreos_infra")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted, not to the stream of the moment the
    handler was made (an entry point called in-process, as tests do, must not keep a closed stream)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(*, debug: bool = False) -> None:
    """Configure the root library logger once, from an entry point (never from library code)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.handlers[:] = [handler]
    LOG.setLevel(logging.DEBUG if debug else logging.INFO)
    LOG.propagate = False


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """Log ``message``, run the block and log how long it took."""
    LOG.info("‣ %s", message)
    start = time.monotonic()
    yield
    LOG.info("  done in %.1f s", time.monotonic() - start)


def progress(total: int | None, description: str, *, unit: str = "B") -> Any:
    """A tqdm progress bar on stderr, silent when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024 if unit == "B" else 1000,
        disable=not sys.stderr.isatty(),
        file=sys.stderr,
        leave=False,
    )
