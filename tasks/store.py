"""The store: publish, prune, share, and the technician's side (download, flash)."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context, Exit, task

from coreos_infra.exits import exits_on_errors
from tasks._common import ROOT

_STORE_HELP = {
    "store": "s3://BUCKET[/PREFIX], file:///DIR or a directory (default: the site's publish.store, "
    "else artifacts/store/)",
    "endpoint_url": "S3-compatible endpoint (default: the site's publish.endpoint_url or AWS_ENDPOINT_URL)",
}


@task(
    help={
        "site": "publish only builds of this site",
        "host": "publish only builds for this host",
        "target": "publish only builds of this target",
        **_STORE_HELP,
        "public_base_url": "URL readers use for the store's root (written into the stream metadata)",
        "unsigned": "publish without signatures (downloads then need --allow-unsigned)",
        "gnupg_home": "GnuPG home with the site signing key (default: publish.signing_key, else a demo key)",
        "key_id": "key ID or fingerprint of the signing key in that home",
        "create_bucket": "create the S3 bucket if it does not exist",
        "allow_secrets": "also publish builds whose Ignition carries secrets (use a private store)",
        "build_dir": "where the builds are (default: artifacts/build)",
        "debug": "log every step",
    }
)
@exits_on_errors
def publish(
    c: Context,
    site: str = "",
    host: str = "",
    target: str = "",
    store: str = "",
    endpoint_url: str = "",
    public_base_url: str = "",
    unsigned: bool = False,
    gnupg_home: str = "",
    key_id: str = "",
    create_bucket: bool = False,
    allow_secrets: bool = False,
    build_dir: str = "",
    debug: bool = False,
) -> None:
    """Publish what `invoke build` produced to a store (never builds), then indexes, streams and latest."""
    from pathlib import Path

    from coreos_infra.log import setup_logging
    from coreos_infra.publish.publish import PublishOptions
    from coreos_infra.publish.publish import publish as run_publish
    from coreos_infra.summary import publish_lines

    setup_logging(debug=debug)
    opts = PublishOptions(
        root=ROOT, site=site or None, host=host or None, target=target or None,
        store=store or None, endpoint_url=endpoint_url or None, public_base_url=public_base_url or None,
        gnupg_home=gnupg_home or None, key_id=key_id or None, unsigned=unsigned, create_bucket=create_bucket,
        allow_secrets=allow_secrets, build_root=Path(build_dir) if build_dir else None,
    )  # fmt: skip
    print("\n".join(publish_lines(run_publish(opts))))


@task(
    help={
        "keep": "builds to keep per site/host/target (the latest always stays)",
        "older_than": "only remove builds older than this many days",
        "dry_run": "only print what would be removed",
        "site": "prune only this site (default: every site in the store)",
        **_STORE_HELP,
    }
)
@exits_on_errors
def prune(
    c: Context,
    keep: int = 3,
    older_than: float = -1,
    dry_run: bool = False,
    site: str = "",
    store: str = "",
    endpoint_url: str = "",
) -> None:
    """Remove old builds from a store; never what an index or latest points to (indexes rewritten first)."""
    from coreos_infra.log import setup_logging
    from coreos_infra.publish.prune import prune as run_prune
    from coreos_infra.publish.sitestore import open_site_store

    setup_logging()
    st = open_site_store(ROOT, site, store, endpoint_url)
    report = run_prune(
        st, keep=keep, older_than_days=older_than if older_than >= 0 else None, site=site or None,
        dry_run=dry_run,
    )  # fmt: skip
    verb = "would remove" if dry_run else "removed"
    what = f"{len(report.removed_builds)} build(s) ({len(report.deleted_keys)} objects)"
    print(f"{verb} {what} from {st.url}; {report.kept_builds} kept")
    for b in report.removed_builds:
        print(f"  {b}")


@task(
    help={
        "site": "site of the build",
        "host": "host of the build",
        "target": "target of the build",
        "build": "build ID, or latest",
        "expires": "how long the URLs work: 7d, 12h, 30m or seconds (at most 7d)",
        **_STORE_HELP,
    }
)
@exits_on_errors
def share(
    c: Context,
    site: str = "",
    host: str = "",
    target: str = "",
    build: str = "latest",
    expires: str = "7d",
    store: str = "",
    endpoint_url: str = "",
) -> None:
    """Print presigned URLs to a published build in a private S3 bucket."""
    from coreos_infra.publish.share import parse_duration
    from coreos_infra.publish.share import share as run_share
    from coreos_infra.publish.sitestore import open_site_store

    if not (site and host and target):
        print("Error: --site, --host and --target are required", file=sys.stderr)
        raise Exit(code=2)
    st = open_site_store(ROOT, site, store, endpoint_url)
    urls = run_share(st, site, host, target, expires_s=parse_duration(expires), build=build)
    for name, url in urls:
        print(f"{name}  {url}")


_FETCH_BUILD_HELP = {
    "site": "site of the build",
    "host": "host of the build ('all' for a site-wide build)",
    "target": "target of the build (rpi4, metal, usb, live, pxe, ...)",
    "build": "build ID, or latest (default; through the target's latest.json)",
    **_STORE_HELP,
    "keyring": "trusted site public key (file or directory of keys); default: the site's publish.keyring, "
    "else the local demo key; never only the key in the store",
    "allow_unsigned": "accept a build published with --unsigned (only its SHA-256 is checked)",
    "verify_each": "also check each file's own .sig with gpgv (streamed; the signed SHA256SUMS already "
    "covers every file)",
    "debug": "log every step",
}


@task(help={**_FETCH_BUILD_HELP, "dest": "directory for the files (default: "
            "artifacts/download/<site>/<host>/<target>/<build ID>/)"})  # fmt: skip
@exits_on_errors
def download(
    c: Context,
    site: str = "",
    host: str = "",
    target: str = "",
    build: str = "latest",
    dest: str = "",
    store: str = "",
    endpoint_url: str = "",
    keyring: str = "",
    allow_unsigned: bool = False,
    verify_each: bool = False,
    debug: bool = False,
) -> None:
    """Download a published build: resumes, checks signatures and SHA-256 before a file gets its name."""
    from coreos_infra.log import setup_logging
    from coreos_infra.publish.sitestore import download_site_build

    if not (site and host and target):
        print("Error: --site, --host and --target are required", file=sys.stderr)
        raise Exit(code=2)
    setup_logging(debug=debug)
    got = download_site_build(ROOT, site, host, target, build=build, store=store, endpoint_url=endpoint_url,
                              keyring=keyring, allow_unsigned=allow_unsigned, dest=dest,
                              verify_each=verify_each)  # fmt: skip
    how = (
        "verified (signed SHA256SUMS" + (", each .sig" if verify_each else "") + ")"
        if got.signed
        else "UNSIGNED: only the SHA-256 was checked"
    )
    print(f"build {got.build.build_id} of {site}/{host}/{target}: {how}", file=sys.stderr)
    for path in got.files.values():
        print(path)


def _confirm(question: str) -> bool:
    print(f"{question}\nType 'yes' to continue: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() == "yes"


@task(
    help={
        **_FETCH_BUILD_HELP,
        "device": "the USB stick or SD card to overwrite (a whole disk, e.g. /dev/sdb), or an image file",
        "image": "flash this local image, not a published build (needs IMAGE.sig, or --allow-unsigned)",
        "yes": "do not ask for confirmation",
        "dest": "where the downloaded image is kept (default: artifacts/download/...)",
    }
)
@exits_on_errors
def flash(
    c: Context,
    device: str = "",
    site: str = "",
    host: str = "",
    target: str = "",
    build: str = "latest",
    image: str = "",
    yes: bool = False,
    dest: str = "",
    store: str = "",
    endpoint_url: str = "",
    keyring: str = "",
    allow_unsigned: bool = False,
    verify_each: bool = False,
    debug: bool = False,
) -> None:
    """Write a verified image to a device: decompresses while writing, refuses mounted and system disks,
    asks first (unless --yes), syncs and reads back to compare."""
    from coreos_infra.log import setup_logging
    from coreos_infra.publish.flash import flash_image, verify_local_image

    if not device or not (image or (site and host and target)):
        print("Error: give --device and either --site/--host/--target or --image", file=sys.stderr)
        raise Exit(code=2)
    setup_logging(debug=debug)
    expected = None
    if image:
        from contextlib import nullcontext

        from coreos_infra.publish.download import keyring_for

        given = Path(keyring) if keyring else None
        with keyring_for(ROOT, site, given) if site else nullcontext(given) as trusted:
            verify_local_image(Path(image), keyring=trusted, allow_unsigned=allow_unsigned)
        path = Path(image)
    else:
        from coreos_infra.publish.sitestore import download_site_build

        got = download_site_build(ROOT, site, host, target, build=build, store=store,
                                  endpoint_url=endpoint_url, keyring=keyring, allow_unsigned=allow_unsigned,
                                  dest=dest, names_of=lambda b: [b.disk_image().name],
                                  verify_each=verify_each)  # fmt: skip
        path = got.files[got.build.disk_image().name]
        expected = got.uncompressed_sha256(path.name)
    result = flash_image(path, Path(device), confirm=None if yes else _confirm, expected_sha256=expected)
    print(
        f"wrote {result.written} bytes of {path.name} to {device} and read them back: sha256 {result.sha256}"
    )
