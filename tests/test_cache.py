"""BoundedCache: oldest first, bounded in entries and bytes, usable from any thread."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from split_threads import run_together

from minigrad.cache import BoundedCache


def keys(cache):
    return [key for key, _, _ in cache.entries()]


def test_the_oldest_go_first_and_get_does_not_reorder():
    cache = BoundedCache(max_bytes=1000, max_entries=3)
    for key in "abc":
        assert cache.put(key, key.upper(), 10)
    assert cache.get("a") == "A"                # read: still the oldest
    cache.put("d", "D", 10)
    assert keys(cache) == ["b", "c", "d"]
    assert cache.get("a") is None and cache.get("a", 0) == 0
    cache.put("b", "B2", 10)                    # put again: the newest, with its new value
    assert keys(cache) == ["c", "d", "b"] and cache.get("b") == "B2"
    assert len(cache) == 3 and cache.bytes == 30


@pytest.mark.parametrize("max_entries, sizes, kept", [
    (2, [10, 10, 10], [1, 2]),                  # the count bounds
    (None, [40, 40, 40], [1, 2]),               # the bytes bound: 120 > 100
    (None, [40, 30, 70], [1, 2]),               # as many go as make room, no more
    (None, [40, 30, 80], [2]),
    (None, [40, 30, 100], [2]),                 # exactly the budget is kept
    (None, [40, 30, 101], [0, 1]),              # larger than the budget: not kept
    (0, [1], []),                               # no entries at all
])
def test_count_and_bytes_bound_the_entries(max_entries, sizes, kept):
    cache = BoundedCache(max_bytes=100, max_entries=max_entries)
    for i, size in enumerate(sizes):
        assert cache.put(i, str(i), size) == (size <= 100 and max_entries != 0)
    assert keys(cache) == kept
    assert cache.bytes == sum(sizes[i] for i in kept)


def test_an_entry_over_the_budget_is_not_kept_and_its_key_forgets_the_old_value():
    cache = BoundedCache(max_bytes=100)
    cache.put("a", 1, 50)
    cache.put("b", 2, 50)
    assert not cache.put("a", 3, 200)
    assert keys(cache) == ["b"] and cache.bytes == 50 and cache.get("a") is None


def test_clear():
    cache = BoundedCache(max_bytes=100, max_entries=4)
    cache.put("a", 1, 50)
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0 and cache.get("a") is None


@settings(deadline=None)
@given(st.integers(1, 200), st.none() | st.integers(1, 5),
       st.lists(st.tuples(st.integers(0, 6), st.integers(0, 250)), max_size=40))
def test_equals_a_plain_list_of_entries(max_bytes, max_entries, puts):
    """Any sequence of puts leaves the entries a plain list model gives: drop the key's old
    entry; skip a value over the budget; else drop the oldest until it fits, then append."""
    cache = BoundedCache(max_bytes=max_bytes, max_entries=max_entries)
    model = []
    for key, size in puts:
        model = [e for e in model if e[0] != key]
        if size <= max_bytes:
            while model and ((max_entries is not None and len(model) >= max_entries)
                             or sum(s for _, _, s in model) + size > max_bytes):
                model.pop(0)
            model.append((key, (key, size), size))
        cache.put(key, (key, size), size)
        assert cache.entries() == model
        assert cache.bytes == sum(s for _, _, s in model) <= max_bytes
        assert max_entries is None or len(cache) <= max_entries
        for k, value, _ in model:
            assert cache.get(k) == value


def test_threads_putting_and_getting_at_once_keep_the_bounds_and_the_bytes_right():
    """Several threads put and get the same keys at once: every value found is the one put
    under its key, and afterwards the count, the bytes and the entries agree."""
    cache = BoundedCache(max_bytes=1000, max_entries=16)
    errors = []
    start = threading.Barrier(6)

    def work(t):
        start.wait()
        for i in range(3000):
            key = (i * 7 + t) % 40
            cache.put(key, ("value", key), 10 + key)
            for k in (key, (key + 13) % 40):
                found = cache.get(k)
                if found is not None and found != ("value", k):
                    errors.append((k, found))

    errors += run_together(work, 6, switch_interval=1e-6)   # turns as often as they can
    entries = cache.entries()
    assert not errors
    assert len(entries) == len(cache) <= 16
    assert cache.bytes == sum(n for _, _, n in entries) <= 1000
    assert len({key for key, _, _ in entries}) == len(entries)
    assert all(value == ("value", key) and n == 10 + key for key, value, n in entries)


def test_a_cache_bounded_by_count_alone_keeps_the_newest_entries():
    cache = BoundedCache(max_bytes=None, max_entries=3)
    for k in range(5):
        assert cache.put(k, str(k))                 # nbytes defaults to 0
    assert [key for key, _, _ in cache.entries()] == [2, 3, 4]
    assert cache.get(0, "gone") == "gone" and cache.get(4) == "4" and cache.bytes == 0
