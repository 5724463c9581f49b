"""``iso customize``: apply :func:`coreos_infra.live.customize.customize` to a live ISO's embed areas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coreos_infra.live.customize import CustomizeError, CustomizeOptions, CustomizeResult, customize
from coreos_infra.live.iso.image import LiveIso
from coreos_infra.live.iso.kargs import edit_kargs

ALREADY_CUSTOMIZED = "This ISO image is already customized; use -f to force."


@dataclass(frozen=True)
class LiveKargs:
    """``--live-karg-*``: edits applied to the ISO's DEFAULT kernel arguments."""

    append: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.append or self.delete or self.replace)


def customize_iso(
    iso: LiveIso,
    opts: CustomizeOptions,
    *,
    live_karg_append: Sequence[str] = (),
    live_karg_delete: Sequence[str] = (),
    live_karg_replace: Sequence[str] = (),
    force: bool = False,
) -> CustomizeResult:
    """Queue the customization on ``iso`` (call ``iso.save(...)`` afterwards); return what was built."""
    if not force and iso.is_customized():  # with -f the old area is discarded unread
        raise CustomizeError(ALREADY_CUSTOMIZED)
    result = customize(opts, iso.features, flavor="iso")
    live = LiveKargs(tuple(live_karg_append), tuple(live_karg_delete), tuple(live_karg_replace))
    new_kargs = None
    if live:
        if iso.kargs_layout is None:
            raise CustomizeError("This OS image does not support customizing live kernel arguments.")
        new_kargs = edit_kargs(
            iso.default_kargs(), append=live.append, delete=live.delete, replace=live.replace
        )
    iso.set_initrd(result.initrd, background=True)
    if new_kargs is not None:
        iso.set_kargs(new_kargs)
    return result
