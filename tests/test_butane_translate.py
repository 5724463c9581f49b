"""Butane rules from the specification: YAML typing, resources, desugaring, validation, report paths."""

from __future__ import annotations

import base64
import gzip
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coreos_infra import ignition
from coreos_infra.butane import ButaneError, Translation, translate
from coreos_infra.butane.mounts import path_escape
from coreos_infra.butane.resource import data_url, go_join, url_escape
from coreos_infra.butane.validate import decimal_mode_warning
from coreos_infra.errors import CoreosInfraError


def bu(body: str, version: str = "1.6.0") -> bytes:
    return f"variant: fcos\nversion: {version}\n{body}".encode()


def tr(body: str, version: str = "1.6.0", **kw: Any) -> Translation:
    return translate(bu(body, version), **kw)


def err(body: str, version: str = "1.6.0", **kw: Any) -> ButaneError:
    with pytest.raises(ButaneError) as e:
        translate(bu(body, version), **kw)
    return e.value


def file0(t: Translation) -> dict[str, Any]:
    return dict(t.config["storage"]["files"][0])


# --- YAML typing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("0644", 420),
        ("420", 420),
        ("0o644", 420),
        ("0x1a4", 420),
        ("420.0", 420),
        ("0_644", 420),
        ("0999", 999),
    ],
)
def test_int_fields_go_base0(text: str, mode: int) -> None:
    assert file0(tr(f"storage:\n  files:\n    - path: /a\n      mode: {text}\n"))["mode"] == mode


def test_quoted_int_is_type_error() -> None:
    e = err('storage:\n  files:\n    - path: /a\n      mode: "0644"\n')
    assert e.reason == "yaml: unmarshal errors:\n  line 6: cannot unmarshal !!str `0644` into int"
    assert isinstance(e, CoreosInfraError)


@pytest.mark.parametrize("text", ["1.10", "0x10", "no", "2001-12-14", "123", "~x", "true"])
def test_string_fields_keep_source_text(text: str) -> None:
    f = file0(tr(f"storage:\n  files:\n    - path: /a\n      contents:\n        inline: {text}\n"))
    assert ignition.decode_source(f["contents"]["source"]) == text.encode()


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("'on'", True), ("No", False), ("TRUE", True)])
def test_bool_yaml11_words(text: str, value: bool) -> None:
    t = tr(
        f"storage:\n  files:\n    - path: /a\n      overwrite: {text}\n      contents:\n        source: ''\n"
    )
    assert file0(t)["overwrite"] is value


@pytest.mark.parametrize("text", ["'true'", "1", "maybe"])
def test_bool_rejects(text: str) -> None:
    e = err(f"storage:\n  files:\n    - path: /a\n      overwrite: {text}\n")
    assert "cannot unmarshal" in e.reason and "into bool" in e.reason


def test_null_is_absent_and_empty_string_is_present() -> None:
    f = file0(tr("storage:\n  files:\n    - path: /a\n      mode: ~\n      contents:\n        source: ''\n"))
    assert "mode" not in f
    assert f["contents"] == {"source": ""}


def test_binary_inline_with_compression() -> None:
    gz = base64.b64encode(gzip.compress(b"hello")).decode()
    t = tr(
        "storage:\n  files:\n    - path: /a\n      contents:\n        compression: gzip\n"
        f"        inline: !!binary {gz}\n"
    )
    c = file0(t)["contents"]
    assert c["compression"] == "gzip"
    assert ignition.decode_source(c["source"], "gzip") == b"hello"


def test_duplicate_keys_fatal() -> None:
    e = err("storage:\n  files:\n    - path: /a\n      path: /b\n")
    assert e.reason == 'yaml: unmarshal errors:\n  line 6: mapping key "path" already defined at line 5'


def test_list_where_mapping_expected() -> None:
    e = err("storage:\n  files:\n    path: /a\n")
    assert "cannot unmarshal !!map into []" in e.reason


def test_later_documents_ignored() -> None:
    t = translate(bu("storage:\n  files:\n    - path: /a\n") + b"---\nthis: [is ignored\n")
    assert file0(t) == {"path": "/a"}


