"""Shipping built images: stores (local directory, S3), layout, signing, indexes, publish/prune/share.

The technician's side (download, flash, the download page) lives here too; see ``docs/publish.md``.
"""
