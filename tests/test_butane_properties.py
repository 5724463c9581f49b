"""Property tests: generated Butane configs translate to Ignition that validates (ours and Debian's real
``ignition-validate``) and round-trips through ``ignition.parse``/``dumps``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from _ignition_oracle import IGNITION_VALIDATE, oracle_can_check, run_ignition_validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coreos_infra import ignition
from coreos_infra.butane import translate

VERSIONS = ["1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0", "1.7.0"]
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10).filter(
    lambda s: s[0].isalpha()
)
# text including characters Go escapes specially and non-ASCII
TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00\x85\u2028\u2029\ufeff"
    ),
    max_size=300,
)
MODES = st.sampled_from([0o644, 0o600, 0o755, 0o700, 0o640, 0o444, 0o750])


def _unique_paths(draw: Any, n: int, prefix: str) -> list[str]:
    names = draw(st.lists(NAME, min_size=n, max_size=n, unique=True))
    return [f"{prefix}/{name}" for name in names]


@st.composite
def butane_configs(draw: Any) -> tuple[str, dict[str, Any]]:
    version = draw(st.sampled_from(VERSIONS))
    minor = int(version.split(".")[1])
    cfg: dict[str, Any] = {"variant": "fcos", "version": version}
    storage: dict[str, Any] = {}
    n_files = draw(st.integers(0, 4))
    n_dirs = draw(st.integers(0, 2))
    n_links = draw(st.integers(0, 2))
    paths = _unique_paths(draw, n_files + n_dirs + n_links, "/etc/gen")
    files = []
    for p in paths[:n_files]:
        f: dict[str, Any] = {"path": p, "mode": draw(MODES)}
        kind = draw(st.sampled_from(["inline", "source", "none", "append"]))
        if kind == "inline":
            f["contents"] = {"inline": draw(TEXT)}
        elif kind == "source":
            f["contents"] = {"source": "https://example.com/" + draw(NAME)}
        elif kind == "append":
            f["append"] = [{"inline": draw(TEXT)} for _ in range(draw(st.integers(1, 2)))]
        if draw(st.booleans()):
            f["user"] = {"name": draw(NAME)}
        files.append(f)
    if files:
        storage["files"] = files
    if n_dirs:
        storage["directories"] = [{"path": p, "mode": 0o755} for p in paths[n_files : n_files + n_dirs]]
    if n_links:
        storage["links"] = [{"path": p, "target": "/usr/bin/true"} for p in paths[n_files + n_dirs :]]
    if draw(st.booleans()):
        mount_names = draw(st.lists(NAME, min_size=1, max_size=2, unique=True))
        storage["filesystems"] = [
            {
                "device": f"/dev/disk/by-label/{m}",
                "format": draw(st.sampled_from(["ext4", "xfs"])),
                "path": f"/var/srv/{m}",
                "with_mount_unit": True,
                "mount_options": draw(st.lists(st.sampled_from(["ro", "noatime", "nodev"]), max_size=2)),
            }
            for m in mount_names
        ]
    if minor >= 2 and draw(st.booleans()):
        storage["luks"] = [{"name": "data", "device": "/dev/vdb", "clevis": {"tpm2": True}}]
    if storage:
        cfg["storage"] = storage
    units = []
    for name in draw(st.lists(NAME, max_size=3, unique=True)):
        unit: dict[str, Any] = {"name": f"{name}.service"}
        if draw(st.booleans()):
            unit["enabled"] = True
            unit["contents"] = "[Service]\nExecStart=/usr/bin/true\n[Install]\nWantedBy=multi-user.target\n"
        if draw(st.booleans()):
            unit["dropins"] = [{"name": "10-x.conf", "contents": "[Service]\nEnvironment=A=1\n"}]
        units.append(unit)
    if units:
        cfg["systemd"] = {"units": units}
    users = draw(st.lists(NAME, max_size=2, unique=True))
    if users:
        cfg["passwd"] = {
            "users": [
                {
                    "name": u,
                    "ssh_authorized_keys": draw(
                        st.lists(
                            st.from_regex(r"ssh-ed25519 [A-Za-z0-9]{8}", fullmatch=True),
                            max_size=2,
                            unique=True,
                        )
                    ),
                    "groups": ["wheel"],
                }
                for u in users
            ]
        }
    if minor >= 4 and draw(st.booleans()):
        kargs = draw(
            st.lists(st.from_regex(r"[a-z]{2,6}(=[0-9]{1,3})?", fullmatch=True), max_size=4, unique=True)
        )
        cut = draw(st.integers(0, len(kargs)))
        cfg["kernel_arguments"] = {"should_exist": kargs[:cut], "should_not_exist": kargs[cut:]}
    if minor >= 3 and draw(st.booleans()):
        bd: dict[str, Any] = {"layout": draw(st.sampled_from(["x86_64", "aarch64", "ppc64le"]))}
        if draw(st.booleans()):
            bd["luks"] = {"tpm2": True}
        if draw(st.booleans()):
            bd["mirror"] = {"devices": ["/dev/vda", "/dev/vdb"]}
        cfg["boot_device"] = bd
    if minor >= 5 and draw(st.booleans()):
        cfg["grub"] = {"users": [{"name": "root", "password_hash": "grub.pbkdf2.sha512.10000.ABCDEF"}]}
    if draw(st.booleans()):
        cfg["ignition"] = {"security": {"tls": {"certificate_authorities": [{"inline": draw(TEXT) or "x"}]}}}
    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), cfg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(butane_configs())
def test_generated_configs_translate_and_validate(case: tuple[str, dict[str, Any]]) -> None:
    text, cfg = case
    result = translate(text.encode())
    config = result.config
    assert config["ignition"]["version"].startswith("3.")
    # our own validation finds no error; warnings would have been reported by translate
    assert not [r for r in ignition.validate(config) if r.is_error]
    # round trip through parse/dumps, compact and pretty
    for pretty in (False, True):
        out = result.to_json(pretty=pretty)
        assert out.endswith(b"\n") and not out.endswith(b"\n\n")
        parsed = ignition.parse(out)
        assert parsed == config
        assert ignition.dumps(parsed, pretty=pretty) == out
    # what went in comes out
    for i, f in enumerate((cfg.get("storage") or {}).get("files") or []):
        out_file = next(x for x in config["storage"]["files"] if x["path"] == f["path"])
        assert out_file["mode"] == f["mode"], i
        if "inline" in (f.get("contents") or {}):
            src = out_file["contents"]["source"]
            data = ignition.decode_source(src, out_file["contents"].get("compression"))
            assert data == f["contents"]["inline"].encode()
    names = {u["name"] for u in (config.get("systemd") or {}).get("units") or []}
    for fs in (cfg.get("storage") or {}).get("filesystems") or []:
        assert fs["path"][1:].replace("-", "\\x2d").replace("/", "-") + ".mount" in names
    if oracle_can_check(config):
        r = run_ignition_validate(config)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "error" not in r.stdout.lower()


@settings(max_examples=40, deadline=None)
@given(TEXT, st.sampled_from([None, ""]))
def test_inline_contents_round_trip(text: str, compression: str | None) -> None:
    contents: dict[str, Any] = {"inline": text}
    if compression is not None:
        contents["compression"] = compression
    doc = {
        "variant": "fcos",
        "version": "1.6.0",
        "storage": {"files": [{"path": "/f", "contents": contents}]},
    }
    result = translate(yaml.safe_dump(doc, allow_unicode=True).encode())
    c = result.config["storage"]["files"][0]["contents"]
    assert c["compression"] in ("", "gzip")
    assert ignition.decode_source(c["source"], c["compression"]) == text.encode()


@pytest.mark.skipif(IGNITION_VALIDATE is None, reason="ignition-validate not installed")
def test_oracle_rejects_what_we_reject() -> None:
    """Sanity: the oracle and our validator agree on a few invalid configs."""
    bad = [
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "rel"}]}},
        {"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a"}, {"path": "/a"}]}},
        {"ignition": {"version": "3.3.0"}, "systemd": {"units": [{"name": "x.bad"}]}},
        {
            "ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/a", "contents": {"source": "ftp://x"}}]},
        },
        {
            "ignition": {"version": "3.2.0"},
            "storage": {"filesystems": [{"device": "/dev/a", "format": "zfs"}]},
        },
        {"ignition": {"version": "3.3.0"}, "storage": {"disks": [{"device": "/dev/a", "partitions": [{}]}]}},
        {
            "ignition": {"version": "3.1.0"},
            "storage": {"raid": [{"name": "md", "level": "raid9", "devices": ["/dev/a"]}]},
        },
    ]
    for config in bad:
        ours = [r for r in ignition.validate(config) if r.is_error]
        theirs = run_ignition_validate(config)
        assert ours, config
        assert theirs.returncode == 1, (config, theirs.stdout)
        assert ours[0].message in theirs.stdout + theirs.stderr, (ours, theirs.stdout)
