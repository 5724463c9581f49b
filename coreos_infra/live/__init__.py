"""The coreos-installer "live" media: what ``coreos-installer iso`` and ``pxe`` do, and what they share.

- :mod:`.customize` — ``customize`` semantics shared by ``iso customize`` and ``pxe customize``: the
  options, the live Ignition config, the installer configs and the files to embed (pure functions).
- :mod:`.iso` — the live ISO: its embed areas (Ignition, kernel arguments, network) and ``iso customize``.
- :mod:`.pxe` — PXE netboot: initrd wrapping, ``pxe customize``, boot loader configs, DHCP snippets and
  the netboot bundle.

Importing this package imports nothing else (the CLI stays cheap to start, tests/test_cli_imports.py).
"""

from __future__ import annotations
