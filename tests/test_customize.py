"""``customize`` semantics (shared by ``iso customize`` and ``pxe customize``), formats reference §4.3.

Generated configs are checked byte for byte where the reference gives bytes, decoded and compared
structurally otherwise, and validated with Debian's real ``ignition-validate``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import lzma
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from shared_fixtures import corpus, require

from coreos_infra import cpio
from coreos_infra.ignition.installer import IgnitionConfigError, parse_config
from coreos_infra.live.customize import (
    Console,
    CustomizeError,
    CustomizeOptions,
    Features,
    InputFile,
    build_live_config,
    customize,
    grub_console_commands,
    hook_unit,
    installer_config_files,
    make_resource,
    parse_install_config,
    serialize_install_config,
)
from coreos_infra.live.iso.customize import customize_iso
from coreos_infra.live.iso.image import LiveIso

ROOT = Path(__file__).resolve().parent.parent
CUSTOMIZE = corpus("coreos-installer/customize")
ISO_FIXTURES = corpus("coreos-installer/iso")
ALL_FEATURES = Features(True, {"console": True}, True)


def fx(name: str) -> InputFile:
    require("coreos-installer/customize")
    return InputFile.read(CUSTOMIZE / name)


def script(name: str, text: str = "#!/bin/bash\necho hi\n") -> InputFile:
    return InputFile(f"/some/dir/{name}", text.encode())


def decode_resource(res: dict[str, Any]) -> bytes:
    assert res["compression"] == "gzip"
    prefix = "data:;base64,"
    assert res["source"].startswith(prefix)
    return gzip.decompress(base64.b64decode(res["source"][len(prefix) :]))


def files_of(config: bytes) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in json.loads(config).get("storage", {}).get("files", [])}


def validate(config: bytes, tmp_path: Path) -> None:
    path = tmp_path / "validate.ign"
    path.write_bytes(config)
    r = subprocess.run(["ignition-validate", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ reference vectors


def test_vector_b_resource() -> None:
    assert make_resource(b"dest-device: /dev/sda\n") == {
        "compression": "gzip",
        "source": "data:;base64,H4sIAAAAAAAC/0tJLS7RTUkty0xOtVLQBzL0i1MSuQC8WxEgFgAAAA==",
    }


def test_vector_c_dest_device() -> None:
    result = customize(CustomizeOptions(dest_device="/dev/sda"), ALL_FEATURES)
    expected = (
        b'{"ignition":{"version":"3.3.0"},"storage":{"files":[{"contents":{"compression":"gzip","source":'
        b'"data:;base64,H4sIAAAAAAAC/0tJLS7RTUkty0xOtVLQBzL0i1MSuQC8WxEgFgAAAA=="},"mode":384,'
        b'"overwrite":null,"path":"/etc/coreos/installer.d/0000-customize.yaml"}]}}\n'
    )
    assert result.initrd == {"config.ign": expected}
    cpio_bytes = cpio.initrd_cpio(result.initrd)
    assert len(cpio_bytes) == 504
    digest = hashlib.sha256(cpio_bytes).hexdigest()
    assert digest.startswith("cca35e37") and digest.endswith("9b9b")
    assert result.messages == ("Boot media will automatically install to /dev/sda without confirmation.",)
    assert result.installer_configs == {
        "/etc/coreos/installer.d/0000-customize.yaml": b"dest-device: /dev/sda\n"
    }
    assert result.runs_installer


def test_upstream_integration_option_set(tmp_path: Path) -> None:
    """The option set of upstream's customize.sh gives the documented customize.yaml."""
    opts = CustomizeOptions(
        dest_ignition=(fx("dest.ign"), fx("dest-2.ign")),
        dest_device="/dev/vda",
        dest_console=("ttyS0,115200",),
        dest_karg_append=("dest-karg", "ignition.platform.id=qemu", "systemd.log_color=0", "rd.neednet=1"),
        dest_karg_delete=("ignition.platform.id=metal",),
        network_keyfile=(fx("installer-test.nmconnection"),),
        ignition_ca=(fx("cert.pem"),),
        pre_install=(script("pre-install-1"), script("pre-install-2")),
        post_install=(script("post-install-1"), script("post-install-2")),
        installer_config=(fx("install-1.conf"), fx("install-2.conf")),
        live_ignition=(fx("live.ign"), fx("live-2.ign")),
    )
    result = customize(opts, ALL_FEATURES)
    assert result.installer_configs["/etc/coreos/installer.d/0002-customize.yaml"] == (
        b"ignition-file: /etc/coreos/dest.ign\nconsole:\n- ttyS0,115200n8\nappend-karg:\n- dest-karg\n"
        b"- ignition.platform.id=qemu\n- systemd.log_color=0\n- rd.neednet=1\ndelete-karg:\n"
        b"- ignition.platform.id=metal\ncopy-network: true\ndest-device: /dev/vda\n"
    )
    live = result.live_config
    assert live is not None and result.initrd["config.ign"] == live
    assert (
        result.initrd["etc/coreos-firstboot-network/installer-test.nmconnection"]
        == (CUSTOMIZE / "installer-test.nmconnection").read_bytes()
    )
    doc = json.loads(live)
    assert list(doc) == ["ignition", "storage", "systemd"]
    assert list(doc["ignition"]) == ["config", "security", "version"]
    assert doc["ignition"]["version"] == "3.3.0"
    # storage.files insertion order: hooks, user installer configs, dest.ign, customize.yaml
    assert [f["path"] for f in doc["storage"]["files"]] == [
        "/usr/local/bin/pre-install-pre-install-1",
        "/usr/local/bin/pre-install-pre-install-2",
        "/usr/local/bin/post-install-post-install-1",
        "/usr/local/bin/post-install-post-install-2",
        "/etc/coreos/installer.d/0000-install-1.conf",
        "/etc/coreos/installer.d/0001-install-2.conf",
        "/etc/coreos/dest.ign",
        "/etc/coreos/installer.d/0002-customize.yaml",
    ]
    modes = [f["mode"] for f in doc["storage"]["files"]]
    assert modes == [0o700] * 4 + [0o600] * 4
    assert all(f["overwrite"] is None and list(f) == ["contents", "mode", "overwrite", "path"]
               for f in doc["storage"]["files"])  # fmt: skip
    assert [u["name"] for u in doc["systemd"]["units"]] == [
        "pre-install-pre-install-1.service",
        "pre-install-pre-install-2.service",
        "post-install-post-install-1.service",
        "post-install-post-install-2.service",
    ]
    assert all(u["enabled"] is True and u["mask"] is None for u in doc["systemd"]["units"])
    # live CA, live merges (own version, compact, no trailing newline)
    (ca,) = doc["ignition"]["security"]["tls"]["certificateAuthorities"]
    assert decode_resource(ca) == (CUSTOMIZE / "cert.pem").read_bytes()
    merges = [decode_resource(r) for r in doc["ignition"]["config"]["merge"]]
    assert merges[0] == parse_config((CUSTOMIZE / "live.ign").read_bytes()).to_bytes(newline=False)
    assert b'"mask":null' in merges[0] and not merges[0].endswith(b"\n")
    # dest: wrapped (CA + two user configs), 3.3.0
    dest = json.loads(decode_resource(files_of(live)["/etc/coreos/dest.ign"]["contents"]))
    assert dest["ignition"]["version"] == "3.3.0"
    assert (
        decode_resource(dest["ignition"]["security"]["tls"]["certificateAuthorities"][0])
        == (CUSTOMIZE / "cert.pem").read_bytes()
    )
    assert len(dest["ignition"]["config"]["merge"]) == 2
    assert result.dest_config == decode_resource(files_of(live)["/etc/coreos/dest.ign"]["contents"])
    validate(live, tmp_path)
    validate(result.dest_config, tmp_path)


