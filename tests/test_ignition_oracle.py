"""Differential test: our Ignition validator against Debian's real ``ignition-validate`` (2.14.0).

Random configs for spec 3.1.0–3.3.0 (which 2.14.0 validates natively) are checked by both; the error
entries (path and message) must be the same, except for the documented rules where Ignition 2.14.0 and
the Ignition 2.26 embedded in Butane 0.29 differ (see the spec, section 3.4).
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from _ignition_oracle import IGNITION_VALIDATE, run_ignition_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coreos_infra import ignition
from coreos_infra.ignition.types import TYPES, ListOf, minor

pytestmark = pytest.mark.skipif(IGNITION_VALIDATE is None, reason="ignition-validate not installed")

STRINGS = [
    "", "/a", "/a/b", "/var/x", "a", "gzip", "data:,x", "data:;base64,eA==", "https://e/x", "http://e",
    "x.service", "a.conf", "/dev/sda", "/dev/sdb", "raid1", "xfs", "ext4", "swap", "vfat", "none", "linear",
    "root", "sha512-" + "0" * 128, "[Unit]\n", "[Install]\nWantedBy=x\n", "tpm2", "s3://b/k", "tftp://x/y",
    "http://a b", "[Unit]x\n", "[Unit]\nfoo\n",
]  # fmt: skip

# Rules where Ignition 2.14.0 differs from the Ignition Butane 0.29 embeds (2.26); ours follow 2.26.
KNOWN_DIVERGENCES = re.compile(
    r"link target is required|source is required|invalid key-file source"
    r"|shouldExist is false for a partition|custom clevis"
    r"|^\$\.ignition\.config\.merge|^\$\.ignition\.security\.tls"
)


def random_config(rng: random.Random, version: str) -> dict[str, Any]:
    spec_minor = minor(version)

    def gen(t: str | ListOf) -> Any:
        if isinstance(t, ListOf):
            return [gen(t.item) for _ in range(rng.randint(0, 2))]
        if t == "str":
            return rng.choice(STRINGS)
        if t == "int":
            return rng.choice([0, 1, 2, 420, 493, 8192])
        if t == "bool":
            return rng.choice([True, False])
        return {f.key: gen(f.type) for f in TYPES[t] if f.since <= spec_minor and rng.random() < 0.3}

    config = gen("Config")
    config.setdefault("ignition", {})["version"] = version
    return dict(config)


def _entries(lines: list[str]) -> set[str]:
    return {line for line in lines if not KNOWN_DIVERGENCES.search(line)}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.sampled_from(["3.1.0", "3.2.0", "3.3.0"]))
def test_validator_agrees_with_ignition_validate(seed: int, version: str) -> None:
    config = random_config(random.Random(seed), version)
    ours = _entries(
        [
            f"{ignition.format_path(r.path or ())}: {r.message}"
            for r in ignition.validate(config)
            if r.is_error
        ]
    )
    r = run_ignition_validate(config)
    theirs = _entries(
        [
            re.sub(r"^error at (\S+?)(, line \d+ col \d+)?: ", r"\1: ", line)
            for line in r.stdout.splitlines()
            if line.startswith("error at ")
        ]
    )
    assert ours == theirs, config
