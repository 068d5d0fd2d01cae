"""Where the time goes: per-op forward and backward timings.

``profile()`` is a context manager that registers itself in ``minigrad.function._observers``
while it is open. The tape times each op's ``forward`` and ``backward`` only while some observer
is registered; with none registered (the default) an op pays one truth test on an empty list.

    with minigrad.profile() as prof:
        loss = model.loss(x, t)
        loss.backward()
    print(prof.table())

Timings are wall-clock seconds around the op's own ``forward``/``backward`` (not the engine's
bookkeeping between ops), so the sum of the op times is at most the wall time of the block.
A profile records the ops run by the thread that opened it: ops run by other threads at the
same time are not counted (minigrad's own worker threads run inside ops, so their time is).
Profiles may be nested (each records what runs inside it); one profile object cannot be entered
twice at once, but may be entered again later to add to its counts.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from minigrad import function

__all__ = ["OpStats", "profile"]

_SORT_KEYS = {
    "total": lambda s: -(s.forward_s + s.backward_s),
    "forward": lambda s: -s.forward_s,
    "backward": lambda s: -s.backward_s,
    "calls": lambda s: -s.calls,
    "output": lambda s: -s.output_bytes,
    "name": lambda s: s.name,
}
_GROUPS = ("op", "module")


@dataclass
class OpStats:
    """Accumulated cost of one row of the table (an op class, or an op class in one module).

    Attributes:
        name: the op class name (``"Conv2d"``), or ``"conv1/Conv2d"`` when grouped by module.
        calls: number of forward calls.
        backward_calls: number of backward calls.
        forward_s, backward_s: total seconds spent in ``forward`` and ``backward``.
        output_bytes: total bytes of the arrays the forward calls returned.
    """

    name: str
    calls: int = 0
    backward_calls: int = 0
    forward_s: float = 0.0
    backward_s: float = 0.0
    output_bytes: int = 0

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


def _module_label(scope: Sequence[Any]) -> str:
    """The innermost running module's dotted name (its class name for a root), '-' for none."""
    if not scope:
        return "-"
    module = scope[-1]
    return getattr(module, "name", "") or type(module).__name__