# ------------------------------------------------------------------ pieces


def test_single_dest_is_not_wrapped() -> None:
    require("coreos-installer/customize")
    data = (CUSTOMIZE / "dest-2.ign").read_bytes()
    result = customize(CustomizeOptions(dest_ignition=(fx("dest-2.ign"),)), ALL_FEATURES)
    assert result.dest_config == parse_config(data).to_bytes()
    assert result.dest_config.endswith(b"}\n") and b'"mask":null' in result.dest_config
    assert result.messages == ("Boot media will automatically run installer.",)
    assert (
        result.installer_configs["/etc/coreos/installer.d/0000-customize.yaml"]
        == b"ignition-file: /etc/coreos/dest.ign\n"
    )


def test_single_dest_with_ca_is_wrapped() -> None:
    result = customize(CustomizeOptions(dest_ignition=(fx("dest-2.ign"),), ignition_ca=(fx("cert.pem"),)),
                       ALL_FEATURES)  # fmt: skip
    assert result.dest_config is not None
    dest = json.loads(result.dest_config)
    assert len(dest["ignition"]["config"]["merge"]) == 1
    assert "certificateAuthorities" in dest["ignition"]["security"]["tls"]


def test_ca_without_dest_only_live() -> None:
    result = customize(CustomizeOptions(ignition_ca=(fx("cert.pem"),)), Features())
    assert result.dest_config is None and not result.runs_installer and result.messages == ()
    assert set(result.initrd) == {"config.ign"}


