"""minigrad's worker threads: a big op split into slices that run side by side, one per core.

NumPy runs every element-wise operation on one core, and a convolution's per-image matrix
products are too small for the BLAS to spread well over several. So minigrad splits the big
steps of an op itself: the batch (or the rows of a matrix product) is cut into as many
contiguous slices as there are threads, and the slices run at the same time on minigrad's
worker threads. NumPy releases the GIL inside its loops and BLAS calls, so they truly run in
parallel. A worker that has finished a slice spins for a few milliseconds for the next one
(on a C spin lock, without the GIL), so that a hand-over costs microseconds rather than the
wake-up of a sleeping core; it sleeps while other processes keep the cores busy, and once
minigrad is idle. Each slice computes what the whole op computes on those rows: element-wise ops and
pooling give the same bits on any number of threads; a split matrix product may differ in the
last bit for rows at a slice boundary, where the BLAS can take its edge kernel.

At its first matrix product minigrad sets the BLAS (OpenBLAS, as NumPy ships it) to one
thread, whatever its own thread count: with several threads the split already keeps every core
busy, and two thread pools on the same cores slow each other down; with one, one thread means
one thread, as ``torch.set_num_threads(1)`` does (left to its own threads, OpenBLAS would share
out even a batch-1 product and, on a busy machine, wait for the other core).

The default number of threads is ``$MINIGRAD_NUM_THREADS`` if set, else ``$OMP_NUM_THREADS``
or ``$OPENBLAS_NUM_THREADS`` if set (the usual way to cap a process's threads), else the
number of cores this process may run on.

>>> import minigrad
>>> n = minigrad.get_num_threads()
>>> minigrad.set_num_threads(1)
>>> minigrad.get_num_threads()
1
>>> minigrad.set_num_threads(n)
"""

from __future__ import annotations

import ctypes
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["get_num_threads", "set_num_threads", "parallel_for", "side_by_side", "elementwise",
           "empty_like", "channels_last", "MIN_WORK", "SPIN_TIME"]

# The smallest slice worth a thread, in array elements touched: below it the hand-over to a
# worker costs more than the slice saves. On a 2-core virtual machine an idle core sleeps and
# takes tens of µs to wake, so a hand-over to a sleeping worker and the wait for its end cost
# 130-160 µs on an idle machine, and 25-60 µs to a spinning one (docs/ops.md gives the
# command), about as long as an element-wise op takes over a quarter of a million float32
# elements. In a network the halves of a split op run slower than that suggests (the worker
# meets data the other core wrote, and the GIL changes hands around each slice): 2**19
# measured 0.91-0.97x DeepConvNet's training step against 2**18 (docs/ops.md), 2**16, 2**17
# and 2**20 no faster.
MIN_WORK = 1 << 19

# How long, in seconds, a worker thread that has finished a slice keeps spinning for the next
# one before it goes to sleep (it spins for one to two times this). A spinning worker takes a
# slice within a few µs; a sleeping one needs its core woken. 0 turns spinning off.
SPIN_TIME = 0.005


def _cores() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not on Linux
        return max(1, os.cpu_count() or 1)


def _default_threads() -> int:
    for name in ("MINIGRAD_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return _cores()


class _Blas:
    """The thread-count switch of NumPy's OpenBLAS, found among the loaded libraries."""

    def __init__(self) -> None:
        self.set = self.get = None
        for path in self._candidates():
            try:
                lib = ctypes.CDLL(str(path))
            except OSError:
                continue
            for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("", ""), ("scipy_", "")):
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    set_.restype, set_.argtypes = None, [ctypes.c_int]
                    self.get, self.set = get, set_
                    return

    @staticmethod
    def _candidates():
        """OpenBLAS libraries this process has loaded (NumPy's own first)."""
        here = Path(np.__file__).resolve().parent
        for folder in (here.parent / "numpy.libs", here / ".dylibs"):   # Linux, macOS wheels
            if folder.is_dir():
                yield from sorted(folder.glob("*openblas*"))
        try:                                     # any other OpenBLAS this process has loaded
            maps = Path("/proc/self/maps").read_text().splitlines()
        except OSError:
            maps = []
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and "openblas" in Path(fields[-1]).name:
                yield Path(fields[-1])

    def single(self) -> bool:
        """Set the BLAS to one thread; True when that was possible."""
        if self.set is None:
            return False
        self.set(1)
        return True


