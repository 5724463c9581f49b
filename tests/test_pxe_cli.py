"""`coreos-infra pxe ...`: coreos-installer compatible commands, flags and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_pxe import CONFIG_A, FIXTURES, fcos_like_initramfs

from coreos_infra import cli
from coreos_infra.cpio import read_initrd


@pytest.fixture(autouse=True)
def only_pxe(monkeypatch: pytest.MonkeyPatch) -> None:
    # other areas are developed in parallel; the pxe commands must work on their own
    monkeypatch.setattr(cli, "AREAS", ("pxe",))


def test_ignition_wrap_unwrap_via_files_and_stdio(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "config.ign"
    cfg.write_bytes(CONFIG_A)
    out = tmp_path / "ign.img"
    assert cli.main(["pxe", "ignition", "wrap", "-i", str(cfg), "-o", str(out)]) == 0
    assert read_initrd(out.read_bytes()) == {"config.ign": CONFIG_A}
    assert cli.main(["pxe", "ignition", "wrap", "-i", str(cfg)]) == 0
    assert capsysbinary.readouterr().out == out.read_bytes()
    assert cli.main(["pxe", "ignition", "unwrap", str(out)]) == 0
    assert capsysbinary.readouterr().out == CONFIG_A

    class FakeStdin:
        buffer = type("B", (), {"read": staticmethod(lambda: fcos_like_initramfs() + out.read_bytes())})()

    monkeypatch.setattr("sys.stdin", FakeStdin())
    assert cli.main(["pxe", "ignition", "unwrap"]) == 0
    assert capsysbinary.readouterr().out == CONFIG_A


def test_unwrap_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "i.img"
    img.write_bytes(fcos_like_initramfs())
    assert cli.main(["pxe", "ignition", "unwrap", str(img)]) == 1
    assert "couldn't find Ignition config in archive" in capsys.readouterr().err
    assert cli.main(["pxe", "ignition", "unwrap", str(tmp_path / "nope")]) == 1
    assert "nope" in capsys.readouterr().err
    trav = FIXTURES / "initrd" / "traversal-relative.img"
    assert cli.main(["pxe", "network", "unwrap", str(trav)]) == 1
    assert "escapes the archive root" in capsys.readouterr().err


def test_refuses_binary_to_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    cfg = tmp_path / "c.ign"
    cfg.write_bytes(b"{}")
    assert cli.main(["pxe", "ignition", "wrap", "-i", str(cfg)]) == 1
    assert "Refusing to write binary data to terminal" in capsys.readouterr().err


def test_network_wrap_unwrap(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    kf = FIXTURES / "customize" / "installer-test.nmconnection"
    out = tmp_path / "net.img"
    assert cli.main(["pxe", "network", "wrap", "-k", str(kf), "-o", str(out)]) == 0
    assert cli.main(["pxe", "network", "unwrap", str(out)]) == 0
    assert (
        capsysbinary.readouterr().out
        == b"########## installer-test.nmconnection ##########\n" + kf.read_bytes()
    )
    assert cli.main(["pxe", "network", "unwrap", "-C", str(tmp_path / "d"), str(out)]) == 0
    assert capsysbinary.readouterr().out == f"{tmp_path / 'd' / 'installer-test.nmconnection'}\n".encode()
    assert (tmp_path / "d" / "installer-test.nmconnection").read_bytes() == kf.read_bytes()


def test_customize_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "initramfs.img"
    src.write_bytes(fcos_like_initramfs())
    out = tmp_path / "custom.img"
    cust = FIXTURES / "customize"
    argv = ["pxe", "customize", "--dest-device", "/dev/vda", "--dest-ignition", str(cust / "dest-2.ign"),
            "--pre-install", str(cust / "install-1.conf"), "-o", str(out), str(src)]  # fmt: skip
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "Boot media will automatically install to /dev/vda without confirmation." in err
    assert (
        "PXE configuration must include kernel arguments:\n\tignition.firstboot ignition.platform.id=metal"
        in err
    )
    members = read_initrd(out.read_bytes(), "config.ign")
    assert b"/usr/local/bin/pre-install-install-1.conf" in members["config.ign"]
    # a second run refuses to overwrite, a customized input is refused
    assert cli.main(argv) == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert cli.main(["pxe", "customize", "-o", str(tmp_path / "again.img"), str(out)]) == 1
    assert "input is already customized" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["pxe", "customize", str(src)])  # -o is required
    assert e.value.code == 2


def test_bundle_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = {"kernel": b"kernel" * 100, "initramfs": fcos_like_initramfs(), "rootfs": b"rootfs" * 100}
    for name, data in base.items():
        (tmp_path / name).write_bytes(data)
    cfg = tmp_path / "c.ign"
    cfg.write_bytes(b'{"ignition":{"version":"3.3.0"}}')
    files = [f"--{n}={tmp_path / n}" for n in ("kernel", "initramfs", "rootfs")]
    argv = ["pxe", "bundle", *files, "-i", str(cfg), "-o", str(tmp_path / "out"), "--name", "n1",
            "--base-url", "http://10.1.1.1/n1", "--console", "ttyS0,115200n8", "--karg", "quiet",
            "--uefi-loader", "grub"]  # fmt: skip
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [str(tmp_path / "out" / "n1-pxe.tar"), str(tmp_path / "out" / "n1-pxe")]
    assert err.strip().endswith(
        "kernel arguments: ignition.firstboot ignition.platform.id=metal "
        "coreos.live.rootfs_url=http://10.1.1.1/n1/rootfs.img console=ttyS0,115200n8 quiet"
    )
    bundle = tmp_path / "out" / "n1-pxe"
    assert (
        "dhcp-boot=tag:pxe-efi-x64,tag:!ipxe,grubx64.efi,,10.1.1.1" in (bundle / "dnsmasq.conf").read_text()
    )
    assert (tmp_path / "out" / "meta.json").exists()
    assert cli.main([*argv, "--base-url", "ftp://x"]) == 1
    assert "base_url" in capsys.readouterr().err


def test_customize_reads_a_pipe_once(tmp_path: Path) -> None:
    """An input that cannot be read twice (a pipe) is copied as it is read, to a file or to stdout: the
    same bytes as from a regular file."""
    import os
    import subprocess
    import sys

    src = tmp_path / "initramfs.img"
    src.write_bytes(fcos_like_initramfs())
    args = ["pxe", "customize", "--dest-device", "/dev/vda"]
    assert cli.main([*args, "-o", str(tmp_path / "from-file.img"), str(src)]) == 0
    expected = (tmp_path / "from-file.img").read_bytes()
    assert expected.startswith(src.read_bytes()) and len(expected) > src.stat().st_size
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    run = [sys.executable, "-m", "coreos_infra", *args]
    for output in (["-o", str(tmp_path / "from-pipe.img")], ["-o", "-"]):
        with open(src, "rb") as f:
            cat = subprocess.Popen(["cat"], stdin=f, stdout=subprocess.PIPE)
            r = subprocess.run([*run, *output, "/dev/stdin"], stdin=cat.stdout, capture_output=True, env=env)
            cat.wait()
        assert r.returncode == 0, r.stderr.decode()
        got = r.stdout if output[1] == "-" else (tmp_path / "from-pipe.img").read_bytes()
        assert got == expected