def test_user_config_reserialized_per_version() -> None:
    src = (
        b'{"ignition":{"version":"3.0.0"},"zzz":1,"storage":{"files":[{"path":"/a","mode":420,'
        b'"contents":{"source":"data:,x"},"bogus":{"q":1}}],"disks":[{"device":"/dev/sda",'
        b'"partitions":[{"number":1,"label":"x"}]}]},"systemd":{"units":[{"name":"a.service"}]}}'
    )
    parsed = parse_config(src)
    assert parsed.version == "3.0.0"
    assert parsed.warnings == ("unused key: $.zzz", "unused key: $.storage.files.0.bogus")
    assert parsed.to_bytes() == (
        b'{"ignition":{"version":"3.0.0"},"storage":{"disks":[{"device":"/dev/sda","partitions":[{"guid":null,'
        b'"label":"x","number":1,"shouldExist":null,"sizeMiB":null,"startMiB":null,"typeGuid":null,'
        b'"wipePartitionEntry":null}],"wipeTable":null}],"files":[{"contents":{"compression":null,'
        b'"source":"data:,x"},"mode":420,"overwrite":null,"path":"/a"}]},"systemd":{"units":[{"contents":null,'
        b'"enabled":null,"mask":null,"name":"a.service"}]}}\n'
    )
    # 3.3.0 resources carry httpHeaders/verification only when present; kernelArguments exist from 3.3
    p33 = parse_config(b'{"ignition":{"version":"3.3.0"},"kernelArguments":{"shouldExist":["a"]}}')
    assert p33.to_bytes() == b'{"ignition":{"version":"3.3.0"},"kernelArguments":{"shouldExist":["a"]}}\n'
    p32 = parse_config(b'{"ignition":{"version":"3.2.0"},"kernelArguments":{"shouldExist":["a"]}}')
    assert p32.warnings == ("unused key: $.kernelArguments",)
    hdr = parse_config(
        b'{"ignition":{"version":"3.1.0","config":{"merge":[{"source":"http://x","httpHeaders":[{"name":"a"}]}]}}}'
    )
    assert hdr.to_bytes() == (
        b'{"ignition":{"config":{"merge":[{"compression":null,"httpHeaders":[{"name":"a","value":null}],'
        b'"source":"http://x"}]},"version":"3.1.0"}}\n'
    )


def test_live_ignition_warning_reported() -> None:
    cfg = InputFile("odd.ign", b'{"ignition":{"version":"3.4.0"},"a":{"b":1}}')
    result = customize(CustomizeOptions(live_ignition=(cfg,)), Features())
    assert result.warnings == ("Warning parsing odd.ign: unused key: $.a",)
    merge = json.loads(result.initrd["config.ign"])["ignition"]["config"]["merge"]
    assert decode_resource(merge[0]) == b'{"ignition":{"version":"3.4.0"}}'
    assert not result.runs_installer


