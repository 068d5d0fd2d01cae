"""Optimisers: the textbook's four (SGD, Momentum, AdaGrad, Adam), updating parameters in place.

Each takes the parameters to train (``model.parameters()``), and its ``step()`` moves every
parameter that has a gradient, in place on ``p.data`` and in the parameter's own dtype (float32
stays float32). Parameters whose ``.grad`` is None are skipped. ``state_dict()`` returns plain
nested dicts of numbers and arrays that ``minigrad.io.save`` writes, so training can stop and
resume exactly where it was.

>>> import numpy as np
>>> from minigrad import nn
>>> w = nn.Parameter([1.0, -2.0])
>>> opt = SGD([w], lr=0.1)
>>> w.grad = np.array([0.5, 0.5], np.float32)
>>> opt.step()
>>> w.data
array([ 0.95, -2.05], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from minigrad.parallel import parallel_for
from minigrad.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Momentum", "AdaGrad", "Adam"]

# Adam updates parameters larger than this many elements in blocks of this size: 64Ki float32
# per array (256 KiB; five arrays take 1.25 MiB) stay in a core's L2 cache across the update's
# dozen passes, where whole arrays of several MB would go to memory on every pass.
_BLOCK = 1 << 16


def _number(value: Any, what: str, owner: str, low: float = 0.0, high: float | None = None,
            high_open: bool = False) -> float:
    """A hyperparameter as a float, checked to lie in [low, high] (or [low, high))."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        else:
            raise TypeError(f"{owner}: {what} must be a number, got {value!r}")
    value = float(value)
    upper_ok = (high is None or (value < high if high_open else value <= high))
    if not (value >= low and upper_ok):  # also rejects NaN
        bound = "" if high is None else f" and {'<' if high_open else '≤'} {high}"
        raise ValueError(f"{owner}: {what} must be ≥ {low}{bound}, got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters, per-parameter state, ``zero_grad`` and the state dict.

    Subclasses set their hyperparameters as attributes named in ``hyperparameters`` and write
    ``_update(p, grad, state)``, called by ``step()`` for each parameter with a gradient;
    ``state`` is that parameter's dict of running arrays (empty on the first step).
    """

    hyperparameters: tuple[str, ...] = ("lr",)

    def __init__(self, params: Iterable[Tensor]) -> None:
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Parameters, got a single "
                            f"{type(params).__name__}; pass [p] or model.parameters()")
        if hasattr(params, "parameters") and hasattr(params, "forward"):
            raise TypeError(f"{name}: got a {type(params).__name__} module; "
                            f"pass model.parameters()")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params must be an iterable of Parameters, "
                            f"got {type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: params is empty; nothing to optimise "
                             f"(did model.parameters() already get consumed?)")
        seen: set[int] = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: params[{i}] is a {type(p).__name__}, "
                                f"expected a Parameter")
            if not p.requires_grad:
                raise ValueError(f"{name}: params[{i}] (shape {p.shape}"
                                 + (f", name {p.name!r}" if p.name else "")
                                 + ") does not require grad, so it can never be updated")
            if p.data.dtype.kind != "f":
                raise TypeError(f"{name}: params[{i}] has dtype {p.data.dtype}; "
                                f"only floating-point parameters can be optimised")
            if id(p) in seen:
                raise ValueError(f"{name}: params[{i}] (shape {p.shape}) appears twice")
            seen.add(id(p))
        self.params: list[Tensor] = params
        self.state: list[dict[str, Any]] = [{} for _ in params]
        # Work arrays reused from step to step, one per (shape, dtype): a fresh array of a few
        # MB each time would cost more in page faults than the arithmetic itself.
        self._scratch: dict[tuple, np.ndarray] = {}

    def _work(self, p: np.ndarray, owner: int = 0) -> np.ndarray:
        """A scratch array shaped like ``p`` (its contents are garbage), one per ``owner`` (the
        first block of a run that one thread updates while others update theirs)."""
        key = (p.shape, p.dtype, owner)
        work = self._scratch.get(key)
        if work is None:
            work = self._scratch[key] = np.empty_like(p)
        return work

    def zero_grad(self) -> None:
        """Forget the gradients of the parameters (set ``.grad`` to None)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for p, state in zip(self.params, self.state):
            grad = p.grad
            if grad is None:
                continue
            if grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.step: parameter {p.name or ''} has "
                                 f"shape {p.data.shape} but its grad has shape {grad.shape}")
            # _writable: the step counts as an in-place change of p (a backward through
            # ops recorded before it is refused) and may write while a graph holds p.
            self._update(p._writable(), grad, state)

    def _update(self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}._update is not written")

    # ------------------------------------------------------------ resuming
    def state_dict(self) -> dict[str, Any]:
        """The hyperparameters and each parameter's running state, as plain nested dicts.

        ``{"hyperparameters": {"lr": ..., ...}, "state": {"0": {"step": ..., "m": ...}, ...}}``,
        parameters numbered in the order they were given. Arrays are copies.
        """
        return {
            "hyperparameters": {k: getattr(self, k) for k in self.hyperparameters},
            "state": {str(i): {k: (v.copy() if isinstance(v, np.ndarray) else v)
                               for k, v in s.items()}
                      for i, s in enumerate(self.state) if s},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and running state saved by ``state_dict``.

        Accepts the nested dict, or the flat dotted one ``minigrad.io.load`` returns. Arrays
        are cast to each parameter's dtype.

        Raises:
            KeyError: an entry is missing or names a parameter this optimiser does not have.
            ValueError: a running array's shape differs from its parameter's.
        """
        name = type(self).__name__
        if any("." in k for k in state_dict):
            from minigrad.io import unflatten

            state_dict = unflatten(state_dict)
        try:
            hyper = state_dict["hyperparameters"]
        except KeyError:
            raise KeyError(f"{name}.load_state_dict: no 'hyperparameters' entry; got keys "
                           f"{sorted(state_dict)}") from None
        missing = [k for k in self.hyperparameters if k not in hyper]
        if missing:
            raise KeyError(f"{name}.load_state_dict: hyperparameters {missing} are missing "
                           f"(got {sorted(hyper)}); was it saved by a different optimiser?")
        new_state: list[dict[str, Any]] = [{} for _ in self.params]
        for key, entry in state_dict.get("state", {}).items():
            try:
                i = int(key)
                p = self.params[i]
            except (ValueError, IndexError):
                raise KeyError(f"{name}.load_state_dict: state entry '{key}' names no parameter "
                               f"(this optimiser has {len(self.params)})") from None
            for k, v in entry.items():
                v = np.asarray(v)
                if k == "step":
                    new_state[i][k] = int(v)
                    continue
                if v.shape != p.data.shape:
                    raise ValueError(f"{name}.load_state_dict: state '{key}.{k}' has shape "
                                     f"{v.shape} but parameter {i} has shape {p.data.shape}")
                new_state[i][k] = v.astype(p.data.dtype, copy=True)
        for k in self.hyperparameters:
            value = hyper[k]
            value = np.asarray(value)
            setattr(self, k, tuple(float(x) for x in value) if value.ndim else float(value))
        self.state = new_state

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.hyperparameters)
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and L2 weight decay (as torch.optim).

        g ← ∇L + λ·w
        v ← μ·v + g            (v = g on the first step; only when μ > 0)
        w ← w − η·v            (w − η·g without momentum)

    With a constant η this is the textbook's Momentum: its v' = α·v' − η·g equals −η·v.

    Args:
        params: the parameters to update.
        lr: η ≥ 0.
        momentum: μ in [0, 1).
        weight_decay: λ ≥ 0.
    """

    hyperparameters = ("lr", "momentum", "weight_decay")

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        name = type(self).__name__
        self.lr = _number(lr, "lr", name)
        self.momentum = _number(momentum, "momentum", name, 0.0, 1.0, high_open=True)
        self.weight_decay = _number(weight_decay, "weight_decay", name)
        super().__init__(params)

    def _update(self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        f = p.dtype.type
        if self.weight_decay:
            work = self._work(p)
            np.multiply(p, f(self.weight_decay), out=work)
            work += grad
            grad = work
        if self.momentum:
            v = state.get("v")
            if v is None:
                v = state["v"] = grad.astype(p.dtype, copy=True)
            else:
                v *= f(self.momentum)
                v += grad
            grad = v
        work = self._work(p)
        np.multiply(grad, f(self.lr), out=work)
        p -= work


class Momentum(SGD):
    """SGD with momentum μ = 0.9 by default (the textbook's ``Momentum``); see :class:`SGD`."""

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


class AdaGrad(Optimizer):
    """Per-element learning rates shrinking with the gradients seen so far (Duchi et al.).

        h ← h + g ⊙ g
        w ← w − η · g / (√h + ε)

    Args:
        params: the parameters to update.
        lr: η ≥ 0.
        eps: ε ≥ 0, keeps the first steps finite.
    """

    hyperparameters = ("lr", "eps")

    def __init__(self, params: Iterable[Tensor], lr: float = 0.01, eps: float = 1e-8) -> None:
        name = type(self).__name__
        self.lr = _number(lr, "lr", name)
        self.eps = _number(eps, "eps", name)
        super().__init__(params)

    def _update(self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        f = p.dtype.type
        h = state.get("h")
        if h is None:
            h = state["h"] = np.zeros_like(p)
        work = self._work(p)
        np.multiply(grad, grad, out=work)
        h += work
        np.sqrt(h, out=work)
        work += f(self.eps)
        np.divide(grad, work, out=work)
        work *= f(self.lr)
        p -= work


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, as torch.optim.Adam computes it.

        g ← ∇L + λ·w                       (L2 weight decay, when λ > 0)
        m ← β₁·m + (1 − β₁)·g              v ← β₂·v + (1 − β₂)·g ⊙ g
        m̂ = m / (1 − β₁ᵗ)                  v̂ = v / (1 − β₂ᵗ)
        w ← w − η · m̂ / (√v̂ + ε)

    t counts the steps this parameter has taken.

    Args:
        params: the parameters to update.
        lr: η ≥ 0.
        betas: (β₁, β₂), each in [0, 1).
        eps: ε ≥ 0.
        weight_decay: λ ≥ 0.
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params: Iterable[Tensor], lr: float = 0.001,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        name = type(self).__name__
        self.lr = _number(lr, "lr", name)
        if not isinstance(betas, (tuple, list, np.ndarray)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_number(betas[0], "betas[0]", name, 0.0, 1.0, high_open=True),
                      _number(betas[1], "betas[1]", name, 0.0, 1.0, high_open=True))
        self.eps = _number(eps, "eps", name)
        self.weight_decay = _number(weight_decay, "weight_decay", name)
        super().__init__(params)

    def _update(self, p: np.ndarray, grad: np.ndarray, state: dict[str, Any]) -> None:
        f = p.dtype.type
        if self.weight_decay:
            decayed = np.multiply(p, f(self.weight_decay))
            decayed += grad
            grad = decayed
        if not state:
            state["step"] = 0
            state["m"] = np.zeros_like(p)
            state["v"] = np.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        arrays = (p, grad, m, v)
        if p.size > _BLOCK and all(a.flags.c_contiguous for a in arrays):
            # The same passes block by block, each block small enough to stay in the CPU's
            # cache through all of them: the result is identical, element by element.
            # Runs of blocks go to minigrad's threads, each run with its own scratch block.
            p, grad, m, v = (a.reshape(-1) for a in arrays)

            def blocks(first, last):
                work = self._work(p[:_BLOCK], owner=first)
                for lo in range(first * _BLOCK, min(last * _BLOCK, p.size), _BLOCK):
                    block = slice(lo, lo + _BLOCK)
                    self._adam(p[block], grad[block], m[block], v[block],
                               work[:p[block].size], t)

            parallel_for(-(-p.size // _BLOCK), blocks, work=4 * p.size)
            return
        self._adam(p, grad, m, v, self._work(p), t)

    def _adam(self, p, grad, m, v, work, t) -> None:
        """The moment updates and the step on arrays of one shape; ``work`` is scratch."""
        f = p.dtype.type
        beta1, beta2 = self.betas
        np.multiply(grad, f(1 - beta1), out=work)
        m *= f(beta1)
        m += work
        np.multiply(grad, grad, out=work)
        work *= f(1 - beta2)
        v *= f(beta2)
        v += work
        # η·m̂/(√v̂ + ε) = (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε), as torch evaluates it.
        np.sqrt(v, out=work)
        work *= f(1 / np.sqrt(1 - beta2 ** t))
        work += f(self.eps)
        np.divide(m, work, out=work)
        work *= f(self.lr / (1 - beta1 ** t))
        p -= work
