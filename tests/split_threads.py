"""``threads(n)``: run a block on n threads with every op big enough to split, for the tests
that hold results equal across thread counts (test_parallel, test_layout, test_pooling);
``run_together``: one function on several threads of a program at once."""

from __future__ import annotations

import contextlib
import sys
import threading

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


def run_together(work, n: int, switch_interval: float | None = None) -> list:
    """Call ``work(t)`` on n threads at once (t = 0 … n − 1) and return what they raised. With
    ``switch_interval`` Python makes the threads take turns that often meanwhile (1e-6: as often
    as it can)."""
    raised = []

    def run(t):
        try:
            work(t)
        except BaseException as error:  # noqa: BLE001 - returned to the test
            raised.append(error)

    old = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        runners = [threading.Thread(target=run, args=(t,)) for t in range(n)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
    finally:
        sys.setswitchinterval(old)
    return raised