def test_wrong_types_are_worded_like_serde() -> None:
    """ignition-config-rs names structs by their serde rename (the schema's names)."""
    cases = {
        b'"storage":{"files":["x"]}': '$.storage.files.0: invalid type: string "x", expected struct file',
        b'"storage":1': "$.storage: invalid type: integer `1`, expected struct storage",
        b'"passwd":{"users":[[]]}': "$.passwd.users.0: invalid type: sequence, expected struct user",
        b'"ignition":{"version":"3.3.0","security":{"tls":true}}': (
            "$.ignition.security.tls: invalid type: boolean `true`, expected struct SecurityTls"
        ),
        b'"storage":{"files":[{"path":"/a","mode":1.5}]}': (
            "$.storage.files.0.mode: invalid type: floating point `1.5`, expected i64"
        ),
    }
    for body, message in cases.items():
        data = b'{"ignition":{"version":"3.3.0"},' + body + b"}"
        if body.startswith(b'"ignition"'):
            data = b"{" + body + b"}"
        with pytest.raises(IgnitionConfigError) as e:
            parse_config(data)
        assert str(e.value) == message


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not json", "serialization error"),
        (b'{"ignition":{"version":"2.2.0"}}', "unsupported config version: 2.2.0"),
        (b'{"ignition":{"version":"3.0.0-experimental"}}', "unsupported config version"),
        (b'{"ignition":{"version":"z"}}', "couldn't parse config version"),
        (b'{"ignition":{"version":"3.3.0"},"storage":{"files":[{"mode":1}]}}', "missing field `path`"),
        (
            b'{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/a","mode":"420"}]}}',
            "invalid type",
        ),
        (
            b'{"ignition":{"version":"3.3.0"},"systemd":{"units":[{"name":"a","name":"b"}]}}',
            "duplicate field",
        ),
    ],
)
def test_bad_ignition_configs(data: bytes, why: str) -> None:
    with pytest.raises(IgnitionConfigError, match=why):
        parse_config(data)
    for opts in (CustomizeOptions(dest_ignition=(InputFile("x.ign", data),)),
                 CustomizeOptions(live_ignition=(InputFile("x.ign", data),))):  # fmt: skip
        with pytest.raises(CustomizeError, match="parsing Ignition config x.ign"):
            customize(opts, ALL_FEATURES)


def test_hooks() -> None:
    opts = CustomizeOptions(pre_install=(script("check.sh"),), post_install=(script("done.sh"),))
    result = customize(opts, Features())
    doc = json.loads(result.initrd["config.ign"])
    units = {u["name"]: u["contents"] for u in doc["systemd"]["units"]}
    assert units["pre-install-check.sh.service"] == (
        "# Generated by coreos-installer {iso|pxe} customize\n\n[Unit]\n"
        "Description=Pre-Install Script (check.sh)\n"
        "Documentation=https://coreos.github.io/coreos-installer/customizing-install/\n"
        "After=coreos-installer-pre.target\nBefore=coreos-installer.service\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/local/bin/pre-install-check.sh\nRemainAfterExit=true\n"
        "StandardOutput=kmsg+console\nStandardError=kmsg+console\n\n[Install]\nRequiredBy=coreos-installer.service"
    )
    assert units["post-install-done.sh.service"] == hook_unit("pxe", "post", "done.sh")
    assert (
        "After=coreos-installer.service\nBefore=coreos-installer.target"
        in units["post-install-done.sh.service"]
    )
    assert units["post-install-done.sh.service"].endswith("RequiredBy=coreos-installer.target")
    assert decode_resource(files_of(result.initrd["config.ign"])["/usr/local/bin/pre-install-check.sh"][
        "contents"]) == b"#!/bin/bash\necho hi\n"  # fmt: skip
    assert not result.runs_installer  # hooks alone do not start the installer
    with pytest.raises(CustomizeError, match="config already specifies path /usr/local/bin/pre-install-a"):
        customize(CustomizeOptions(pre_install=(script("a"), InputFile("other/a", b"x"))), Features())


def test_installer_configs_and_gating() -> None:
    opts = CustomizeOptions(
        installer_config=(fx("install-1.conf"), fx("install-2.conf")), dest_device="/dev/sdb"
    )
    files = installer_config_files(opts, ALL_FEATURES)
    assert list(files) == [
        "/etc/coreos/installer.d/0000-install-1.conf",
        "/etc/coreos/installer.d/0001-install-2.conf",
        "/etc/coreos/installer.d/0002-customize.yaml",
    ]
    assert (
        files["/etc/coreos/installer.d/0000-install-1.conf"] == (CUSTOMIZE / "install-1.conf").read_bytes()
    )
    only_user = customize(CustomizeOptions(installer_config=(fx("install-1.conf"),)), ALL_FEATURES)
    assert only_user.messages == ("Boot media will automatically run installer.",)
    assert list(only_user.installer_configs) == ["/etc/coreos/installer.d/0000-install-1.conf"]
    with pytest.raises(CustomizeError, match="does not support customizing installer configuration"):
        customize(CustomizeOptions(dest_device="/dev/sda"), Features())
    with pytest.raises(CustomizeError, match="does not support customizing network settings"):
        customize(CustomizeOptions(network_keyfile=(fx("installer-test.nmconnection"),)), Features())
    with pytest.raises(CustomizeError, match="does not support customizing the destination console"):
        customize(CustomizeOptions(dest_console=("ttyS0",)), Features(installer_config=True))
    for bad in (b"{", b"bogus-key: 1\n", b"copy-network: maybe\n", b"- a\n", b"ignition-hash: md5-00\n"):
        with pytest.raises(CustomizeError, match="parsing installer config bad.yaml"):
            customize(CustomizeOptions(installer_config=(InputFile("bad.yaml", bad),)), ALL_FEATURES)
    with pytest.raises(CustomizeError, match="parsing installer config"):
        customize(CustomizeOptions(installer_config=(fx("live.bu"),)), ALL_FEATURES)


