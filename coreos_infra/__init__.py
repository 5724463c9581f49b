"""coreos-infra: an image factory for Fedora CoreOS infrastructure hosts."""

__version__ = "0.1.0"
