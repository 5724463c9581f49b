"""The ``metal`` target: the FCOS metal ``raw.xz`` with the site's Ignition config, kernel arguments,
consoles and NetworkManager keyfiles written into its ``boot`` filesystem, ready to ``dd`` (or to feed
``coreos-installer install --image-file``). See :mod:`coreos_infra.disk.rawimage` for how.
"""

from __future__ import annotations

from typing import Any

from coreos_infra.build import BuildRequest, BuildResult
from coreos_infra.disk.options import COMMON_KEYS, base_disk, check_keys, parse_raw_options
from coreos_infra.disk.rawimage import build_raw_image


def build(req: BuildRequest) -> BuildResult:
    check_keys(req, COMMON_KEYS)
    opts = parse_raw_options(req)
    out = req.out_dir / f"{req.name}.raw.xz"
    facts = build_raw_image(base_disk(req), out, opts)
    meta: dict[str, Any] = {"image": facts}
    if any(kf.has_secrets for kf in opts.boot.network_keyfiles):
        meta["network_keyfiles_contain_secrets"] = True
    return BuildResult(artifacts=[out], meta=meta)
