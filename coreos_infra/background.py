"""Work done in a thread while the caller goes on (a keyring being built, a file being copied)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``work()`` run in a thread; calling the object waits for its result (or raises its error)."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._result: list[T] = []
        self._error: list[BaseException] = []

        def run() -> None:
            try:
                self._result.append(work())
            except BaseException as e:  # raised in the caller's thread
                self._error.append(e)

        self._thread = threading.Thread(target=run, name="background", daemon=True)
        self._thread.start()

    def __call__(self) -> T:
        self._thread.join()
        if self._error:
            raise self._error[0]
        return self._result[0]

    def __enter__(self) -> Background[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()  # nothing outlives the call