class profile:  # noqa: N801  (a context manager used like a function: ``with profile()``)
    """Record forward and backward time, calls and output bytes of every op run inside.

    Per op class (``table()``, ``stats()``), per op class within each module
    (``table(group_by="module")``), and per op instance (``op_ms(fn)``, which
    ``minigrad.viz.draw_graph(..., profile=prof)`` uses to colour op nodes by their cost).

    Attributes:
        wall_ms: wall time spent inside the ``with`` block(s), in milliseconds.

    >>> import minigrad
    >>> x = minigrad.Tensor([1.0, 2.0], requires_grad=True)
    >>> with profile() as prof:
    ...     (x * x).sum().backward()
    >>> sorted(s.name for s in prof.stats())
    ['Mul', 'Sum']
    >>> prof.total_forward_ms <= prof.wall_ms
    True
    """

    def __init__(self) -> None:
        self._by_op: dict[str, OpStats] = {}
        self._by_module: dict[tuple[str, str], OpStats] = {}
        # Per op instance: [forward seconds, backward seconds, module label]. Weak keys: the
        # profile does not keep graphs alive.
        self._instances: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._active = False
        self._thread = 0  # the thread whose ops are recorded (the one that entered the block)
        self._start = 0.0
        self.wall_ms = 0.0

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> profile:
        if self._active:
            raise RuntimeError("profile: this profile is already active; open a new profile() "
                               "for a nested block")
        self._active = True
        self._thread = threading.get_ident()
        function._observers.append(self)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_ms += (time.perf_counter() - self._start) * 1e3
        function.remove_observer(self)
        self._active = False

    # ------------------------------------------------------------------ observer protocol
    def forward(self, fn: Any, inputs: Any, output: Any, seconds: float) -> None:
        if threading.get_ident() != self._thread:
            return
        name = type(fn).__name__
        scope = function._module_scope
        module = _module_label(scope) if scope else "-"
        nbytes = getattr(output, "nbytes", 0)
        for stats in self._rows(name, module):
            stats.calls += 1
            stats.forward_s += seconds
            stats.output_bytes += nbytes
        try:
            self._instances[fn] = [seconds, 0.0, module]
        except TypeError:  # an op class without weak references: no per-instance record
            pass

    def backward(self, fn: Any, dy: Any, grads: Any, seconds: float) -> None:
        if threading.get_ident() != self._thread:
            return
        name = type(fn).__name__
        record = self._instances.get(fn)
        module = record[2] if record is not None else _module_label(getattr(fn, "scope", ()))
        for stats in self._rows(name, module):
            stats.backward_calls += 1
            stats.backward_s += seconds
        if record is not None:
            record[1] += seconds
        else:  # its forward ran before the profile began
            try:
                self._instances[fn] = [0.0, seconds, module]
            except TypeError:
                pass

    def _rows(self, name: str, module: str) -> tuple[OpStats, OpStats]:
        """The op's row in the per-op table and in the per-module table (created if new)."""
        by_op = self._by_op.get(name)
        if by_op is None:
            by_op = self._by_op[name] = OpStats(name)
        by_module = self._by_module.get((module, name))
        if by_module is None:
            by_module = self._by_module[(module, name)] = OpStats(f"{module}/{name}")
        return by_op, by_module

    # ------------------------------------------------------------------ results
    @property
    def total_forward_ms(self) -> float:
        """Milliseconds spent in all ops' ``forward``."""
        return sum(s.forward_s for s in self._by_op.values()) * 1e3

    @property
    def total_backward_ms(self) -> float:
        """Milliseconds spent in all ops' ``backward``."""
        return sum(s.backward_s for s in self._by_op.values()) * 1e3

    @property
    def total_ms(self) -> float:
        return self.total_forward_ms + self.total_backward_ms

    def op_ms(self, fn: Any) -> tuple[float, float] | None:
        """(forward ms, backward ms) of one op instance, or None if it ran outside the profile."""
        record = self._instances.get(fn)
        return None if record is None else (record[0] * 1e3, record[1] * 1e3)

    def stats(self, sort_by: str = "total", group_by: str = "op") -> list[OpStats]:
        """The rows of the table as :class:`OpStats`, sorted.

        Args:
            sort_by: "total", "forward", "backward", "calls", "output" (bytes) or "name".
            group_by: "op" (one row per op class) or "module" (per op class within each
                module, named ``module/Op``; ``-`` for ops run outside any module).
        """
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"profile.table: sort_by must be one of {sorted(_SORT_KEYS)}, "
                             f"got {sort_by!r}")
        if group_by not in _GROUPS:
            raise ValueError(f"profile.table: group_by must be one of {_GROUPS}, "
                             f"got {group_by!r}")
        rows = (self._by_op if group_by == "op" else self._by_module).values()
        return sorted(rows, key=lambda s: (_SORT_KEYS[sort_by](s), s.name))

    def table(self, sort_by: str = "total", limit: int | None = None,
              group_by: str = "op") -> str:
        """A text table: op, calls, forward ms, backward ms, total ms, % of total, output MB.

        Args:
            sort_by: "total" (default), "forward", "backward", "calls", "output" or "name".
            limit: show only the first ``limit`` rows (the total line still covers all).
            group_by: "op" or "module" (see :meth:`stats`).

        Returns:
            The table as a string (``print`` it).
        """
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"profile.table: limit must be a non-negative int or None, "
                             f"got {limit!r}")
        rows = self.stats(sort_by, group_by)
        total_s = sum(s.total_s for s in rows)
        shown = rows if limit is None else rows[:limit]
        width = max([len("op"), len("total")] + [len(s.name) for s in shown])
        header = (f"{'op':<{width}}  {'calls':>7}  {'forward ms':>11}  {'backward ms':>11}  "
                  f"{'total ms':>10}  {'%':>6}  {'output MB':>10}")
        lines = [header, "-" * len(header)]

        def line(name: str, calls: int, fwd: float, bwd: float, nbytes: int) -> str:
            share = 100.0 * (fwd + bwd) / total_s if total_s > 0 else 0.0
            return (f"{name:<{width}}  {calls:>7d}  {fwd * 1e3:>11.3f}  {bwd * 1e3:>11.3f}  "
                    f"{(fwd + bwd) * 1e3:>10.3f}  {share:>6.1f}  {nbytes / 1e6:>10.3f}")

        for s in shown:
            lines.append(line(s.name, s.calls, s.forward_s, s.backward_s, s.output_bytes))
        if limit is not None and len(rows) > limit:
            lines.append(f"... {len(rows) - limit} more")
        lines.append("-" * len(header))
        lines.append(line("total", sum(s.calls for s in rows), sum(s.forward_s for s in rows),
                          sum(s.backward_s for s in rows), sum(s.output_bytes for s in rows)))
        lines.append(f"wall time of the profiled block(s): {self.wall_ms:.3f} ms")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"profile(ops={sum(s.calls for s in self._by_op.values())}, "
                f"forward_ms={self.total_forward_ms:.3f}, "
                f"backward_ms={self.total_backward_ms:.3f})")
