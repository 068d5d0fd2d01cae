"""A small cache of values kept from one call to the next, oldest first, bounded in count and
bytes, for the fast paths that make the same thing again and again (the channels-last weight
rows of a convolution, BatchNorm's constants in evaluation).

The rule: ``put(key, value, nbytes)`` keeps ``value`` under ``key`` as the newest entry (an
entry already under ``key`` goes first) and then lets the oldest entries go, in the order
they were put, until there are at most ``max_entries`` of them and their ``nbytes`` add up to
at most ``max_bytes``. A value whose ``nbytes`` alone exceeds ``max_bytes`` (or any value when
``max_entries`` is 0) is not kept, and the others stay. ``get`` does not reorder: the oldest
entry is the one put first, however often it is read. ``nbytes`` is what the caller counts
for the entry (its arrays, and the copies of bytes it compares); the cache does not look
inside values. What a key means, and whether a found value still holds (the caller may key by
an array's id and compare its bytes), is the caller's matter.

Any thread may call any method: ``put`` and ``clear`` change the entries under a lock, and
``get`` is the entries' dict's own ``get``, one lookup that CPython makes atomic (and as
cheap as a plain dict's on the path where the cache pays).

>>> cache = BoundedCache(max_entries=2, max_bytes=100)
>>> cache.put("a", 1, nbytes=40)
True
>>> cache.put("b", 2, nbytes=40)
True
>>> cache.put("c", 3, nbytes=40)          # 120 bytes would be too many: "a" goes
True
>>> cache.get("a") is None, cache.get("c"), len(cache), cache.bytes
(True, 3, 2, 80)
>>> cache.put("d", 4, nbytes=101)         # larger than the budget: not kept
False
>>> [key for key, _, _ in cache.entries()]
['b', 'c']
"""

from __future__ import annotations

import threading

__all__ = ["BoundedCache"]


class BoundedCache:
    """Values under keys, the oldest let go first beyond ``max_entries`` entries or
    ``max_bytes`` bytes in all (None: no bound of that kind; see the module docstring)."""

    def __init__(self, max_bytes: int | None, max_entries: int | None = None) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self.bytes = 0
        self._values: dict = {}             # key → value, oldest first
        self._sizes: dict = {}              # key → nbytes
        self._lock = threading.Lock()
        # get(key, default=None): the dict's own, one C call on the path that finds a value.
        self.get = self._values.get

    def put(self, key, value, nbytes: int = 0) -> bool:
        """Keep ``value`` under ``key`` as the newest entry, counted as ``nbytes``; True when it
        is kept, False when it alone is over the budget (``key``'s old entry goes either way)."""
        with self._lock:
            values, sizes = self._values, self._sizes
            if key in sizes:
                del values[key]
                self.bytes -= sizes.pop(key)
            budget = self.max_bytes
            if (budget is not None and nbytes > budget) or self.max_entries == 0:
                return False
            limit = self.max_entries
            while values and ((limit is not None and len(values) >= limit)
                              or (budget is not None and self.bytes + nbytes > budget)):
                oldest = next(iter(values))
                del values[oldest]
                self.bytes -= sizes.pop(oldest)
            values[key] = value
            sizes[key] = nbytes
            self.bytes += nbytes
            return True

    def entries(self) -> list[tuple]:
        """(key, value, nbytes) of every entry, the oldest first."""
        with self._lock:
            return [(key, value, self._sizes[key]) for key, value in self._values.items()]

    def clear(self) -> None:
        with self._lock:
            self._values.clear()            # the same dicts: ``get`` is bound to the first
            self._sizes.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._values)
