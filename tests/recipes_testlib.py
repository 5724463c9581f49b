"""Helpers for the recipes/overlays/render tests: throw-away projects and Ignition file access."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

from coreos_infra.ignition.urls import decode_data_url

REPO = Path(__file__).resolve().parent.parent

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINyRswlDyqK6lbhiHSFxCse07UjLXoVgYrsrVS9rdnR/ t@example"

# A small valid site; the error tests change one line and assert the exact position. Line numbers:
#  1 domain, 2 admins, 3 - name: core, 4 ssh_keys, 5 networks, 6 - name: lan, 7 cidr, 8 gateway, 9 dns,
# 10 forwarders, 11 updates, 12 strategy, 13 windows, 14 Mon window, 15 Tue window, 16 hosts,
# 17 - name: a, 18 roles, 19 mac, 20 address, 21 - name: b, 22 roles, 23 mac, 24 address
SITE = f"""\
domain: t.example
admins:
  - name: core
    ssh_keys: ["{KEY}"]
networks:
  - name: lan
    cidr: 10.1.0.0/24
    gateway: 10.1.0.1
dns:
  forwarders: [10.1.0.1]
updates:
  strategy: periodic
  windows:
    - {{days: [Mon], start_time: "01:00", length_minutes: 60}}
    - {{days: [Tue], start_time: "01:00", length_minutes: 60}}
hosts:
  - name: a
    roles: [dns]
    mac: "52:54:00:00:00:01"
    address: 10.1.0.10
  - name: b
    roles: [dns]
    mac: "52:54:00:00:00:02"
    address: 10.1.0.11
"""

TARGET = """\
kind: iso
options:
  mode: install
  dest_device: /dev/vda
overlays:
  - base
  - network
"""


def make_project(root: Path, *, site: str | None = SITE, target: str | None = TARGET,
                 copy_recipes: bool = False) -> Path:  # fmt: skip
    """A project at ``root`` with the repository's overlays and the given site ``t`` and target ``t``."""
    shutil.copytree(REPO / "overlays", root / "overlays", ignore=shutil.ignore_patterns("__pycache__"))
    if copy_recipes:
        shutil.copytree(REPO / "recipes", root / "recipes")
    (root / "recipes" / "sites").mkdir(parents=True, exist_ok=True)
    if site is not None:
        (root / "recipes" / "sites" / "t.yaml").write_text(site)
    if target is not None:
        (root / "recipes" / "t.yaml").write_text(target)
    return root


def add_overlay(root: Path, name: str, template: str, meta: str = "description: test overlay\n") -> Path:
    d = root / "overlays" / name
    d.mkdir(parents=True)
    (d / "overlay.yaml").write_text(meta)
    (d / "butane.yaml.j2").write_text(template)
    return d


def ign_files(ignition: bytes) -> dict[str, dict[str, Any]]:
    """``path -> {"mode": int, "data": bytes, "overwrite": bool}`` for every file of an Ignition config."""
    cfg = json.loads(ignition)
    out = {}
    for f in cfg.get("storage", {}).get("files", []):
        contents = f.get("contents", {})
        data = decode_data_url(contents["source"]) if contents.get("source") else b""
        if contents.get("compression") == "gzip":
            data = gzip.decompress(data)
        out[f["path"]] = {"mode": f.get("mode"), "data": data, "overwrite": f.get("overwrite", False)}
    return out


def ign_text(ignition: bytes, path: str) -> str:
    files = ign_files(ignition)
    assert path in files, f"{path} not in the Ignition config; files: {sorted(files)}"
    return files[path]["data"].decode()
