"""Invoke tasks for coreos-infra: thin wrappers that parse options and call the library.

`invoke --list` shows them all; `invoke TASK --help` documents every option. One module per area; the
collection below keeps every task at the top level (`invoke build`, `invoke boot-test`, ...).
"""

from invoke import Collection

from tasks.boot import boot_test, demo, qemu_boot
from tasks.build import build, fetch, list_, mirror, render
from tasks.dev import bench, fixtures, lint, test
from tasks.nightly import nightly, nightly_report
from tasks.store import download, flash, prune, publish, share

TASKS = (lint, test, bench, fixtures, render, list_, fetch, mirror, build, boot_test, demo, qemu_boot,
         nightly, nightly_report, publish, prune, share, download, flash)  # fmt: skip
ns = Collection(*TASKS)