def _spin_functions():
    """``pthread_spin_lock`` and ``pthread_spin_unlock`` of the C library, or None where there
    are none (macOS, Windows)."""
    try:
        libc = ctypes.CDLL(None)
        init, lock, unlock = (libc.pthread_spin_init, libc.pthread_spin_lock,
                              libc.pthread_spin_unlock)
    except (AttributeError, OSError, TypeError):
        return None
    for f in (init, lock, unlock):
        f.restype = ctypes.c_int
    init.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lock.argtypes = unlock.argtypes = [ctypes.c_void_p]
    return init, lock, unlock


class _Spin:
    """A spin lock of the C library, made locked. ctypes releases the GIL for the call, so a
    thread spinning in ``lock`` keeps its core busy but holds up no other Python thread, and
    takes the lock within a microsecond or so of its ``unlock`` by another thread."""

    __slots__ = ("_memory", "lock", "unlock")

    def __init__(self, functions) -> None:
        init, lock, unlock = functions
        self._memory = ctypes.create_string_buffer(128)     # a cache line of its own
        address = (ctypes.addressof(self._memory) + 63) & ~63
        if init(address, 0) != 0 or lock(address) != 0:
            raise OSError("pthread_spin_init failed")
        self.lock = lambda: lock(address)
        self.unlock = lambda: unlock(address)


class _Sleep:
    """The same two calls on a semaphore, made empty: a waiting thread sleeps. (A semaphore,
    not a lock, so that a release nobody waited for, after an interrupted call, is harmless.)"""

    __slots__ = ("lock", "unlock")

    def __init__(self) -> None:
        sem = threading.Semaphore(0)
        self.lock, self.unlock = sem.acquire, sem.release


class _Worker:
    """One worker thread's side of the hand-over.

    A task is (body, lo, hi, spin, token). ``queue`` reaches the worker while it sleeps;
    ``go`` is unlocked by the caller to hand a task (``task``) to a worker that spins.
    ``spinning`` tells which of the two the worker waits on next: it is set from the task's
    ``spin`` when the worker takes the task. When the worker has finished a task it sets
    ``finished`` to the task's token (and ``error`` to (token, what the slice raised)) and
    unlocks ``spun`` if ``spin``, else ``slept``. The caller waits until ``finished`` is its
    token, so a signal left by a task whose caller was interrupted is never taken for its own.
    A task whose body is None only moves the worker to its queue (parks it); a task of None
    ends the worker."""

    __slots__ = ("queue", "task", "error", "finished", "spinning", "go", "spun", "slept")

    def __init__(self, spin) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.task = None
        self.error: tuple[object, BaseException] | None = None
        self.finished: object = None
        self.spinning = False
        self.go = _Spin(spin) if spin else None
        self.spun = _Spin(spin) if spin else None
        self.slept = _Sleep()

    def give(self, task) -> bool:
        """Hand ``task`` over, through ``go`` or the queue, as the worker waits; True when
        through the queue."""
        if self.spinning:
            self.task = task
            self.go.unlock()
            return False
        self.queue.put(task)
        return True

    def wait(self, token, spin: bool) -> None:
        """Wait (spinning or asleep, as the task said) until the task of ``token`` is done."""
        lock = self.spun.lock if spin else self.slept.lock
        while self.finished is not token:
            lock()