def test_version_errors() -> None:
    with pytest.raises(ButaneError, match="error parsing variant; must be specified"):
        translate(b"version: 1.6.0\n")
    with pytest.raises(ButaneError, match="must be a valid semver"):
        translate(b"variant: fcos\nversion: 1.6\n")
    with pytest.raises(ButaneError, match="No translator exists for variant FCOS with version 1.6.0"):
        translate(b"variant: FCOS\nversion: 1.6.0\n")
    with pytest.raises(ButaneError, match="yaml: line"):
        translate(b"variant: fcos\nversion: 1.6.0\nstorage: [\n")


@pytest.mark.parametrize(
    ("version", "ign"),
    [("1.0.0", "3.0.0"), ("1.1.0", "3.1.0"), ("1.2.0", "3.2.0"), ("1.3.0", "3.2.0"), ("1.4.0", "3.3.0")]
    + [("1.5.0", "3.4.0"), ("1.6.0", "3.5.0"), ("1.7.0", "3.6.0")],
)
def test_version_mapping(version: str, ign: str) -> None:
    assert translate(bu("", version)).to_json() == f'{{"ignition":{{"version":"{ign}"}}}}\n'.encode()


def test_key_of_later_version_is_unused() -> None:
    t = tr("kernel_arguments:\n  should_exist: [a]\n", version="1.3.0")
    assert [str(r) for r in t.reports] == [
        "warning at $.kernel_arguments, line 3 col 1: unused key kernel_arguments"
    ]
    assert "kernelArguments" not in t.config


# --- resources -------------------------------------------------------------------------------------------


def test_data_url_choice() -> None:
    assert data_url(b"xyzzy", None) == ("data:,xyzzy", "")
    assert data_url(b"file contents\n", None) == ("data:,file%20contents%0A", "")
    src, comp = data_url(b"z" * 149, None)
    assert comp == "gzip" and gzip.decompress(base64.b64decode(src[13:])) == b"z" * 149
    rnd = bytes(range(200, 221))
    assert data_url(rnd, None) == ("data:;base64," + base64.b64encode(rnd).decode(), "")
    assert data_url(b"z" * 149, "gzip") == ("data:," + "z" * 149, "gzip")  # user compression: never re-gzip
    assert url_escape(b"a b/c~*'()!") == "a%20b%2Fc~*'()!"


def test_go_like_gzip_header() -> None:
    src, _ = data_url(b"z" * 500, None)
    raw = base64.b64decode(src[13:])
    assert raw[:10] == bytes.fromhex("1f8b0800000000000 2ff".replace(" ", ""))
    assert raw[-12:-8] == b"\x00\x00\xff\xff"  # ends with an empty final stored block, like Go


def test_fcos_1_0_inline_is_escaped_only() -> None:
    t = tr(
        "storage:\n  files:\n    - path: /a\n      contents:\n        inline: " + "z" * 300 + "\n", "1.0.0"
    )
    assert file0(t)["contents"] == {"source": "data:," + "z" * 300}


def test_too_many_sources_reported_at_last() -> None:
    e = err("storage:\n  files:\n    - path: /a\n      contents:\n        inline: a\n        local: b\n")
    assert [str(r) for r in e.reports] == [
        "error at $.storage.files.0.contents.inline, line 7 col 17: only one of the following can be set: "
        "inline, local, source"
    ]


def test_local_join_semantics(tmp_path: Path) -> None:
    assert go_join("files", "/x") == "files/x"
    assert go_join("files", "../files/x") == "files/x"
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "x").write_bytes(b"X")
    t = tr(
        "storage:\n  files:\n    - path: /a\n      contents:\n        local: /x\n",
        files_dir=tmp_path / "files",
    )
    assert file0(t)["contents"]["source"] == "data:,X"
    (tmp_path / "outside").write_bytes(b"no")
    e = err(
        "storage:\n  files:\n    - path: /a\n      contents:\n        local: ../outside\n",
        files_dir=tmp_path / "files",
    )
    assert e.reports[0].message == "local file path traverses outside the files directory"


def test_ca_and_merge_local(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "child.ign").write_text('{"ignition": {"version": "3.5.0"}}')
    t = tr(
        "ignition:\n  config:\n    merge:\n      - local: child.ign\n  security:\n    tls:\n"
        "      certificate_authorities:\n        - local: ca.pem\n  proxy:\n    https_proxy: http://p:3128\n",
        files_dir=tmp_path,
    )
    ign = t.config["ignition"]
    assert (
        ignition.decode_source(ign["config"]["merge"][0]["source"]) == b'{"ignition": {"version": "3.5.0"}}'
    )
    assert ign["proxy"] == {"httpsProxy": "http://p:3128"}
    assert [r.message for r in t.reports] == ["insecure plaintext HTTP proxy specified for HTTPS resources"]
    assert t.reports[0].path == ("ignition", "proxy", "https_proxy")


