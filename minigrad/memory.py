"""Freed memory kept for the next training step instead of handed back to the system.

A training step allocates its activations, gradients and scratch arrays, tens to hundreds of
MB, and frees them again by the end of the step. With its default settings the GNU C library
(glibc, the C library of most Linux systems) gives much of that memory back to the kernel
when it is freed: arrays above its mmap threshold are unmapped at once, and the free memory at
the top of its heap is trimmed. The next step then asks the kernel again, and the kernel hands
out each 4 KiB page zero-filled on first touch, one page fault each. For the book's
DeepConvNet at batch 100 that is about 10,000 page faults per step and a fifth to a quarter of
its time (``benchmarks/README.md`` gives the command and the numbers).

So when minigrad is imported it asks glibc, through ``mallopt``, to keep what it frees for
reuse: arrays up to ``MMAP_THRESHOLD`` (32 MiB) come from the heap, and up to
``TRIM_THRESHOLD`` (1 GiB) of free memory at its top is kept. The process's peak memory does
not grow (the same memory serves every step), but memory freed after the peak stays with the
process until it exits. This is a setting of the whole process, like the BLAS thread count:

- ``MINIGRAD_KEEP_FREED_MEMORY=0`` in the environment leaves the C library alone at import;
- ``set_keep_freed_memory(False)`` puts glibc's default thresholds (128 KiB each) back, fixed:
  glibc's own adjustment of its mmap threshold stays off once any threshold has been set.

Other C libraries (macOS, musl) have no ``mallopt``; there the setting does nothing and
``get_keep_freed_memory()`` is False.

>>> import minigrad
>>> kept = minigrad.get_keep_freed_memory()
>>> minigrad.set_keep_freed_memory(False)
>>> minigrad.get_keep_freed_memory()
False
>>> minigrad.set_keep_freed_memory(kept)
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

__all__ = ["get_keep_freed_memory", "set_keep_freed_memory", "MMAP_THRESHOLD",
           "TRIM_THRESHOLD"]

MMAP_THRESHOLD = 32 << 20       # glibc's largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1 << 30
_GLIBC_DEFAULT = 128 << 10      # glibc's starting mmap and trim thresholds

# mallopt's parameter numbers, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_lock = threading.Lock()
_kept = False


def _mallopt():
    """glibc's ``mallopt``, or None on another C library."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.restype, mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return mallopt


def get_keep_freed_memory() -> bool:
    """True while minigrad has glibc keep freed memory for reuse (see the module docstring)."""
    return _kept


def set_keep_freed_memory(enabled: bool) -> None:
    """Keep freed memory for reuse (True, the default at import) or give glibc back its
    default thresholds (False). Does nothing where the C library is not glibc."""
    global _kept
    if not isinstance(enabled, bool):
        raise TypeError(f"set_keep_freed_memory: enabled must be True or False, got "
                        f"{enabled!r}")
    mallopt = _mallopt()
    if mallopt is None:
        return
    mmap, trim = (MMAP_THRESHOLD, TRIM_THRESHOLD) if enabled else (_GLIBC_DEFAULT,) * 2
    with _lock:
        if not (mallopt(_M_MMAP_THRESHOLD, mmap) and mallopt(_M_TRIM_THRESHOLD, trim)):
            raise OSError(f"set_keep_freed_memory: glibc's mallopt refused the thresholds "
                          f"mmap={mmap}, trim={trim}")
        _kept = enabled


def _at_import() -> None:
    if os.environ.get("MINIGRAD_KEEP_FREED_MEMORY", "").strip() != "0":
        try:
            set_keep_freed_memory(True)
        except OSError:             # a glibc that refuses: leave it as it is
            pass
