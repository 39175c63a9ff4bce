"""Shift catalogue: 14 image corruptions x severity 1..5 and 2 label shifts (see `api`)."""

from xferlib.data.shifts.api import (
    IMAGE_SHIFTS,
    LABEL_SHIFTS,
    SHIFT_KINDS,
    apply_shift,
    label_shift,
)
from xferlib.data.shifts.folder import ShiftFolderResult, shift_folder

__all__ = [
    "IMAGE_SHIFTS",
    "LABEL_SHIFTS",
    "SHIFT_KINDS",
    "ShiftFolderResult",
    "apply_shift",
    "label_shift",
    "shift_folder",
]
