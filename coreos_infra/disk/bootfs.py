"""What ``coreos-installer install`` writes to the ``boot`` filesystem, done on an image file.

(coreos-installer-formats.md sections 6.2-6.4.) In order: console kargs (and the GRUB console block),
the user's karg appends/deletes in one edit on the LAST BLS entry, ``ignition/config.ign`` (dir 0700,
file 0600), and NetworkManager keyfiles in ``coreos-firstboot-network/`` (copied to
``/etc/NetworkManager/system-connections`` by FCOS's initramfs on first boot, as with
``coreos-installer install --copy-network``). ``ignition.platform.id=metal`` (or the platform the
customization names) is always kept.
"""

from __future__ import annotations

import configparser
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coreos_infra.disk import bls
from coreos_infra.disk.ext4 import Ext4Image, read_superblock_label
from coreos_infra.disk.gpt import Gpt, GptError, Partition
from coreos_infra.errors import CoreosInfraError

LOG = logging.getLogger("coreos_infra.disk")

BOOT_LABEL = "boot"
ENTRIES_DIR = "/loader/entries"
NETWORK_DIR = "/coreos-firstboot-network"
_KEYFILE_NAME = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+ -]*\.nmconnection$")
_SECRET_KEYS = ("psk", "password", "private-key", "wep-key0", "pin", "secret")


class BootFsError(CoreosInfraError):
    """The boot filesystem cannot be customized as asked."""


@dataclass(frozen=True)
class NetworkKeyfile:
    name: str  # e.g. "eth0.nmconnection"
    contents: bytes

    def validate(self) -> None:
        if not _KEYFILE_NAME.match(self.name) or "/" in self.name:
            raise BootFsError(
                f"network keyfile name {self.name!r} must be a plain file name ending in .nmconnection"
            )
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(self.contents.decode())
        except (UnicodeDecodeError, configparser.Error) as e:
            raise BootFsError(f"network keyfile {self.name}: not a NetworkManager keyfile: {e}") from None
        if not parser.has_section("connection"):
            raise BootFsError(f"network keyfile {self.name}: no [connection] section")

    @property
    def has_secrets(self) -> bool:
        text = self.contents.decode(errors="replace")
        return any(re.search(rf"^\s*{k}\s*=", text, re.M) for k in _SECRET_KEYS)


@dataclass(frozen=True)
class BootCustomization:
    ignition: bytes | None = None
    append_kargs: tuple[str, ...] = ()
    delete_kargs: tuple[str, ...] = ()
    consoles: tuple[bls.Console, ...] = ()
    network_keyfiles: tuple[NetworkKeyfile, ...] = ()
    platform: str | None = "metal"  # the ignition.platform.id kept; None: the one the BLS entry names


@dataclass
class BootResult:
    bls_entry: str = ""
    kargs: str = ""
    files: list[str] = field(default_factory=list)
    console_cfg: str | None = None
    firstboot: bool = False  # /ignition.firstboot exists: GRUB passes ignition.firstboot on the next boot


def find_boot_partition(image: Path, gpt: Gpt) -> Partition:
    """The one partition whose ext4 filesystem label is ``boot`` (as coreos-installer finds it)."""
    found = []
    for p in gpt.partitions:
        sb = read_superblock_label(image, p.offset)
        if sb is not None and sb[0] == BOOT_LABEL:
            found.append(p)
    if len(found) != 1:
        raise GptError(
            f"{image}: expected exactly one filesystem labelled {BOOT_LABEL!r}, found {len(found)}"
        )
    return found[0]


def _platform_kargs(fs: Ext4Image, platform: str) -> list[str]:
    try:
        data = json.loads(fs.read("/coreos/platforms.json"))
    except CoreosInfraError:
        return []
    except json.JSONDecodeError as e:
        raise BootFsError(f"/coreos/platforms.json on the boot filesystem is not JSON: {e}") from None
    args = data.get(platform, {}).get("kernel_arguments", []) if isinstance(data, dict) else []
    return [a for a in args if isinstance(a, str)]