def test_inline_merge_config_validated() -> None:
    e = err(
        'ignition:\n  config:\n    replace:\n      inline: \'{"ignition": {"version": "3.5.0"}, "storage": '
        '{"files": [{"path": "rel"}]}}\'\n'
    )
    assert [str(r) for r in e.reports] == [
        "error at $.storage.files.0.path, line 1 col 1: path not absolute",
        "error at $.ignition.config.replace.inline, line 6 col 15: config is not valid",
    ]


# --- units, users, kernel arguments ----------------------------------------------------------------------


def test_units_dropins_and_contents_local(tmp_path: Path) -> None:
    (tmp_path / "u.service").write_bytes(b"[Service]\nExecStart=/bin/true\xff\n")
    t = tr(
        "systemd:\n  units:\n    - name: u.service\n      contents_local: u.service\n      dropins:\n"
        '        - name: a.conf\n          contents: "[Service]\\n"\n',
        files_dir=tmp_path,
    )
    unit = t.config["systemd"]["units"][0]
    assert unit["dropins"] == [{"contents": "[Service]\n", "name": "a.conf"}]
    assert t.to_json().count(b"\\ufffd") == 1  # invalid UTF-8 becomes U+FFFD like Go


def test_unit_validation_errors() -> None:
    e = err("systemd:\n  units:\n    - name: foo.bar\n      dropins:\n        - name: x\n")
    assert [str(r) for r in e.reports] == [
        "error at $.systemd.units.0.name, line 5 col 13: invalid systemd unit extension",
        "error at $.systemd.units.0.dropins.0.name, line 7 col 17: invalid systemd drop-in extension",
    ]


def test_path_conflicts_with_unit() -> None:
    e = err(
        "storage:\n  files:\n    - path: /etc/systemd/system/a.service\n"
        'systemd:\n  units:\n    - name: a.service\n      contents: "[Unit]\\n"\n'
    )
    assert [str(r) for r in e.reports] == [
        "error at $.storage.files.0.path, line 5 col 13: path conflicts with systemd unit or dropin"
    ]


def test_kernel_arguments_share_one_key_space() -> None:
    e = err("kernel_arguments:\n  should_exist: [a, b, a]\n")
    assert [str(r) for r in e.reports] == [
        "error at $.kernel_arguments.should_exist.2, line 4 col 24: duplicate entry defined"
    ]


def test_user_fields_and_key_order() -> None:
    t = tr(
        "passwd:\n  users:\n    - name: core\n      shell: /bin/sh\n      ssh_authorized_keys: [k1]\n"
        "      uid: 1000\n      should_exist: true\n  groups:\n    - name: g\n      gid: 5\n"
    )
    assert t.to_json() == (
        b'{"ignition":{"version":"3.5.0"},"passwd":{"groups":[{"gid":5,"name":"g"}],"users":[{"name":"core",'
        b'"sshAuthorizedKeys":["k1"],"shell":"/bin/sh","shouldExist":true,"uid":1000}]}}\n'
    )


# --- filesystems and mount units -------------------------------------------------------------------------


def test_path_escape() -> None:
    assert path_escape("/var/lib/containers") == "var-lib-containers"
    assert path_escape("/dev/disk/by-label/foo") == "dev-disk-by\\x2dlabel-foo"
    assert path_escape("//var//x/") == "var-x"
    assert path_escape("/") == "-"
    assert path_escape("/.hidden/a b") == "\\x2ehidden-a\\x20b"