def test_network_keyfiles_alone() -> None:
    result = customize(CustomizeOptions(network_keyfile=(fx("installer-test.nmconnection"),)), ALL_FEATURES)
    assert set(result.initrd) == {"etc/coreos-firstboot-network/installer-test.nmconnection"}
    assert result.live_config is None and not result.runs_installer and result.messages == ()
    with pytest.raises(CustomizeError, match="config already specifies keyfile installer-test.nmconnection"):
        customize(CustomizeOptions(network_keyfile=(fx("installer-test.nmconnection"),) * 2), ALL_FEATURES)
    # with the installer running, copy-network is set
    files = installer_config_files(
        CustomizeOptions(dest_device="/dev/sda", network_keyfile=(fx("installer-test.nmconnection"),)),
        ALL_FEATURES,
    )
    assert (
        files["/etc/coreos/installer.d/0000-customize.yaml"]
        == b"copy-network: true\ndest-device: /dev/sda\n"
    )


def test_no_options_no_config() -> None:
    result = customize(CustomizeOptions(), Features())
    assert result.initrd == {} and build_live_config(CustomizeOptions(), Features()) is None
    assert CustomizeOptions().is_empty() and not CustomizeOptions(dest_device="x").is_empty()


def test_consoles() -> None:
    assert str(Console.parse("ttyS0,115200")) == "ttyS0,115200n8"
    assert Console.parse("ttyS1").karg == "console=ttyS1,9600n8"
    assert str(Console.parse("ttyAMA0,115200e7")) == "ttyAMA0,115200e7"
    assert str(Console.parse("tty0")) == "tty0"
    bad_specs = ("foo", "/dev/tty0", "console=ttyS0", "ztty0", "tty0z", "ttyS0z", "tty1", "hvc1", "ttysclp1",
                 "ttyS0,", "ttyS0,z", "ttyS0,115200p8", "ttyS0,115200n4", "ttyS0,115200n8r", "ttyB0",
                 "ttyS9999999999999999999", "ttyS0,999999999999999999999")  # fmt: skip
    for bad in bad_specs:
        with pytest.raises(CustomizeError, match="invalid console"):
            Console.parse(bad)
    with pytest.raises(CustomizeError, match='spec should not start with "console="'):
        Console.parse("console=tty0")
    for spec, karg, grub in [
        ("hvc0", "console=hvc0", None),
        ("ttyAMA1", "console=ttyAMA1,9600n8", "serial --unit=1 --speed=9600 --word=8 --parity=no"),
        (
            "ttyS1,1234567e5",
            "console=ttyS1,1234567e5",
            "serial --unit=1 --speed=1234567 --word=5 --parity=even",
        ),
        ("ttyS2,5o", "console=ttyS2,5o8", "serial --unit=2 --speed=5 --word=8 --parity=odd"),
    ]:
        assert Console.parse(spec).karg == karg and Console.parse(spec).grub_command() == grub
    assert grub_console_commands([Console.parse("ttyS0,115200")]) == [
        "serial --unit=0 --speed=115200 --word=8 --parity=no",
        "terminal_input serial",
        "terminal_output serial",
    ]
    assert grub_console_commands([Console.parse("tty0"), Console.parse("ttyS1,57600o7")]) == [
        "serial --unit=1 --speed=57600 --word=7 --parity=odd",
        "terminal_input console serial",
        "terminal_output console serial",
    ]


def test_install_config_yaml_round_trip() -> None:
    conf = {
        "dest-device": "/dev/disk/by-id/x",
        "append-karg": ["true", "1.5", "a: b", "it's", "#x", "plain=value", "", "null", "0x1f"],
        "copy-network": True,
        "fetch-retries": "3",
    }
    text = serialize_install_config(conf)
    assert text == (
        b"append-karg:\n- 'true'\n- '1.5'\n- 'a: b'\n- it's\n- '#x'\n- plain=value\n- ''\n"
        b"- 'null'\n- '0x1f'\n"
        b"copy-network: true\nfetch-retries: '3'\ndest-device: /dev/disk/by-id/x\n"
    )
    back = yaml.safe_load(text)
    assert back["append-karg"] == conf["append-karg"] and back["dest-device"] == conf["dest-device"]
    parsed = parse_install_config(text, "x.yaml")
    assert parsed["append-karg"] == conf["append-karg"] and parsed["copy-network"] is True


