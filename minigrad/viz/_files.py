"""Writing pictures: atomically, into a folder made on demand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minigrad._files import atomic_write


def _atomic_write(path: str | os.PathLike, write: Any) -> Path:
    """``minigrad._files.atomic_write``, creating the folder first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, write)