def test_mount_unit_rules() -> None:
    e = err("storage:\n  filesystems:\n    - device: /dev/vdb\n      with_mount_unit: true\n")
    assert [r.message for r in e.reports] == ["format is required if with_mount_unit is true"]
    e = err("storage:\n  filesystems:\n    - device: /dev/vdb\n      with_mount_unit: true\n", "1.3.0")
    assert [r.message for r in e.reports] == [
        "path is required if with_mount_unit is true and format is not swap",
        "format is required if with_mount_unit is true",
    ]
    # swap without path needs fcos >= 1.4
    body = (
        "storage:\n  filesystems:\n    - device: /dev/vdb\n      format: swap\n      with_mount_unit: true\n"
    )
    assert tr(body, "1.4.0").config["systemd"]["units"][0]["name"] == "dev-vdb.swap"
    assert err(body, "1.3.0").reports[0].path == ("storage", "filesystems", 0, "path")
    # /opt is fine before 1.6
    t = tr(
        "storage:\n  filesystems:\n    - device: /dev/vdb\n      format: xfs\n      path: /opt/x\n"
        "      with_mount_unit: true\n",
        "1.5.0",
    )
    assert t.config["systemd"]["units"][0]["name"] == "opt-x.mount"


# --- trees ----------------------------------------------------------------------------------------------


def test_tree_walk_order_modes_and_links(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    (tree / "b").mkdir(parents=True)
    (tree / "a").write_text("a")
    (tree / "b" / "x").write_text("x")
    (tree / "c").write_text("c")
    os.chmod(tree / "c", 0o744)
    os.symlink("a", tree / "l")
    t = tr("storage:\n  trees:\n    - local: t\n      path: /opt\n", files_dir=tmp_path)
    files = t.config["storage"]["files"]
    assert [(f["path"], f["mode"]) for f in files] == [("/opt/a", 420), ("/opt/b/x", 420), ("/opt/c", 493)]
    assert t.config["storage"]["links"] == [{"path": "/opt/l", "target": "a"}]
    assert "directories" not in t.config["storage"]
    # 1.7: ownership and directories
    t = tr(
        "storage:\n  trees:\n    - local: t\n      path: /opt\n      group:\n        name: g\n"
        "      file_mode: 0600\n",
        "1.7.0",
        files_dir=tmp_path,
    )
    dirs = t.config["storage"]["directories"]
    assert [(d["path"], d["mode"], d["group"]) for d in dirs] == [
        ("/opt", 493, {"name": "g"}),
        ("/opt/b", 493, {"name": "g"}),
    ]
    assert {f["mode"] for f in t.config["storage"]["files"]} == {0o600}


def test_tree_needs_files_dir() -> None:
    e = err("storage:\n  trees:\n    - local: t\n")
    assert str(e.reports[0]).startswith(
        "error at $.storage.trees.0, line 5 col 7: local file paths are relative"
    )


# --- boot_device, grub -----------------------------------------------------------------------------------


def test_boot_device_nothing_without_luks_or_mirror() -> None:
    assert tr("boot_device:\n  layout: aarch64\n").config == {"ignition": {"version": "3.5.0"}}


def test_boot_device_mirror_user_partition_merge() -> None:
    t = tr(
        "boot_device:\n  layout: ppc64le\n  mirror:\n    devices: [/dev/a, /dev/b]\n"
        "storage:\n  disks:\n    - device: /dev/b\n      partitions:\n        - label: root-2\n"
        "          size_mib: 8192\n"
        "        - label: data\n"
    )
    disks = t.config["storage"]["disks"]
    assert [p["label"] for p in disks[1]["partitions"]] == [
        "prep-2",
        "reserved-2",
        "boot-2",
        "root-2",
        "data",
    ]
    assert disks[1]["partitions"][3] == {"label": "root-2", "sizeMiB": 8192}
    assert "esp-1" not in t.to_json().decode()  # no EFI on ppc64le


@pytest.mark.parametrize(
    ("body", "message", "path"),
    [
        (
            "boot_device:\n  layout: s390x-eckd\n  luks:\n    tpm2: true\n",
            "device is required",
            ("boot_device", "layout"),
        ),
        (
            "boot_device:\n  layout: s390x-zfcp\n  luks:\n    device: /dev/dasda\n    tpm2: true\n",
            "device name must start with /dev/dasd",
            ("boot_device", "layout"),
        ),
        (
            "boot_device:\n  layout: s390x-virt\n  mirror:\n    devices: [/dev/a, /dev/b]\n",
            "mirroring not supported on layouts",
            ("boot_device", "layout"),
        ),
        (
            "boot_device:\n  luks:\n    cex:\n      enabled: true\n",
            "when using cex the targeted architecture must match s390x",
            ("boot_device", "luks", "cex"),
        ),
    ],
)
def test_boot_device_validation(body: str, message: str, path: tuple[str, ...]) -> None:
    e = err(body)
    assert e.reason == "source config is invalid"
    assert e.reports[0].message.startswith(message)
    assert e.reports[0].path == path


def test_boot_device_1_7_rules() -> None:
    e = err("boot_device:\n  mirror:\n    devices: [/dev/a, /dev/b]\n", "1.7.0")
    assert e.reports[0].kind == "error" and "layout should be specified" in e.reports[0].message
    e = err("boot_device:\n  luks:\n    device: /dev/sda\n", "1.7.0")
    assert e.reports[0].message == "no method specified for luks"


def test_grub_users_before_boot_device_entries() -> None:
    t = tr(
        "grub:\n  users:\n    - name: root\n      password_hash: grub.pbkdf2.x\n"
        "boot_device:\n  luks:\n    tpm2: true\n"
    )
    fss = t.config["storage"]["filesystems"]
    assert [f["device"] for f in fss] == ["/dev/disk/by-label/boot", "/dev/mapper/root"]
    append = t.config["storage"]["files"][0]["append"][0]
    text = ignition.decode_source(append["source"], append["compression"]).decode()
    assert text == '# Generated by Butane\n\nset superusers="root"\npassword_pbkdf2 root grub.pbkdf2.x\n'


# --- modes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "is_dir", "warn"),
    [
        (644, False, True),
        (755, False, True),
        (420, False, False),
        (272, False, False),
        (755, True, True),
        (0, False, False),
    ],
)
def test_decimal_mode(mode: int, is_dir: bool, warn: bool) -> None:
    assert decimal_mode_warning(mode, is_dir) is warn


