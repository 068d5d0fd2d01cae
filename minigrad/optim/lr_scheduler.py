"""Learning-rate schedules with PyTorch's names, arguments and sequences.

A scheduler changes ``lr`` in each of its optimiser's ``param_groups``. Call ``optimizer.step()``
first, then ``scheduler.step()``: once per optimiser step for per-step schedules (OneCycleLR,
a warm-up), or once per epoch for per-epoch ones. The values after each ``step()`` are
torch.optim.lr_scheduler's, computed the same way (the recursive forms torch uses, so a
learning rate changed by hand carries on the way it does in torch).

Beyond PyTorch:

- ``preview(steps)`` returns the learning rates of the next ``steps`` optimiser steps (or
  epochs) without touching the optimiser or the scheduler; ``minigrad.viz.plot_lr_schedule``
  draws them.
- Order is enforced. ``scheduler.step()`` when the optimiser has not stepped since the
  scheduler was created or last stepped (the old ``scheduler.step()``-first loop, or two
  scheduler steps per optimiser step) raises RuntimeError: torch warns once and shifts the
  whole schedule by one step; here the schedule can never shift silently.
- ``state_dict()`` holds numbers, arrays and strings only (``minigrad.io.save`` writes it);
  ``load_state_dict`` checks it whole before changing anything. A run resumed from the
  optimiser's and the scheduler's state dicts continues the schedule exactly.

>>> from minigrad import nn, optim
>>> opt = optim.SGD([nn.Parameter([1.0])], lr=0.1)
>>> sched = StepLR(opt, step_size=2, gamma=0.5)
>>> sched.preview(5)[:, 0].tolist()
[0.1, 0.1, 0.05, 0.05, 0.025]
>>> for epoch in range(3):
...     opt.step()                     # (a whole epoch of steps)
...     sched.step()
>>> sched.get_last_lr()
[0.05]
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from minigrad.optim import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "ConstantLR", "PolynomialLR", "OneCycleLR", "LambdaLR",
           "ReduceLROnPlateau", "SequentialLR"]


def _real(value: Any, what: str, owner: str, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within the given bounds, or a clear error naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {what} must be a number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '≥'} {low}"
        hi = "" if high is None else f"{'<' if high_open else '≤'} {high}"
        raise ValueError(f"{owner}: {what} must be a finite number "
                         f"{' and '.join(b for b in (lo, hi) if b)}, got {value}".rstrip())
    return value


def _whole(value: Any, what: str, owner: str, low: int = 0) -> int:
    """A whole number ≥ ``low`` (an integral float from a checkpoint is accepted)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value != int(value) or value < low:
        raise ValueError(f"{owner}: {what} must be a whole number ≥ {low}, got {value!r}")
    return int(value)


def _per_group(value: Any, what: str, optimizer: Optimizer, owner: str) -> list:
    """One value per parameter group: a list of that length, or one value for all."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{owner}: {what} has {len(value)} values but the optimiser has "
                             f"{len(optimizer.param_groups)} parameter groups")
        return list(value)
    return [value] * len(optimizer.param_groups)


class _Shadow:
    """A stand-in optimiser holding copies of the groups' settings, for ``preview``."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.param_groups = [{k: v for k, v in g.items() if k != "params"}
                             for g in optimizer.param_groups]
        self.defaults = dict(optimizer.defaults)
        self._step_count = optimizer._step_count


