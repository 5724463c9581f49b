"""The one way out to other programs.

Every external command goes through :func:`run` (or :func:`spawn` for long-lived children such as
QEMU). It logs the exact argv at debug level, starts the child with stdin from /dev/null unless input is
given, and turns a failure into a :class:`ToolError` naming the command, its exit code and the tail of
its stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from coreos_infra.errors import ToolError

LOG = logging.getLogger("coreos_infra.run")

PathString = str | os.PathLike[str]


def find_binary(name: str, *, reason: str | None = None, extra_paths: Sequence[str] = ()) -> str:
    """Return the absolute path of program ``name`` or raise a ToolError that says why it is needed."""
    found = shutil.which(name)
    if found is None:
        for directory in extra_paths:
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        why = f", which is required to {reason}" if reason else ""
        raise ToolError(
            f"could not find '{name}'{why}",
            hint="run ./scripts/setup to install the Debian packages the project needs",
        )
    return found


def _argv(cmd: Sequence[PathString]) -> list[str]:
    return [os.fspath(c) for c in cmd]


def run(
    cmd: Sequence[PathString],
    *,
    check: bool = True,
    input: bytes | None = None,
    capture: bool = False,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: PathString | None = None,
    timeout: float | None = None,
    ok_codes: Sequence[int] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cmd`` and wait for it.

    ``capture=True`` captures stdout and stderr (as bytes). Otherwise stdout is inherited (or goes to
    ``stdout``) and stderr is captured so a failure can show it. ``env`` is added to the current
    environment with ``LC_ALL=C.UTF-8``.
    """
    argv = _argv(cmd)
    LOG.debug("+ %s", shlex.join(argv))
    full_env = dict(os.environ)
    full_env["LC_ALL"] = "C.UTF-8"
    if env:
        full_env.update(env)
    try:
        result = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else stdout,
            stderr=subprocess.PIPE if (capture or stderr is None) else stderr,
            env=full_env,
            cwd=os.fspath(cwd) if cwd is not None else None,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as e:
        raise ToolError(
            f"could not find '{argv[0]}'",
            hint="run ./scripts/setup to install the Debian packages the project needs",
        ) from e
    except subprocess.TimeoutExpired as e:
        raise ToolError(f"command timed out after {timeout} s: {shlex.join(argv)}") from e
    if check and result.returncode not in ok_codes:
        err = (result.stderr or b"").decode(errors="replace").strip()
        tail = "\n".join(err.splitlines()[-15:])
        raise ToolError(
            f"command failed with exit code {result.returncode}: {shlex.join(argv)}"
            + (f"\n{tail}" if tail else "")
        )
    return result


@contextlib.contextmanager
def spawn(
    cmd: Sequence[PathString],
    *,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.STDOUT,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: PathString | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a long-lived child; it is terminated (then killed) when the block exits."""
    argv = _argv(cmd)
    LOG.debug("+ %s &", shlex.join(argv))
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.Popen(
            argv, stdout=stdout, stderr=stderr, stdin=stdin, env=full_env,
            cwd=os.fspath(cwd) if cwd is not None else None,
        )  # fmt: skip
    except FileNotFoundError as e:
        raise ToolError(f"could not find '{argv[0]}'") from e
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                stream.close()