class _Pool:
    """``n − 1`` daemon worker threads, and the lock (``busy``) held by the thread handing out
    slices.

    A worker that has finished a slice spins, GIL-free, on its ``go`` lock for the next one,
    for ``SPIN_TIME`` to twice that (a thread of the pool, the parker, sends idle workers to
    sleep), and then sleeps on its queue. A slice reaches a spinning worker within a few µs,
    a sleeping one in about 50-130 µs on a virtual machine, whose idle core has to be woken.

    Spinning pays only while each thread has a core. When another process takes one, a
    spinning thread takes turns on the other core with the thread it waits for, and a
    hand-over can wait a whole time slice of the scheduler (milliseconds). So when the caller,
    after its own slice, waits more than ``_LATE`` seconds and longer than its own slice took,
    and that happens again and again, the workers sleep between slices for the next ``_CALM``
    seconds (``_late``). Workers never spin when the pool has more threads than the process
    has cores, or the C library no spin locks."""

    _LATE = 1e-3
    _CALM = 1.0

    def __init__(self, n: int, spin) -> None:
        self.spin = spin                    # the spin-lock functions, or None
        self.busy = threading.Lock()
        self.owner: int | None = None       # the thread that holds ``busy``
        self.handovers = 0
        self.calm_until = 0.0               # time.perf_counter() until which workers sleep
        self.calms = 0                      # how many times a late worker set it
        self.lates, self.last_late = 0, -1000   # late slices lately, and the last one's number
        self.closed = False
        self.awake = threading.Event()      # set while a worker may be spinning
        self.workers = [_Worker(spin) for _ in range(n - 1)]
        self.threads = [threading.Thread(target=self._work, args=(w,), name=f"minigrad-{i + 1}",
                                         daemon=True) for i, w in enumerate(self.workers)]
        if spin and self.workers:
            self.threads.append(threading.Thread(target=self._park_idle, name="minigrad-parker",
                                                 daemon=True))
        for t in self.threads:
            t.start()

    @staticmethod
    def _work(w: _Worker) -> None:
        _state.worker = True
        task = w.queue.get()
        while task is not None:
            body, lo, hi, spin, token = task
            w.spinning = spin
            if body is not None:
                try:
                    body(lo, hi)
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    w.error = token, error
            w.finished = token
            if spin:
                w.spun.unlock()
                w.go.lock()                 # spins until the next task
                task = w.task
            else:
                w.slept.unlock()
                task = w.queue.get()

    def run(self, body: Callable[[int, int], None], bounds: list[int]) -> None:
        """``body`` on the slices between ``bounds``, the first on the calling thread, which
        holds ``busy``. An error raised in a slice is raised once every slice is done."""
        self.handovers += 1
        start = time.perf_counter()
        spin = self.spin is not None and start >= self.calm_until
        given = []
        try:
            # From the last hand-over to the first NumPy call of ``body``, this thread holds
            # the GIL that the worker needs to start: the less Python in between, the less
            # often the worker has to sleep (and be woken) while it waits for it.
            for i, w in enumerate(self.workers[:len(bounds) - 2], 1):
                token = object()
                if w.give((body, bounds[i], bounds[i + 1], spin, token)) and spin:
                    self.awake.set()        # a worker that slept will spin: the parker watches
                given.append((w, token))
            body(bounds[0], bounds[1])
            mine = time.perf_counter()
        finally:
            for w, token in given:
                w.wait(token, spin)
        if spin and time.perf_counter() - mine > max(self._LATE, mine - start):
            self._late(mine)
        for w, token in given:
            if w.error is not None and w.error[0] is token:
                raise w.error[1]

    def _late(self, now: float) -> None:
        """A worker finished its slice late. A lone late slice is let be (a virtual machine's
        core can stall for milliseconds now and then); at the third within 100 hand-overs,
        the workers sleep between slices for the next ``_CALM`` seconds."""
        if self.handovers - self.last_late > 100:
            self.lates = 0
        self.last_late = self.handovers
        self.lates += 1
        if self.lates >= 3:
            self.lates = 0
            self.calm_until = now + self._CALM
            self.calms += 1
            self._park()

    def _park_idle(self) -> None:
        """Send the spinning workers to sleep once no slice has been handed out for
        ``SPIN_TIME``."""
        seen = -1
        while True:
            self.awake.wait()
            if self.closed:
                return
            time.sleep(SPIN_TIME)
            if not self.busy.acquire(blocking=False):
                continue                    # slices are being handed out
            try:
                if self.handovers == seen and not self.closed:
                    self._park()
                    self.awake.clear()
                seen = self.handovers
            finally:
                self.busy.release()

    def _park(self) -> None:
        """Move every spinning worker to its queue; ``busy`` is held."""
        for w in self.workers:
            if w.spinning:
                token = object()
                w.give((None, 0, 0, False, token))
                w.wait(token, False)

    def close(self) -> None:
        """End the worker threads (and the parker)."""
        with self.busy:
            self.closed = True
            for w in self.workers:
                w.give(None)
            self.awake.set()