def test_special_bits_warning_by_spec() -> None:
    body = "storage:\n  files:\n    - path: /a\n      mode: 04755\n      contents:\n        source: ''\n"
    assert [r.message for r in tr(body, "1.6.0").reports] == [
        "setuid/setgid/sticky bits are not supported or functional in spec versions older than 3.6.0"
    ]
    assert tr(body, "1.7.0").reports == []


def test_go_json_escaping() -> None:
    t = tr('storage:\n  files:\n    - path: /a\n      user:\n        name: "<&>\\b\\f\\u2028é"\n')
    assert b'"name":"\\u003c\\u0026\\u003e\\u0008\\u000c\\u2028\xc3\xa9"' in t.to_json()


def test_tree_collisions_like_upstream(tmp_path: Path) -> None:
    """Upstream's TestTranslateTree 'collisions' case: which trees collide with which nodes."""
    files = {"tree0/file", "tree1/directory", "tree2/link", "tree3/file-partial", "tree4/link-partial"}
    files |= {"tree5/tree-file", "tree6/tree-file", "tree15/tree-link"}
    links = {"tree7/file", "tree8/directory", "tree9/link", "tree10/file-partial", "tree11/link-partial"}
    links |= {"tree12/tree-file", "tree13/tree-link", "tree14/tree-link"}
    for rel in files | links:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel in files:
            (tmp_path / rel).write_text(rel)
        else:
            os.symlink("file", tmp_path / rel)
    trees = "".join(f"    - local: tree{i}\n" for i in range(16))
    e = err(
        f"storage:\n  trees:\n{trees}"
        "  files:\n    - path: /file\n      contents:\n        source: data:,foo\n"
        "    - path: /file-partial\n"
        "  directories:\n    - path: /directory\n"
        "  links:\n    - path: /link\n      target: file\n    - path: /link-partial\n",
        files_dir=tmp_path,
    )
    assert [r.path for r in e.reports] == [
        ("storage", "trees", i) for i in (0, 1, 2, 4, 6, 7, 8, 9, 10, 12, 14, 15)
    ]
    assert {r.message for r in e.reports} == {
        "matching filesystem node has existing contents or different type"
    }


