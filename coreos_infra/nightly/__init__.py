"""The nightly pipeline: every (site, host, target) fetched, built, boot-tested, published if it passed.

- :mod:`.matrix`: the items in scope (``--sites/--hosts/--targets``).
- :mod:`.shard`: ``--shard I/N``, an even split that keeps most items on their shard when hosts are added.
- :mod:`.boot`: the boot-test step (QEMU through :mod:`coreos_infra.boottest`, or a static check).
- :mod:`.publisher`: the :class:`~.publisher.Publisher` seam to the store (``coreos_infra.publish``).
- :mod:`.runner`: the per-item steps and the run over all items (one failure does not stop the others).
- :mod:`.report`: ``summary.json``, ``summary.md`` and ``junit.xml``, and merging the shards' summaries.
"""
