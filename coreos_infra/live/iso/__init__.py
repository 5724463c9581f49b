"""CoreOS live ISO embed areas, coreos-installer compatible.

- :mod:`.iso9660` — primary-tree ISO 9660 reader.
- :mod:`.embed` — the Ignition embed area (igninfo.json / images/ignition.img).
- :mod:`.kargs` — kernel-argument areas (kargs.json / legacy header) and the karg editor.
- :mod:`.image` — :class:`LiveIso`: read, modify and save (in place, ``-o FILE``, ``-o -``).
- :mod:`.customize` — ``iso customize`` on top of :mod:`coreos_infra.live.customize`.
"""

from __future__ import annotations
