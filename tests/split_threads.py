"""``threads(n)``: run a block on n threads with every op big enough to split, for the tests
that hold results equal across thread counts (test_parallel, test_layout, test_pooling)."""

from __future__ import annotations

import contextlib

from minigrad import parallel
from minigrad.ops import linear


@contextlib.contextmanager
def threads(n: int):
    """Run with ``n`` threads and every op big enough to split (MIN_WORK = 1, and the affine
    layer's MIN_FLOPS = 0)."""
    old_n, old_min, old_flops = parallel.get_num_threads(), parallel.MIN_WORK, linear.MIN_FLOPS
    parallel.MIN_WORK, linear.MIN_FLOPS = 1, 0
    parallel.set_num_threads(n)
    try:
        yield
    finally:
        parallel.MIN_WORK, linear.MIN_FLOPS = old_min, old_flops
        parallel.set_num_threads(old_n)