class LRScheduler:
    """Base class: PyTorch's LRScheduler protocol (``step``, ``get_last_lr``, state dicts).

    Subclasses write ``get_lr()`` (the new learning rate of every group, from ``last_epoch``
    and the groups' current ``lr``) and may write ``_closed_form()`` (from ``base_lrs``), used
    by SequentialLR at a milestone, as in torch. ``_config`` names the attributes saved in the
    state dict beside the running counters.

    Attributes:
        optimizer: the optimiser whose groups' ``lr`` it sets.
        base_lrs: each group's ``initial_lr``.
        last_epoch: how many times ``step()`` has run (0 right after construction).
    """

    _config: tuple[str, ...] = ()

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        name = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a minigrad.optim optimiser, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        last_epoch = _whole(last_epoch, "last_epoch", name, low=-1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"{name}: last_epoch={last_epoch} resumes a schedule, but "
                                   f"param_groups[{i}] has no 'initial_lr'; load the "
                                   f"optimiser's state dict first, or leave last_epoch at -1")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    # ------------------------------------------------------------ stepping
    def get_lr(self) -> list[float]:
        """The learning rate of each group for ``last_epoch`` (called by ``step``)."""
        raise NotImplementedError(f"{type(self).__name__}.get_lr is not written")

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group as this scheduler last set it."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance the schedule by one optimiser step (or epoch): call after ``optimizer.step()``.

        Raises:
            RuntimeError: the optimiser has not stepped since this scheduler was created or
                last stepped; stepping anyway would shift the whole schedule by one.
        """
        self._check_order()
        self._advance()

    def _check_order(self) -> None:
        count = self.optimizer._step_count
        if count == self._seen:
            raise RuntimeError(
                f"{type(self).__name__}.step: the optimiser has not stepped since this "
                f"scheduler {'was created' if self._stepped == 0 else 'last stepped'}; call "
                f"optimizer.step() first and scheduler.step() once after it (per step or per "
                f"epoch). Stepping now would shift the schedule by one.")
        self._seen = count
        self._stepped += 1

    def _initial_step(self) -> None:
        self._seen = self.optimizer._step_count
        self._stepped = 0
        self._step_count = 0
        self._initial = True
        try:
            self._advance()
        finally:
            self._initial = False

    def _advance(self) -> None:
        self._step_count += 1
        self._update_lr()

    def _undo(self) -> None:
        """Step the counter back once (SequentialLR re-runs its first scheduler's first step)."""
        self.last_epoch -= 1

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._closed_form() if hasattr(self, "_closed_form") else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = float(lr)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    # ------------------------------------------------------------ preview
    def _clone(self, optimizer: Any) -> LRScheduler:
        clone = copy.copy(self)
        for key, value in self.__dict__.items():
            if isinstance(value, (list, dict)):
                setattr(clone, key, copy.copy(value))
        clone.optimizer = optimizer
        return clone

    def preview(self, steps: int) -> np.ndarray:
        """The learning rates of the next ``steps`` optimiser steps (or epochs), per group.

        Row 0 is the rate in force now, row i the rate after i more ``step()`` calls. Neither
        the optimiser nor this scheduler changes.

        Args:
            steps: how many rows, ≥ 1.

        Returns:
            A float64 array of shape (steps, number of parameter groups).

        >>> from minigrad import nn, optim
        >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
        >>> LinearLR(opt, start_factor=0.25, total_iters=3).preview(5)[:, 0].tolist()
        [0.25, 0.5, 0.75, 1.0, 1.0]
        """
        steps = _whole(steps, "steps", f"{type(self).__name__}.preview", low=1)
        clone = self._clone(_Shadow(self.optimizer))
        rows = [clone._lrs()]
        for _ in range(steps - 1):
            clone._advance()
            rows.append(clone._lrs())
        return np.array(rows, dtype=np.float64)

    # ------------------------------------------------------------ resuming
    def state_dict(self) -> dict[str, Any]:
        """The schedule's counters and settings as a dict of numbers, arrays and strings."""
        state = {"last_epoch": self.last_epoch, "step_count": self._step_count,
                 "base_lrs": np.array(self.base_lrs, np.float64),
                 "last_lr": np.array(self._last_lr, np.float64)}
        for key in self._config:
            state[key] = self._save(key)
        return state

    def _save(self, key: str) -> Any:
        return getattr(self, key)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` saved (resume a run: load the optimiser's state first).

        Accepts the flat dotted dict ``minigrad.io.load`` returns. Nothing changes if an
        entry is missing or out of range.

        Raises:
            KeyError: an entry is missing.
            ValueError, TypeError: an entry is out of range or of the wrong kind.
        """
        values = self._parse(state_dict)
        for key, value in values.items():
            setattr(self, key, value)
        self._seen = self.optimizer._step_count

    def _parse(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """The attributes a state dict sets, all checked (subclasses check their settings)."""
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{owner}: expected a dict, got {type(state_dict).__name__}")
        if any("." in k for k in state_dict):
            from minigrad.io import unflatten

            state_dict = unflatten(state_dict)
        needed = ("last_epoch", "step_count", "base_lrs", "last_lr") + self._config
        missing = [k for k in needed if k not in state_dict]
        if missing:
            raise KeyError(f"{owner}: entries {missing} are missing (got {sorted(state_dict)}); "
                           f"was it saved by a different scheduler?")
        groups = len(self.optimizer.param_groups)
        values: dict[str, Any] = {
            "last_epoch": _whole(state_dict["last_epoch"], "last_epoch", owner, low=-1),
            "_step_count": _whole(state_dict["step_count"], "step_count", owner),
        }
        for key, attr in (("base_lrs", "base_lrs"), ("last_lr", "_last_lr")):
            array = np.asarray(state_dict[key])
            if array.shape != (groups,) or array.dtype.kind not in "iuf":
                raise ValueError(f"{owner}: {key} must hold one number per parameter group "
                                 f"({groups}), got {array!r}")
            values[attr] = [_real(v, f"{key}[{i}]", owner, low=0.0)
                            for i, v in enumerate(array.tolist())]
        for key in self._config:
            values[key] = self._load(key, state_dict[key], owner)
        return values

    def _load(self, key: str, value: Any, owner: str) -> Any:
        return _real(value, key, owner)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._config)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


class LambdaLR(LRScheduler):
    """lr = initial_lr · λ(epoch), with λ a function of the step count (one per group, or one).

    Args:
        optimizer: the optimiser.
        lr_lambda: a function of an int, or a list of them, one per parameter group.
        last_epoch: -1 to start; larger to resume (the groups need ``initial_lr``).

    The functions are not saved in the state dict (as in PyTorch): a resumed run passes them
    to the constructor again.

    >>> from minigrad import nn, optim
    >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
    >>> LambdaLR(opt, lambda epoch: 0.5 ** epoch).preview(3)[:, 0].tolist()
    [1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float]
                 | Sequence[Callable[[int], float]], last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"LambdaLR: expected a minigrad.optim optimiser, got "
                            f"{type(optimizer).__name__}")
        lambdas = _per_group(lr_lambda, "lr_lambda", optimizer, "LambdaLR")
        for i, fn in enumerate(lambdas):
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda[{i}] must be a function of the epoch, "
                                f"got {type(fn).__name__}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr * fn(self.last_epoch)
                for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class StepLR(LRScheduler):
    """lr ← lr · γ every ``step_size`` steps: initial_lr · γ^⌊epoch / step_size⌋.

    Args:
        optimizer: the optimiser.
        step_size: steps between decays, ≥ 1.
        gamma: γ ≥ 0.
        last_epoch: -1 to start.
    """

    _config = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = _whole(step_size, "step_size", "StepLR", low=1)
        self.gamma = _real(gamma, "gamma", "StepLR", low=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]

    def _load(self, key, value, owner):
        if key == "step_size":
            return _whole(value, key, owner, low=1)
        return _real(value, key, owner, low=0.0)


class MultiStepLR(LRScheduler):
    """lr ← lr · γ at each milestone (a milestone listed twice multiplies by γ²).

    Args:
        optimizer: the optimiser.
        milestones: step counts, each ≥ 1.
        gamma: γ ≥ 0.
        last_epoch: -1 to start.
    """

    _config = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = self._load("milestones", milestones, "MultiStepLR")
        self.gamma = _real(gamma, "gamma", "MultiStepLR", low=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(milestones, self.last_epoch)
                for base in self.base_lrs]

    def _save(self, key):
        if key == "milestones":
            return np.array(sorted(self.milestones.elements()), np.int64)
        return super()._save(key)

    def _load(self, key, value, owner):
        if key == "milestones":
            values = np.asarray(value).reshape(-1).tolist()
            return Counter(_whole(m, f"milestones[{i}]", owner, low=1)
                           for i, m in enumerate(values))
        return _real(value, key, owner, low=0.0)


class ExponentialLR(LRScheduler):
    """lr ← lr · γ every step.

    Args:
        optimizer: the optimiser.
        gamma: γ ≥ 0.
        last_epoch: -1 to start.
    """

    _config = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _real(gamma, "gamma", "ExponentialLR", low=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._initial:
            return self._lrs()
        return [lr * self.gamma for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        return [base * self.gamma ** self.last_epoch for base in self.base_lrs]

    def _load(self, key, value, owner):
        return _real(value, key, owner, low=0.0)


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from initial_lr down to η_min over ``T_max`` steps (SGDR without restarts).

        lr_t = η_min + (initial_lr − η_min) · (1 + cos(π·t / T_max)) / 2

    computed recursively from the current lr, as torch does (so it keeps following the cosine
    beyond ``T_max``, back up).

    Args:
        optimizer: the optimiser.
        T_max: steps of the half period, ≥ 1.
        eta_min: η_min ≥ 0.
        last_epoch: -1 to start.
    """

    _config = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = _whole(T_max, "T_max", "CosineAnnealingLR", low=1)
        self.eta_min = _real(eta_min, "eta_min", "CosineAnnealingLR", low=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._initial:
            return self._lrs()
        if self._step_count == 1 and t > 0:
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._lrs())]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - eta_min) + eta_min for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]

    def _load(self, key, value, owner):
        if key == "T_max":
            return _whole(value, key, owner, low=1)
        return _real(value, key, owner, low=0.0)


class LinearLR(LRScheduler):
    """A linear ramp of the factor from ``start_factor`` to ``end_factor`` over ``total_iters``
    steps, then constant: the usual warm-up.

        lr_t = initial_lr · (s + (e − s) · min(t, total_iters) / total_iters)

    Args:
        optimizer: the optimiser.
        start_factor: s in (0, 1].
        end_factor: e in [0, 1].
        total_iters: steps of the ramp, ≥ 1.
        last_epoch: -1 to start.
    """

    _config = ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1) -> None:
        self.start_factor = self._load("start_factor", start_factor, "LinearLR")
        self.end_factor = self._load("end_factor", end_factor, "LinearLR")
        self.total_iters = self._load("total_iters", total_iters, "LinearLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        s, e, n, t = self.start_factor, self.end_factor, self.total_iters, self.last_epoch
        if t == 0:
            return [lr * s for lr in self._lrs()]
        if self._initial or t > n:
            return self._lrs()
        return [lr * (1.0 + (e - s) / (n * s + (t - 1) * (e - s))) for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        s, e, n = self.start_factor, self.end_factor, self.total_iters
        return [base * (s + (e - s) * min(n, self.last_epoch) / n) for base in self.base_lrs]

    def _load(self, key, value, owner):
        if key == "start_factor":
            return _real(value, key, owner, low=0.0, high=1.0, low_open=True)
        if key == "end_factor":
            return _real(value, key, owner, low=0.0, high=1.0)
        return _whole(value, key, owner, low=1)


class ConstantLR(LRScheduler):
    """lr = initial_lr · factor for the first ``total_iters`` steps, then initial_lr.

    Args:
        optimizer: the optimiser.
        factor: in (0, 1].
        total_iters: steps at the lowered rate, ≥ 1.
        last_epoch: -1 to start.
    """

    _config = ("factor", "total_iters")

    def __init__(self, optimizer: Optimizer, factor: float = 1.0 / 3, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        self.factor = self._load("factor", factor, "ConstantLR")
        self.total_iters = self._load("total_iters", total_iters, "ConstantLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.factor for lr in self._lrs()]
        if self.last_epoch != self.total_iters:
            return self._lrs()
        return [lr * (1.0 / self.factor) for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        return [base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base in self.base_lrs]

    def _load(self, key, value, owner):
        if key == "factor":
            return _real(value, key, owner, low=0.0, high=1.0, low_open=True)
        return _whole(value, key, owner, low=1)


class PolynomialLR(LRScheduler):
    """lr_t = initial_lr · (1 − min(t, total_iters) / total_iters)^power.

    Args:
        optimizer: the optimiser.
        total_iters: steps to reach 0, ≥ 1.
        power: the exponent, ≥ 0 (1 is a linear decay).
        last_epoch: -1 to start.
    """

    _config = ("total_iters", "power")

    def __init__(self, optimizer: Optimizer, total_iters: int = 5, power: float = 1.0,
                 last_epoch: int = -1) -> None:
        self.total_iters = self._load("total_iters", total_iters, "PolynomialLR")
        self.power = self._load("power", power, "PolynomialLR")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, n = self.last_epoch, self.total_iters
        if self._initial or t > n:
            return self._lrs()
        decay = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [lr * decay for lr in self._lrs()]

    def _closed_form(self) -> list[float]:
        return [base * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters)
                ** self.power for base in self.base_lrs]

    def _load(self, key, value, owner):
        if key == "power":
            return _real(value, key, owner, low=0.0)
        return _whole(value, key, owner, low=1)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith): up from max_lr/div_factor to max_lr, then down to
    initial_lr/final_div_factor, over ``total_steps`` optimiser steps; momentum (or β₁) moves
    the other way, between ``max_momentum`` and ``base_momentum``.

    Step it after every optimiser step (not every epoch). The groups get ``initial_lr``,
    ``max_lr``, ``min_lr``, ``max_momentum`` and ``base_momentum`` entries, as in torch, which
    the optimiser's state dict saves.

    Args:
        optimizer: the optimiser.
        max_lr: the peak learning rate, or one per group.
        total_steps: the length of the cycle; or give ``epochs`` and ``steps_per_epoch``.
        epochs, steps_per_epoch: total_steps = epochs · steps_per_epoch.
        pct_start: the fraction of the cycle spent going up, in [0, 1].
        anneal_strategy: "cos" or "linear".
        cycle_momentum: cycle the momentum (SGD, RMSprop) or β₁ (Adam) too.
        base_momentum, max_momentum: its bounds (or one per group).
        div_factor: initial_lr = max_lr / div_factor.
        final_div_factor: min_lr = initial_lr / final_div_factor.
        three_phase: up, back down to initial_lr, then down to min_lr.
        last_epoch: -1 to start.
    """

    _config = ("total_steps", "pct_start", "anneal_strategy", "cycle_momentum", "three_phase")

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float],
                 total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85,
                 max_momentum: float | Sequence[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        name = "OneCycleLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a minigrad.optim optimiser, got "
                            f"{type(optimizer).__name__}")
        if total_steps is not None:
            self.total_steps = _whole(total_steps, "total_steps", name, low=1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_whole(epochs, "epochs", name, low=1)
                                * _whole(steps_per_epoch, "steps_per_epoch", name, low=1))
        else:
            raise ValueError(f"{name}: give total_steps, or epochs and steps_per_epoch")
        self.pct_start = self._load("pct_start", pct_start, name)
        self.anneal_strategy = self._load("anneal_strategy", anneal_strategy, name)
        self.three_phase = self._load("three_phase", three_phase, name)
        self.cycle_momentum = self._load("cycle_momentum", cycle_momentum, name)
        div_factor = _real(div_factor, "div_factor", name, low=0.0, low_open=True)
        final_div_factor = _real(final_div_factor, "final_div_factor", name, low=0.0,
                                 low_open=True)
        max_lrs = [_real(v, "max_lr", name, low=0.0)
                   for v in _per_group(max_lr, "max_lr", optimizer, name)]
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"{name}: cycle_momentum=True needs an optimiser with momentum "
                                 f"or betas; {type(optimizer).__name__} has neither (pass "
                                 f"cycle_momentum=False)")
            max_momentums = [_real(v, "max_momentum", name, low=0.0, high=1.0, high_open=True)
                             for v in _per_group(max_momentum, "max_momentum", optimizer, name)]
            base_momentums = [_real(v, "base_momentum", name, low=0.0, high=1.0,
                                    high_open=True)
                              for v in _per_group(base_momentum, "base_momentum", optimizer,
                                                  name)]
        if _whole(last_epoch, "last_epoch", name, low=-1) == -1:
            for i, group in enumerate(optimizer.param_groups):
                group["initial_lr"] = max_lrs[i] / div_factor
                group["max_lr"] = max_lrs[i]
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    self._set_momentum(group, max_momentums[i], optimizer)
                    group["max_momentum"] = max_momentums[i]
                    group["base_momentum"] = base_momentums[i]
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _set_momentum(group: dict, value: float, optimizer: Any) -> None:
        if "betas" in optimizer.defaults:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _phases(self) -> list[tuple[float, str, str, str, str]]:
        n, pct = self.total_steps, self.pct_start
        if self.three_phase:
            return [(float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                    (float(2 * pct * n) - 2, "max_lr", "initial_lr", "base_momentum",
                     "max_momentum"),
                    (n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        return [(float(pct * n) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR.step: stepped {t} times, but the cycle has "
                             f"total_steps={self.total_steps}")
        phases = self._phases()
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(phases):
                if t <= end or i == len(phases) - 1:
                    pct = (t - start) / (end - start)
                    lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m_from], group[m_to], pct),
                                           self.optimizer)
                    break
                start = end
        return lrs

    def _load(self, key, value, owner):
        if key == "total_steps":
            return _whole(value, key, owner, low=1)
        if key == "pct_start":
            return _real(value, key, owner, low=0.0, high=1.0)
        if key == "anneal_strategy":
            value = str(np.asarray(value)) if isinstance(value, np.ndarray) else value
            if value not in ("cos", "linear"):
                raise ValueError(f"{owner}: anneal_strategy must be 'cos' or 'linear', got "
                                 f"{value!r}")
            return value
        value = bool(value) if isinstance(value, np.ndarray) and value.dtype == bool else value
        if not isinstance(value, bool):
            raise TypeError(f"{owner}: {key} must be True or False, got {value!r}")
        return value


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when a metric has stopped improving.

    ``step(metric)`` once per epoch, after the optimiser's steps, with the validation loss
    (mode "min") or accuracy (mode "max"). After more than ``patience`` epochs without an
    improvement (relative or absolute ``threshold``), lr ← max(lr · factor, min_lr); then
    ``cooldown`` epochs pass before counting again. Reductions smaller than ``eps`` are skipped.

    Args:
        optimizer: the optimiser.
        mode: "min" or "max".
        factor: in [0, 1).
        patience: epochs without improvement tolerated, ≥ 0.
        threshold: how much better counts as better, ≥ 0.
        threshold_mode: "rel" (best · (1 ∓ threshold)) or "abs" (best ∓ threshold).
        cooldown: epochs to wait after a reduction, ≥ 0.
        min_lr: the floor, or one per group.
        eps: the smallest reduction applied.

    >>> from minigrad import nn, optim
    >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
    >>> ReduceLROnPlateau(opt, patience=1).preview([3.0, 2.0, 2.0, 2.0, 2.0])[:, 0].tolist()
    [1.0, 1.0, 1.0, 1.0, 0.1, 0.1]
    """

    _config = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
               "eps", "min_lrs", "best", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | Sequence[float] = 0.0,
                 eps: float = 1e-8) -> None:
        name = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a minigrad.optim optimiser, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.mode = self._load("mode", mode, name)
        self.threshold_mode = self._load("threshold_mode", threshold_mode, name)
        self.factor = self._load("factor", factor, name)
        self.patience = self._load("patience", patience, name)
        self.threshold = self._load("threshold", threshold, name)
        self.cooldown = self._load("cooldown", cooldown, name)
        self.eps = self._load("eps", eps, name)
        self._default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.min_lrs = [_real(v, "min_lr", name, low=0.0)
                        for v in _per_group(min_lr, "min_lr", optimizer, name)]
        self.last_epoch = 0
        self._step_count = 0
        self.base_lrs = self._lrs()
        self._last_lr = self._lrs()
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._seen = optimizer._step_count
        self._stepped = 0
        self._initial = False

    def step(self, metrics: float) -> None:  # type: ignore[override]
        """Record this epoch's metric (after the epoch's optimiser steps); maybe reduce lr.

        Raises:
            TypeError: ``metrics`` is not a number.
            ValueError: ``metrics`` is NaN.
            RuntimeError: the optimiser has not stepped since the last call.
        """
        current = self._metric(metrics)
        self._check_order()
        self._advance(current)

    def _metric(self, metrics: Any) -> float:
        try:
            current = float(metrics.item() if hasattr(metrics, "item") else metrics)
        except (TypeError, ValueError):
            raise TypeError(f"ReduceLROnPlateau.step: metrics must be a number, got "
                            f"{metrics!r}") from None
        if math.isnan(current):
            raise ValueError("ReduceLROnPlateau.step: the metric is NaN; a plateau cannot be "
                             "judged from it")
        return current

    def _advance(self, current: float) -> None:  # type: ignore[override]
        self._step_count += 1
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self._default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimiser has {len(groups)} "
                                   f"parameter groups but min_lr gave {len(self.min_lrs)}; set "
                                   f"scheduler.min_lrs to one value per group")
            self.min_lrs = [float(self._default_min_lr)] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, min_lr)
            if old - new > self.eps:
                group["lr"] = new

    def _is_better(self, current: float) -> bool:
        best, threshold = self.best, self.threshold
        if self.mode == "min":
            return current < (best * (1.0 - threshold) if self.threshold_mode == "rel"
                              else best - threshold)
        return current > (best * (threshold + 1.0) if self.threshold_mode == "rel"
                          else best + threshold)

    def preview(self, metrics: Sequence[float]) -> np.ndarray:  # type: ignore[override]
        """The learning rates of each epoch if the metric took these values, per group.

        Row 0 is the rate in force now, row i + 1 the rate after ``step(metrics[i])``.
        Neither the optimiser nor this scheduler changes.

        Args:
            metrics: the metric after each future epoch.

        Returns:
            A float64 array of shape (len(metrics) + 1, number of parameter groups).
        """
        clone = self._clone(_Shadow(self.optimizer))
        rows = [clone._lrs()]
        for value in metrics:
            clone._advance(self._metric(value))
            rows.append(clone._lrs())
        return np.array(rows, dtype=np.float64)

    def _save(self, key):
        if key == "min_lrs":
            return np.array(self.min_lrs, np.float64)
        return super()._save(key)

    def _load(self, key, value, owner):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if key in ("mode", "threshold_mode"):
            allowed = ("min", "max") if key == "mode" else ("rel", "abs")
            if value not in allowed:
                raise ValueError(f"{owner}: {key} must be one of {allowed}, got {value!r}")
            return value
        if key in ("patience", "cooldown", "num_bad_epochs", "cooldown_counter"):
            return _whole(value, key, owner)
        if key == "factor":
            return _real(value, key, owner, low=0.0, high=1.0, high_open=True)
        if key == "min_lrs":
            values = np.asarray(value, dtype=np.float64).reshape(-1).tolist()
            return [_real(v, f"min_lrs[{i}]", owner, low=0.0) for i, v in enumerate(values)]
        if key == "best":
            if not isinstance(value, (int, float)) or math.isnan(value):
                raise ValueError(f"{owner}: best must be a number, got {value!r}")
            return float(value)
        return _real(value, key, owner, low=0.0)


class SequentialLR(LRScheduler):
    """Schedulers one after another, switching at the milestones: warm-up, then decay.

    At milestone i the next scheduler starts from its own beginning (its closed form at step
    0), as in torch.

    Args:
        optimizer: the optimiser all the schedulers were made for.
        schedulers: two or more schedulers (not ReduceLROnPlateau).
        milestones: the step counts at which to switch, one fewer than the schedulers,
            increasing.
        last_epoch: -1 to start.

    >>> from minigrad import nn, optim
    >>> opt = optim.SGD([nn.Parameter([1.0])], lr=1.0)
    >>> warm = LinearLR(opt, start_factor=0.5, total_iters=2)
    >>> decay = ExponentialLR(opt, gamma=0.5)
    >>> SequentialLR(opt, [warm, decay], milestones=[2]).preview(5)[:, 0].tolist()
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler],
                 milestones: Sequence[int], last_epoch: int = -1) -> None:
        name = "SequentialLR"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected a minigrad.optim optimiser, got "
                            f"{type(optimizer).__name__}")
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError(f"{name}: schedulers is empty")
        for i, s in enumerate(schedulers):
            if isinstance(s, ReduceLROnPlateau):
                raise ValueError(f"{name}: schedulers[{i}] is a ReduceLROnPlateau, whose step "
                                 f"needs a metric; it cannot be sequenced")
            if not isinstance(s, LRScheduler):
                raise TypeError(f"{name}: schedulers[{i}] is a {type(s).__name__}, not a "
                                f"scheduler")
            if s.optimizer is not optimizer:
                raise ValueError(f"{name}: schedulers[{i}] ({type(s).__name__}) belongs to "
                                 f"another optimiser")
        milestones = [_whole(m, f"milestones[{i}]", name, low=1)
                      for i, m in enumerate(milestones)]
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{name}: {len(schedulers)} schedulers need "
                             f"{len(schedulers) - 1} milestones, got {len(milestones)}")
        if milestones != sorted(milestones):
            raise ValueError(f"{name}: milestones must increase, got {milestones}")
        self.optimizer = optimizer
        self._schedulers = schedulers
        self._milestones = milestones
        self.last_epoch = _whole(last_epoch, "last_epoch", name, low=-1) + 1
        self._step_count = 0
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        for s in schedulers:
            s._undo()
        self._schedulers[bisect_right(milestones, 0)]._initial_step()
        self._last_lr = self._schedulers[bisect_right(milestones, 0)].get_last_lr()
        self._seen = optimizer._step_count
        self._stepped = 0
        self._initial = False

    def _undo(self) -> None:
        for s in self._schedulers:
            s._undo()

    def _advance(self) -> None:
        self.last_epoch += 1
        i = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[i]
        if i > 0 and self._milestones[i - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler._advance()
        self._last_lr = scheduler.get_last_lr()

    def _clone(self, optimizer: Any) -> LRScheduler:
        clone = super()._clone(optimizer)
        clone._schedulers = [s._clone(optimizer) for s in self._schedulers]
        return clone

    def state_dict(self) -> dict[str, Any]:
        """Its own counters and each scheduler's state dict under ``schedulers.<i>``."""
        return {"last_epoch": self.last_epoch, "milestones": np.array(self._milestones),
                "last_lr": np.array(self._last_lr, np.float64),
                "schedulers": {str(i): s.state_dict() for i, s in enumerate(self._schedulers)}}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        owner = "SequentialLR.load_state_dict"
        if any("." in k for k in state_dict):
            from minigrad.io import unflatten

            state_dict = unflatten(state_dict)
        missing = [k for k in ("last_epoch", "milestones", "last_lr", "schedulers")
                   if k not in state_dict]
        if missing:
            raise KeyError(f"{owner}: entries {missing} are missing (got {sorted(state_dict)})")
        milestones = np.asarray(state_dict["milestones"]).reshape(-1).tolist()
        if milestones != self._milestones:
            raise ValueError(f"{owner}: the state dict has milestones {milestones} but this "
                             f"scheduler has {self._milestones}")
        subs = state_dict["schedulers"]
        if sorted(subs) != [str(i) for i in range(len(self._schedulers))]:
            raise ValueError(f"{owner}: the state dict has schedulers {sorted(subs)} but this "
                             f"scheduler sequences {len(self._schedulers)}")
        parsed = [s._parse(subs[str(i)]) for i, s in enumerate(self._schedulers)]
        last_epoch = _whole(state_dict["last_epoch"], "last_epoch", owner)
        last_lr = np.asarray(state_dict["last_lr"], dtype=np.float64).reshape(-1).tolist()
        if len(last_lr) != len(self.optimizer.param_groups):
            raise ValueError(f"{owner}: last_lr has {len(last_lr)} values for "
                             f"{len(self.optimizer.param_groups)} parameter groups")
        for s, values in zip(self._schedulers, parsed):
            for key, value in values.items():
                setattr(s, key, value)
            s._seen = self.optimizer._step_count
        self.last_epoch = last_epoch
        self._last_lr = last_lr
        self._seen = self.optimizer._step_count

    def __repr__(self) -> str:
        inner = ", ".join(type(s).__name__ for s in self._schedulers)
        return f"SequentialLR([{inner}], milestones={self._milestones})"