def test_top_level_errors_come_from_the_first_pass() -> None:
    with pytest.raises(ButaneError) as e:
        translate(b"variant: fcos\nversion: 1.6.0\nstorage: {}\nstorage: {}\n")
    assert e.value.reason == (
        "Error unmarshaling yaml: yaml: unmarshal errors:\n"
        '  line 4: mapping key "storage" already defined at line 3'
    )
    with pytest.raises(ButaneError, match="cannot unmarshal !!seq into string"):
        translate(b"variant: [fcos]\nversion: 1.6.0\n")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_data_url_is_shortest_and_round_trips(data: bytes) -> None:
    src, comp = data_url(data, None)
    assert ignition.decode_source(src, comp) == data
    escaped = "data:," + url_escape(data)
    b64 = "data:;base64," + base64.b64encode(data).decode()
    plain_best = b64 if len(b64) < len(escaped) else escaped
    if comp == "gzip":
        assert len(src) + 4 < len(plain_best)
    else:
        assert comp == "" and src == plain_best
    # user compression: never compressed again, user's value kept
    assert data_url(data, "gzip") == (plain_best, "gzip")


def test_root_partition_warnings() -> None:
    t = tr(
        "storage:\n  disks:\n    - device: /dev/disk/by-id/coreos-boot-disk\n      partitions:\n"
        "        - label: root\n          number: 4\n        - label: var\n"
    )
    assert [str(r) for r in t.reports] == [
        "warning at $.storage.disks.0.partitions.0.size_mib, line 7 col 11: root partition cannot expand; "
        "it is set to fill available space but is followed by an auto-positioned partition"
    ]
    t = tr(
        "storage:\n  disks:\n    - device: /dev/disk/by-id/coreos-boot-disk\n      partitions:\n"
        "        - label: root\n          number: 4\n          size_mib: 4096\n"
    )
    assert [(r.path, r.message) for r in t.reports] == [
        (("storage", "disks", 0, "partitions", 0, "size_mib"), "root should have 8GiB of space assigned")
    ]


def test_tree_permissions_and_ownership_1_7(tmp_path: Path) -> None:
    """Upstream's v0_7 TestTranslateTree 'Permissions and ownership' case."""
    for rel, mode in (("tree/file", 0o600), ("tree/subdir/file", 0o644), ("tree2/file", 0o600)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
        os.chmod(tmp_path / rel, mode)
    os.symlink("../file", tmp_path / "tree/subdir/link")
    t = tr(
        "storage:\n  trees:\n    - local: tree\n      file_mode: 0777\n      user:\n        name: bovik\n"
        "      group:\n        id: 1000\n    - local: tree2\n      dir_mode: 0777\n      path: /etc\n",
        "1.7.0",
        files_dir=tmp_path,
    )
    owner = {"group": {"id": 1000}, "user": {"name": "bovik"}}
    storage = t.config["storage"]
    assert storage["directories"] == [
        {"group": {"id": 1000}, "path": "/", "user": {"name": "bovik"}, "mode": 0o755},
        {"group": {"id": 1000}, "path": "/subdir", "user": {"name": "bovik"}, "mode": 0o755},
        {"path": "/etc", "mode": 0o777},
    ]
    assert [(f["path"], f["mode"], {k: f.get(k) for k in owner if k in f}) for f in storage["files"]] == [
        ("/file", 0o777, owner),
        ("/subdir/file", 0o777, owner),
        ("/etc/file", 0o644, {}),
    ]
    assert storage["links"] == [{**owner, "path": "/subdir/link", "target": "../file"}]
    # a tree with ownership may not re-create an existing directory
    (tmp_path / "t3/etc").mkdir(parents=True)
    (tmp_path / "t3/etc/file").write_text("x")
    e = err(
        "storage:\n  directories:\n    - path: /etc\n  trees:\n    - local: t3\n"
        "      user:\n        name: bovik\n",
        "1.7.0",
        files_dir=tmp_path,
    )
    assert [(r.path, r.message) for r in e.reports] == [
        (("storage", "trees", 0), "matching filesystem node has existing contents or different type")
    ]


def test_pretty_report_format() -> None:
    from coreos_infra.butane import Report, format_pretty

    src = "a: 1\nbb: é-x y\n"
    r = Report("warning", "msg", ("bb",), 2, 5)
    assert format_pretty([r], src, "f.bu") == (
        "warning[$.bb]:\n  --> f.bu:2:5\n   |\n 1 | a: 1\n 2 | bb: é-x y\n   |     ^^^^ msg\n 3 | \n   |\n"
    )
    # no marker, or a marker outside the text: the raw line
    assert format_pretty([Report("error", "m", ("x",))], src, "f.bu") == "error at $.x: m\n"
    assert format_pretty([Report("error", "m", None, 9, 1)], src, "f.bu") == "error at line 9 col 1: m\n"
