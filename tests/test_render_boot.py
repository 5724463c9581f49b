"""Boot the lab site's DNS host config in QEMU (fixture OS, Debian's real Ignition) and run the overlays'
testinfra checks against it over SSH.

The offline fixture OS has no systemd or podman, so only the checks that need nothing but the files
Ignition wrote run here (``-m "not running"``); the ``running`` ones need a real FCOS boot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coreos_infra.qemu import free_port, running
from coreos_infra.recipes import load_project, render
from coreos_infra.recipes.output import checks_pytest_args
from coreos_infra.run import find_binary, run

REPO = Path(__file__).resolve().parent.parent
BOOT_TIMEOUT = 600  # TCG on a loaded 2-core machine


@pytest.mark.boot
@pytest.mark.slow
def test_dns_host_checks_pass_on_booted_host(fixture_mirror, tmp_path):
    key = tmp_path / "id_ed25519"
    run([find_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", "boot-test", "-f", str(key)])
    rendered = render(
        load_project(REPO),
        target="metal",
        site="lab",
        host="dns1",
        extra_ssh_keys=[(tmp_path / "id_ed25519.pub").read_text().strip()],
    )
    # Debian's Ignition 2.14.0 in the fixture OS knows spec 3.4.0 only as 3.4.0-experimental
    cfg = json.loads(rendered.ignition)
    assert cfg["ignition"]["version"] == "3.4.0"
    cfg["ignition"]["version"] = "3.4.0-experimental"
    port = free_port()
    vm = fixture_mirror.os["x86_64"].direct_boot(
        tmp_path / "vm", ignition=json.dumps(cfg).encode(), kargs=["fixture.ssh=1"], ssh_port=port
    )
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        f"Host *\n  IdentityFile {key}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n  ConnectTimeout 30\n"
    )
    until = ["FIXTURE-SSH-READY", "FIXTURE-IGNITION-FAILED"]
    with running(vm, until=until, timeout=BOOT_TIMEOUT, log_path=tmp_path / "serial.log") as log:
        assert log.reason == "marker:FIXTURE-SSH-READY", log.text[-3000:]
        assert "FIXTURE-IGNITION-OK" in log.text
        args = checks_pytest_args(rendered, f"ssh://core@127.0.0.1:{port}", running=False)
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rA", f"--ssh-config={ssh_config}", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert out.returncode == 0, out.stdout[-8000:] + out.stderr[-2000:]
    passed = [line for line in out.stdout.splitlines() if line.startswith("PASSED ")]
    overlays = {line.split()[1].split("/")[1] for line in passed}
    assert overlays == {"base", "network", "monitoring", "dns", "ntp"}
    for check in (
        "dns/checks.py::test_binds_lan_address_only",
        "base/checks.py::test_zincati_strategy",
        "network/checks.py::test_keyfile_for_static_hosts",
        "ntp/checks.py::test_config_replaced",
    ):
        assert any(check in line for line in passed), check
    assert " failed" not in out.stdout
