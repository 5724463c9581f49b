"""``coreos-infra download``: like ``coreos-installer download``, through the verified cache.

Options follow coreos-installer (``-s/-a/-p/-f/-C/-d/--insecure/--stream-base-url/--fetch-retries``);
added: ``--release`` (pin through the release index), ``--keyring`` (extra trusted keys) and
``--cache-dir``. The files are verified into the cache first, then copied to the directory under their
published names with their ``.sig`` (or decompressed, without it, with ``-d``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import IO, Any

# fetch (HTTP, gpg, the cache) is imported by the command, not by ``coreos-infra --help``


# the area's line in ``coreos-infra --help`` (see coreos_infra.cli.build_parser)
HELP = "download and verify an FCOS artifact (like coreos-installer download)"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "download",
        help=HELP,
        description="Download an official Fedora CoreOS artifact into the verified cache (SHA-256 and "
        "OpenPGP signature checked) and copy it to a directory.",
    )
    p.add_argument("-s", "--stream", default="stable", help="FCOS stream (default: stable)")
    p.add_argument(
        "-a", "--architecture", default=os.uname().machine, help="architecture (default: this host's)"
    )
    p.add_argument("-p", "--platform", default="metal", help="platform (default: metal)")
    p.add_argument("-f", "--format", default="raw.xz", help="artifact format (default: raw.xz)")
    p.add_argument("-C", "--directory", default=".", type=Path, help="destination directory (default: .)")
    p.add_argument("-d", "--decompress", action="store_true", help="decompress .xz/.gz files (no .sig then)")
    p.add_argument("--release", default=None, help="pin this release (default: the stream's newest)")
    p.add_argument("--insecure", action="store_true", help="accept artifacts without a signature")
    p.add_argument("--stream-base-url", default=None, help="official server or a mirror laid out like it")
    p.add_argument(
        "--fetch-retries", type=int, default=5, help="retries after a failed download (default: 5)"
    )
    p.add_argument("--keyring", type=Path, default=None, help="extra trusted key file or directory of them")
    p.add_argument("--cache-dir", type=Path, default=None, help="verified cache (default: artifacts/cache)")
    p.set_defaults(func=run)


def _decompressor(name: str, src: IO[bytes]) -> tuple[str, IO[bytes]] | None:
    import gzip
    import lzma

    if name.endswith(".xz"):
        return name[: -len(".xz")], lzma.open(src)
    if name.endswith(".gz") and not name.endswith(".tar.gz"):
        return name[: -len(".gz")], gzip.open(src)  # type: ignore[return-value]
    return None


def run(args: argparse.Namespace) -> int:
    import shutil

    from coreos_infra.fetch import FetchOptions, fetch_artifacts, stream_base_url_default
    from coreos_infra.fsutil import CHUNK, atomic_output, copy_file_fast
    from coreos_infra.paths import cache_dir
    from coreos_infra.safenames import safe_file_name

    got = fetch_artifacts(
        base_url=args.stream_base_url or stream_base_url_default(),
        stream=args.stream,
        arch=args.architecture,
        platform=args.platform,
        fmt=args.format,
        release=args.release,
        cache_dir=args.cache_dir or cache_dir(),
        keyring=args.keyring,
        insecure=args.insecure,
        options=FetchOptions(retries=args.fetch_retries),
    )
    args.directory.mkdir(parents=True, exist_ok=True)
    for role, path in got.files.items():
        # The stream metadata is unsigned: its names must stay inside the directory.
        name = safe_file_name(got.artifacts[role].name, what=f"file name of the {role} artifact")
        with open(path, "rb") as src:
            unpacked = _decompressor(name, src) if args.decompress else None
            if unpacked is not None:
                out_name, stream = unpacked
                out_name = safe_file_name(out_name, what=f"file name of the {role} artifact")
                with stream, atomic_output(args.directory / out_name) as out:
                    while chunk := stream.read(CHUNK):
                        out.write(chunk)
                print(args.directory / out_name)
                continue
            with atomic_output(args.directory / name) as out:
                copy_file_fast(src, out)
        sig = path.with_name(path.name + ".sig")
        if sig.exists():
            shutil.copyfile(sig, args.directory / f"{name}.sig")
        print(args.directory / name)
    return 0