def validate_kargs(append: Sequence[str], delete: Sequence[str], platform: str | None = "metal") -> None:
    """``platform``: the ``ignition.platform.id`` the image keeps (None: the one its BLS entry names)."""
    keep = f"{bls.PLATFORM_KARG_PREFIX}{platform}" if platform else "its platform's ignition.platform.id"
    for a in [*append, *delete]:
        if not a.strip() or any(c.isspace() for c in a.strip()):
            raise BootFsError(f"kernel argument {a!r} must be one non-empty word")
    for d in delete:
        if d.strip().startswith(bls.PLATFORM_KARG_PREFIX):
            raise BootFsError(f"refusing to delete {d!r}: FCOS needs {keep} on {platform or 'these'} images")
    for a in append:
        if a.strip().startswith(bls.PLATFORM_KARG_PREFIX) and a.strip() != keep:
            raise BootFsError(f"refusing to append {a!r}: these images are for {keep}")


def _entry_platform(options: str, entry_name: str) -> str:
    for word in options.split():
        if word.startswith(bls.PLATFORM_KARG_PREFIX):
            return word.removeprefix(bls.PLATFORM_KARG_PREFIX)
    raise BootFsError(f"the BLS entry {entry_name} names no platform ({bls.PLATFORM_KARG_PREFIX}...)")


def customize_boot(fs: Ext4Image, cust: BootCustomization) -> BootResult:
    """Apply ``cust`` to the boot filesystem ``fs``."""
    validate_kargs(cust.append_kargs, cust.delete_kargs, cust.platform)
    for kf in cust.network_keyfiles:
        kf.validate()
    result = BootResult()
    names = [e.name for e in fs.listdir(ENTRIES_DIR) if e.is_file]
    entry_name = bls.last_entry_name(names)
    entry_path = f"{ENTRIES_DIR}/{entry_name}"
    entry = bls.BlsEntry(fs.read(entry_path).decode())
    original = entry.options()
    options = original
    platform = cust.platform or _entry_platform(original, entry_name)
    platform_karg = f"{bls.PLATFORM_KARG_PREFIX}{platform}"
    if cust.consoles:
        options = bls.edit_kargs(
            options, append=[c.karg for c in cust.consoles], delete=_platform_kargs(fs, platform)
        )
        result.console_cfg = _rewrite_console(fs, cust.consoles)
    options = bls.edit_kargs(options, append=cust.append_kargs, delete=cust.delete_kargs)
    if platform_karg not in options.split():
        if any(a.startswith(bls.PLATFORM_KARG_PREFIX) for a in options.split()):
            raise BootFsError(
                f"the BLS entry {entry_name} names another platform than {platform}: {options}"
            )
        options = bls.edit_kargs(options, append=[platform_karg])
    if options != original:
        stat = fs.stat(entry_path)
        fs.write(
            entry_path,
            entry.with_options(options).text.encode(),
            mode=(stat.mode & 0o7777) if stat else 0o644,
        )
        result.files.append(entry_path)
    result.bls_entry = entry_name
    result.kargs = options
    result.firstboot = fs.exists("/ignition.firstboot")
    if cust.ignition is not None and not result.firstboot:
        LOG.warning("the boot filesystem has no /ignition.firstboot: Ignition will not run on the next boot")
    if cust.ignition is not None:
        fs.mkdir("/ignition", mode=0o700)
        fs.write("/ignition/config.ign", cust.ignition, mode=0o600)
        result.files.append("/ignition/config.ign")
    if cust.network_keyfiles:
        fs.mkdir(NETWORK_DIR, mode=0o700)
        for kf in cust.network_keyfiles:
            fs.write(f"{NETWORK_DIR}/{kf.name}", kf.contents, mode=0o600)
            result.files.append(f"{NETWORK_DIR}/{kf.name}")
    return result


def _rewrite_console(fs: Ext4Image, consoles: Sequence[bls.Console]) -> str | None:
    commands = bls.grub_console_commands(consoles)
    for path in ("/grub2/console.cfg", "/grub2/grub.cfg"):
        if not fs.exists(path):
            continue
        text = fs.read(path).decode()
        if bls.CONSOLE_START not in text:
            continue
        new = bls.rewrite_console_block(text, commands)
        if new != text:
            fs.write(path, new.encode(), mode=0o644)
        return path
    LOG.warning(
        "the boot filesystem has no GRUB CONSOLE-SETTINGS block; only kernel console arguments were set"
    )
    return None