def test_features_parse() -> None:
    f = Features.parse(b'{"installer-config": true, "live-initrd-network": false, "future": 1}')
    assert f.installer_config and not f.live_initrd_network and f.installer_config_directives == {}
    with pytest.raises(CustomizeError, match="parsing OS features"):
        Features.parse(b"[")


# ------------------------------------------------------------------ on ISO fixtures (customize.sh)


@pytest.fixture
def fixture_iso(tmp_path: Path):  # type: ignore[no-untyped-def]
    require("coreos-installer/iso")

    def make(name: str) -> Path:
        p = tmp_path / f"{name}.iso"
        p.write_bytes(lzma.decompress((ISO_FIXTURES / f"embed-areas-{name}.iso.xz").read_bytes()))
        return p

    return make


def test_iso_customize_gating(fixture_iso) -> None:  # type: ignore[no-untyped-def]
    iso_2021 = fixture_iso("2021-09")
    with LiveIso(iso_2021) as iso, pytest.raises(CustomizeError, match="customizing network settings"):
        customize_iso(iso, CustomizeOptions(network_keyfile=(fx("installer-test.nmconnection"),)))
    with (
        LiveIso(iso_2021) as iso,
        pytest.raises(CustomizeError, match="customizing installer configuration"),
    ):
        customize_iso(iso, CustomizeOptions(dest_device="/dev/sda"))
    with LiveIso(iso_2021) as iso:  # pre-install + live kargs work without features.json
        customize_iso(iso, CustomizeOptions(pre_install=(script("x"),)), live_karg_append=["foo"])
        iso.save()
    with LiveIso(iso_2021) as iso:
        assert iso.kargs().endswith(" foo") and iso.ignition() is not None
        with pytest.raises(CustomizeError, match="This ISO image is already customized; use -f to force."):
            customize_iso(iso, CustomizeOptions(pre_install=(script("x"),)))
    with (
        LiveIso(fixture_iso("2020-09")) as iso,
        pytest.raises(CustomizeError, match="live kernel arguments"),
    ):
        customize_iso(iso, CustomizeOptions(), live_karg_append=["foo"])


def test_iso_customize_live_kargs_only(fixture_iso) -> None:  # type: ignore[no-untyped-def]
    path = fixture_iso("2023-07.x86_64")
    with LiveIso(path) as iso:
        default = iso.default_kargs()
        customize_iso(
            iso,
            CustomizeOptions(),
            live_karg_append=["a"],
            live_karg_delete=["ignition.firstboot"],
            live_karg_replace=["ignition.platform.id=metal=qemu"],
        )
        iso.save()
    with LiveIso(path) as iso:
        assert iso.initrd() == {}  # only-live-kargs customization embeds no Ignition config
        assert iso.kargs() == default.replace(" ignition.firstboot", "").replace("=metal", "=qemu") + " a"
        assert iso.is_customized()
        # -f starts again from the DEFAULT kargs
        customize_iso(iso, CustomizeOptions(), live_karg_append=["b"], force=True)
        assert iso.kargs() == default + " b"
        # -f without live-karg options keeps earlier custom kargs
        customize_iso(iso, CustomizeOptions(dest_device="/dev/sda"), force=True)
        assert iso.kargs() == default + " b"


def test_iso_customize_force_replaces_members(fixture_iso) -> None:  # type: ignore[no-untyped-def]
    path = fixture_iso("2023-07.x86_64")
    with LiveIso(path) as iso:
        iso.set_initrd({"config.ign": b"{}", "etc/coreos-firstboot-network/a.nmconnection": b"x"})
        iso.save()
    with LiveIso(path) as iso:
        customize_iso(iso, CustomizeOptions(dest_device="/dev/sda"), force=True)
        iso.save()
    with LiveIso(path) as iso:
        assert set(iso.initrd()) == {"config.ign"}
        assert b"0000-customize.yaml" in (iso.ignition() or b"")


def test_tools_available() -> None:
    for tool in ("ignition-validate", "xzcat", "cpio", "isoinfo", "xorriso"):
        assert shutil.which(tool), f"{tool} is needed by the ISO tests (scripts/setup installs it)"
