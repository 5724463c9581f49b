"""``--shard I/N``: split the matrix into N even parts that any CI engine can run on N machines.

Each item ranks the shards by a rendezvous (highest-random-weight) hash of ``"<shard>:site/host/target"``
and goes to the best-ranked shard that still has room: shard sizes are
``M // N`` or one more. Items are placed in the order of a hash of their key, so the
assignment depends only on the set of keys and N: adding a host moves few existing items (those whose
favourite shard the new items fill up), and going from N to N+1 shards moves about 1/(N+1) of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from coreos_infra.errors import CoreosInfraError
from coreos_infra.nightly.matrix import Item

T = TypeVar("T", bound=Item)

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/4"`` → ``Shard(2, 4)``."""
    m = _SHARD.match(text)
    if not m:
        raise CoreosInfraError(f"--shard {text!r}: expected I/N, e.g. 1/2 (shards are numbered from 1)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise CoreosInfraError(f"--shard {text!r}: I must be between 1 and N (N >= 1)")
    return Shard(index, count)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def assign(keys: Iterable[str], count: int) -> dict[str, int]:
    """The shard (1..count) of every key; loads differ by at most one."""
    unique = sorted(set(keys), key=lambda k: (_hash(k), k))
    base, extra = divmod(len(unique), count)  # `extra` shards get base + 1 items, the others base
    load = [0] * (count + 1)
    bigger = 0
    owner: dict[str, int] = {}
    for key in unique:
        ranked = sorted(range(1, count + 1), key=lambda s: (-_hash(f"{s}:{key}"), s))
        shard = next(s for s in ranked if load[s] < base or (load[s] == base and bigger < extra))
        bigger += load[shard] == base
        load[shard] += 1
        owner[key] = shard
    return owner


def shard_items(items: Sequence[T], shard: Shard | None) -> list[T]:
    """The items of ``shard`` (all of them without one), in their original order."""
    if shard is None or shard.count == 1:
        return list(items)
    owner = assign((i.key for i in items), shard.count)
    return [i for i in items if owner[i.key] == shard.index]
