"""BLS entries, the coreos-installer karg editor and console specs (coreos-installer-formats.md 6.3-6.4)."""

from __future__ import annotations

import pytest

from coreos_infra.disk.bls import (
    BlsEntry,
    BlsError,
    Console,
    edit_kargs,
    grub_console_commands,
    last_entry_name,
    rewrite_console_block,
)


def test_karg_editor_order_and_semantics() -> None:
    cur = "a b=1 c a"
    # delete runs before append whatever the order given; one of two adjacent duplicates survives
    assert edit_kargs("x x y", delete=["x"]) == "x y"
    assert edit_kargs(cur, append=["d"], delete=["a"]) == "b=1 c d"
    assert edit_kargs(cur, append=["  e  "]) == "a b=1 c a e"
    assert edit_kargs("foo=old bar", replace=["foo=old=new"]) == "foo=new bar"
    assert (
        edit_kargs("foo=old", delete=["foo=old"], append=["foo=old"], replace=["foo=old=new"]) == "foo=new"
    )
    with pytest.raises(BlsError, match="KEY=OLD=NEW"):
        edit_kargs("a", replace=["foo=bar"])
    # substrings are not touched
    assert edit_kargs("console=ttyS0,115200n8 console=tty0", delete=["console=tty"]) == (
        "console=ttyS0,115200n8 console=tty0"
    )


def test_bls_entry_rewrite_trims_other_lines() -> None:
    e = BlsEntry("title T   \nversion 2\t\noptions  a b  \nlinux /vmlinuz")
    assert e.options() == "a b"
    new = e.with_options("a b c")
    assert new.text == "title T\nversion 2\noptions a b c\nlinux /vmlinuz\n"
    with pytest.raises(BlsError, match="couldn't locate 'options' line"):
        BlsEntry("title x\n").options()
    with pytest.raises(BlsError, match="multiple 'options' lines"):
        BlsEntry("options a\noptions b\n").options()


def test_last_entry_is_the_default() -> None:
    assert last_entry_name(["ostree-2-fedora-coreos.conf", "ostree-1-fedora-coreos.conf", "x.txt"]) == (
        "ostree-2-fedora-coreos.conf"
    )
    with pytest.raises(BlsError, match="no BLS entries"):
        last_entry_name(["readme"])


@pytest.mark.parametrize(
    ("spec", "karg", "grub"),
    [
        ("ttyS0", "console=ttyS0,9600n8", "serial --unit=0 --speed=9600 --word=8 --parity=no"),
        ("ttyS1,115200", "console=ttyS1,115200n8", "serial --unit=1 --speed=115200 --word=8 --parity=no"),
        (
            "ttyAMA0,115200e7",
            "console=ttyAMA0,115200e7",
            "serial --unit=0 --speed=115200 --word=7 --parity=even",
        ),
        ("ttyS0,57600o", "console=ttyS0,57600o8", "serial --unit=0 --speed=57600 --word=8 --parity=odd"),
        ("tty0", "console=tty0", None),
        ("hvc0", "console=hvc0", None),
    ],
)
def test_console_specs(spec: str, karg: str, grub: str | None) -> None:
    c = Console.parse(spec)
    assert c.karg == karg
    assert c.grub_command() == grub


@pytest.mark.parametrize(
    "spec", ["console=ttyS0", "/dev/ttyS0", "ttyS0,fast", "ttyS0,115200x8", "ttyS0,9600n9", "tty1"]
)
def test_bad_console_specs(spec: str) -> None:
    with pytest.raises(BlsError):
        Console.parse(spec)


def test_grub_console_block() -> None:
    cmds = grub_console_commands([Console.parse("ttyS0,115200"), Console.parse("tty0")])
    assert cmds == [
        "serial --unit=0 --speed=115200 --word=8 --parity=no",
        "terminal_input console serial",
        "terminal_output console serial",
    ]
    cfg = "a\n# CONSOLE-SETTINGS-START\nold1\nold2\n# CONSOLE-SETTINGS-END\nb\n"
    new = rewrite_console_block(cfg, grub_console_commands([Console.parse("ttyS0,115200")]))
    assert new == (
        "a\n# CONSOLE-SETTINGS-START\nserial --unit=0 --speed=115200 --word=8 --parity=no\n"
        "terminal_input serial\nterminal_output serial\n# CONSOLE-SETTINGS-END\nb\n"
    )
    with pytest.raises(BlsError, match="CONSOLE-SETTINGS-START"):
        rewrite_console_block(
            "# CONSOLE-SETTINGS-START\nx\n# CONSOLE-SETTINGS-END\n", []
        )  # not after a newline
