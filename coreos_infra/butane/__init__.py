"""Butane → Ignition in pure Python (``variant: fcos`` 1.0.0–1.7.0, Ignition 3.0.0–3.6.0).

    >>> from coreos_infra.butane import translate
    >>> t = translate(b"variant: fcos\\nversion: 1.6.0\\n")
    >>> t.to_json()
    b'{"ignition":{"version":"3.5.0"}}\\n'

Errors raise :class:`ButaneError` whose ``str()`` is Butane's raw report
(``error at $.storage.files.0.path, line 5 col 13: path not absolute``); ``reports`` lists the entries.
"""

from __future__ import annotations

from coreos_infra.butane.engine import ButaneError, Translation, translate
from coreos_infra.butane.pretty import format_pretty
from coreos_infra.ignition.report import Report, format_reports

__all__ = ["ButaneError", "Report", "Translation", "format_pretty", "format_reports", "translate"]