_state = threading.local()
_lock = threading.Lock()
_num_threads = _default_threads()
_pool: _Pool | None = None
_blas: _Blas | None = None
_blas_single = False


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's worker threads: start afresh when needed."""
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads() -> int:
    """The number of threads minigrad splits its big ops over.

    >>> get_num_threads() >= 1
    True
    """
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (≥ 1) for minigrad's big ops; 1 runs everything on the calling thread.
    The BLAS stays on one thread either way (set at minigrad's first matrix product).

    Raises:
        ValueError: n is not a positive integer.
    """
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    with _lock:
        _num_threads = int(n)
        old = _pool
        if old is not None and len(old.workers) != _num_threads - 1:
            _pool = None
        else:
            old = None
    if old is not None:
        old.close()


def _start() -> _Pool:
    """The worker pool, started on first use, and the BLAS set to one thread."""
    global _pool
    with _lock:
        _single_blas()
        if _pool is None:
            spin = _spin_functions() if SPIN_TIME > 0 and _num_threads <= _cores() else None
            _pool = _Pool(_num_threads, spin)
        return _pool



def _single_blas() -> None:
    """Set the BLAS to one thread, the first time only (``_blas`` records that it was tried;
    ``_blas_single`` whether it worked). Called with ``_lock`` held."""
    global _blas, _blas_single
    if _blas is None:
        _blas = _Blas()
        _blas_single = _blas.single()


def _slices(total: int, work: int, blas: bool = False) -> int:
    """How many slices ``parallel_for`` would cut ``total`` rows of ``work`` elements into."""
    if _num_threads == 1 or getattr(_state, "worker", False):
        if blas and _blas is None:
            blas_ready()
        return 1
    if blas and _pool is None:
        _start()                    # which tells whether the BLAS could be set to one thread
    if total < 2:
        return 1
    n = max(1, min(_num_threads, total, work // MIN_WORK))
    if n > 1 and blas and not _blas_single:
        return 1
    return n


def blas_ready() -> None:
    """Set the BLAS to one thread, if minigrad has not yet, and start minigrad's threads, if
    there are several and they have not started: a product run directly on the calling thread
    then runs whole there.

    The BLAS goes to one thread at minigrad's first product, split or not, on any number of
    minigrad threads: left on its own threads, a product too small to split (a batch of one
    image) could be shared out by the BLAS and wait on a sleeping core, and how it ran would
    depend on whether a bigger op had started the pool before it. ``parallel_for(...,
    blas=True)`` does this itself; an op that calls a small product without it calls this
    first."""
    if _blas is not None and (_pool is not None or _num_threads == 1):
        return                              # done already (the usual case: a cheap test)
    if getattr(_state, "worker", False):
        return
    if _num_threads == 1:
        if _blas is None:
            with _lock:
                _single_blas()
    elif _pool is None:
        _start()


def parallel_for(total: int, body: Callable[[int, int], None], work: int,
                 blas: bool = False) -> None:
    """Call ``body(lo, hi)`` on contiguous slices that cover ``range(total)``, side by side.

    The slices are as equal as possible, at most one per thread, and only as many as keep
    ``work / slices`` (array elements) above ``MIN_WORK``: small ops run as one call on the
    calling thread. The calling thread computes the first slice itself. Every slice must
    write only its own part of the result. An error raised in a slice is raised here, after
    all slices have finished. A ``parallel_for`` called inside a slice runs whole on its
    thread; calls from several threads of a program take the worker threads in turn.

    Args:
        total: the number of rows to split (a batch size, a matrix's row count).
        body: computes rows ``lo`` to ``hi`` (exclusive).
        work: the elements the whole op reads and writes, which decides how many slices pay.
        blas: True when ``body`` calls the BLAS (a matrix product): the op then runs whole,
            on the BLAS's own threads, if minigrad could not set the BLAS to one thread.

    >>> out = np.zeros(10)
    >>> def body(lo, hi):
    ...     out[lo:hi] = np.arange(lo, hi)
    >>> parallel_for(10, body, work=10)
    >>> out
    array([0., 1., 2., 3., 4., 5., 6., 7., 8., 9.])
    """
    n = _slices(total, work, blas)
    if n == 1:
        body(0, total)
        return
    pool = _pool or _start()
    me = threading.get_ident()
    if pool.owner == me:            # inside a slice of this thread's own parallel_for
        body(0, total)
        return
    bounds = [total * i // n for i in range(n + 1)]
    with pool.busy:
        pool.owner = me
        try:
            pool.run(body, bounds)
        finally:
            pool.owner = None


def side_by_side(parts: list[tuple[Callable[[int, int], None], int]], work: int,
                 blas: bool = False) -> None:
    """Run independent pieces of work, each a ``(body, total)`` pair as for ``parallel_for``.

    With at least as many pieces as threads, each piece runs whole on a thread of its own:
    one hand-over for all of them, and each matrix product at its full one-thread speed
    (a product split in two runs each half less efficiently than the whole). With fewer
    pieces than threads, each piece is split over all the threads in turn.

    Args:
        parts: the pieces; ``body(lo, hi)`` computes rows ``lo`` to ``hi`` of its result.
        work: the elements all the pieces read and write together.
        blas: as for ``parallel_for``.

    >>> a, b = np.zeros(3), np.zeros(2)
    >>> def fill_a(lo, hi):
    ...     a[lo:hi] = 1
    >>> def fill_b(lo, hi):
    ...     b[lo:hi] = 2
    >>> side_by_side([(fill_a, 3), (fill_b, 2)], work=5)
    >>> a, b
    (array([1., 1., 1.]), array([2., 2.]))
    """
    if len(parts) >= _num_threads:
        parallel_for(len(parts), lambda lo, hi: [body(0, total) for body, total in parts[lo:hi]],
                     work=work, blas=blas)
    else:
        for body, total in parts:
            parallel_for(total, body, work=work // len(parts), blas=blas)


def empty_like(a: np.ndarray, dtype=None) -> np.ndarray:
    """A new array of a's shape (and ``dtype``, default a's), laid out in memory like ``a``.

    An array whose elements fill one block of memory in some order of its axes (C order, or a
    channels-last view: the transpose (0, 3, 1, 2) of a C-contiguous (N, H, W, C) array) gets
    the same order, so that an element-wise op reads its input and writes its output in one
    sweep and the next op receives the layout it was given. Any other strided view (a slice
    with steps, a negative step) gets a contiguous array with its axes in the order of the
    view's strides (NumPy's ``order="K"``); a broadcast view (a stride of 0) gets C order.

    >>> x = np.zeros((2, 4, 3, 3), np.float32).transpose(0, 3, 1, 2)    # channels-last
    >>> empty_like(x).strides == x.strides
    True
    >>> empty_like(np.broadcast_to(np.zeros(3), (2, 3))).flags.c_contiguous
    True
    """
    if any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape)):
        return np.empty(a.shape, a.dtype if dtype is None else dtype)
    return np.empty_like(a, dtype=dtype, order="K", subok=False)


def channels_last(x: np.ndarray) -> bool:
    """True when x (N, C, H, W) is a channels-last view: the transpose (0, 3, 1, 2) of a
    C-contiguous (N, H, W, C) array, as a convolution computed in that layout returns it (and
    not also C-contiguous, as when C = 1 or H = W = 1)."""
    return (x.ndim == 4 and not x.flags.c_contiguous
            and x.transpose(0, 2, 3, 1).flags.c_contiguous)


def _memory_order(a: np.ndarray) -> tuple[int, ...] | None:
    """The axis order in which ``a`` is C-contiguous (outermost axis first), or None."""
    order = tuple(sorted(range(a.ndim), key=lambda i: -abs(a.strides[i])))
    return order if a.transpose(order).flags.c_contiguous else None


def elementwise(body: Callable[..., None], out: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """``body(out, *inputs)`` for an element-wise computation, split over the threads.

    When ``out`` and every input have one shape and fill their memory in the same order of
    their axes (all C-contiguous, or all channels-last views, ...), each slice calls ``body``
    on the same run of elements of each, seen as flat arrays in that memory order; otherwise
    ``body`` gets the arrays whole. ``body`` must write its result into its first argument.
    Returns ``out``.

    >>> x = np.array([-1.0, 2.0, -3.0])
    >>> elementwise(lambda y, x: np.maximum(x, 0.0, out=y), np.empty(3), x)
    array([0., 2., 0.])
    """
    if _num_threads == 1 or out.size * (1 + len(inputs)) < 2 * MIN_WORK:
        body(out, *inputs)              # too small to split: no slicing at all
        return out
    arrays = (out, *inputs)
    if out.flags.c_contiguous and all(a.shape == out.shape and a.flags.c_contiguous
                                      for a in inputs):
        flat = [a.reshape(-1) for a in arrays]
    else:
        order = _memory_order(out)
        if order is None or not all(a.shape == out.shape
                                    and a.transpose(order).flags.c_contiguous for a in inputs):
            body(out, *inputs)
            return out
        flat = [a.transpose(order).reshape(-1) for a in arrays]     # views, no copy
    parallel_for(out.size, lambda lo, hi: body(*(a[lo:hi] for a in flat)),
                 work=out.size * (1 + len(inputs)))
    return out
