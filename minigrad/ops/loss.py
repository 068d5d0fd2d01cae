"""Softmax, log-softmax and the fused softmax cross-entropy loss, all computed stably.

Each subtracts the maximum along the class axis before exponentiating: softmax(z) is unchanged
by a shift of z, and then every exponent is ≤ 0, so nothing overflows; log-softmax is
(z − m) − log Σ exp(z − m), which never takes the log of an underflowed 0.
"""

from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.ops.activation import Sigmoid
from minigrad.ops.arithmetic import Mul, Sub
from minigrad.ops.elementwise import _SIGMA_FROM, _SOFTPLUS, Maximum, Softplus, Where
from minigrad.ops.join import broadcast_to
from minigrad.parallel import elementwise, empty_like
from minigrad.tensor import Tensor, _float_dtype


def _axis(op: str, axis, ndim: int, shape) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for an input of shape {shape}")
    return int(axis) % ndim


def _short_rows(z: np.ndarray, axis: int) -> bool:
    """A 2-D z reduced along rows of at most 64 elements (logits (N, C) with few classes)."""
    return z.ndim == 2 and axis == 1 and z.shape[1] <= 64


def _max_along(z: np.ndarray, axis: int) -> np.ndarray:
    """z.max(axis, keepdims=True), fast for short rows too.

    NumPy reduces a short last axis one row at a time (about 9 µs for logits of shape
    (100, 10)); the maxima across the rows of the transposed copy take one vectorised pass
    (about 2.5 µs). Long rows are reduced directly.
    """
    if _short_rows(z, axis):
        return np.ascontiguousarray(z.T).max(axis=0)[:, np.newaxis]
    return z.max(axis=axis, keepdims=True)


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    """log softmax(z) along ``axis``: (z − m) − log Σ exp(z − m), m the maximum.

    For short rows of a 2-D z (logits (N, C) with few classes) every step runs on the
    transposed copy (C, N), where the max and the sum over the classes are vectorised across
    the N rows; the result is returned as a (N, C) view of it.
    """
    if _short_rows(z, axis):
        st = np.array(z.T, order="C")          # (C, N): a copy of its own, worked on in place
        st -= np.maximum.reduce(st, axis=0)
        lse = np.add.reduce(np.exp(st), axis=0)
        st -= np.log(lse, out=lse)
        return st.T
    s, _, total = _exp_parts(z, axis)
    s -= np.log(total)
    return s


def _log_sums(s: np.ndarray, e: np.ndarray, at: np.ndarray):
    """(log Σ e, Σ e) of each row of s = z − m and e = exp(s) (N, C, any layout), where
    ``at`` (N,) names a column of each row.

    In the rows where s is 0 at that column (a maximum: its e is 1 exactly) the sum is taken
    with that 1 left out, r, and log Σ e = log1p(r); the 1 is added to the sum afterwards.
    log of the sum rounded to 1 + r would keep of r only what the rounding left: a confident
    row's loss, about r, would be off by about ε/r in relative terms (a loss of 1.5e-6 in
    float64 by 2.8e-10, a float32 one of 1e-6 by some 6%). Other rows: log of their sum.
    """
    top = np.flatnonzero(s[np.arange(len(at)), at] == 0)
    cols = at[top]
    e[top, cols] = 0
    total = e.sum(axis=1)
    rest = total[top]
    e[top, cols] = 1
    total[top] += 1
    log_total = np.log(total)
    log_total[top] = np.log1p(rest)
    return log_total, total


def _row_losses(s: np.ndarray, log_total: np.ndarray, t: np.ndarray) -> np.ndarray:
    """−Σ_c t_c · log softmax(z)_c of each row, Σ_c t_c · (−s_c) + (Σ_c t_c) · log Σ e, from
    s = z − m (N, C) and log Σ e (N,) of :func:`_log_sums`; ``t`` class indices (N,) or
    label rows (N, C)."""
    if t.ndim == 1:
        return log_total - s[np.arange(len(t)), t]
    return (t * s).sum(axis=1) * -1 + t.sum(axis=1) * log_total


def _exp_parts(z: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(s, e, Σ e) along ``axis``: s = z − m (m the maximum), e = exp(s), the sum kept as an
    axis of length 1. log softmax(z) = s − log Σ e; softmax(z) = e / Σ e."""
    s = z - _max_along(z, axis)
    e = np.exp(s)
    return s, e, e.sum(axis=axis, keepdims=True)


class Softmax(Function):
    """Softmax along ``axis``: y_i = exp(x_i − m) / Σ_j exp(x_j − m), m = max_j x_j.

    dL/dx = y ⊙ (dL/dy − Σ_j dL/dy_j · y_j)      (the sum along ``axis``)

    Shapes: x (…) → y of the same shape. Smooth: no kinks. Saved: y.
    """

    float_inputs = True

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        x = np.asarray(x)
        axis = _axis("softmax", self.axis, x.ndim, x.shape)
        e = np.subtract(x, _max_along(x, axis))
        np.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
        self.y, self.ax = e, axis
        return e

    def backward(self, dy):
        y = self.y
        dx = dy * y                             # one array, worked on in place
        np.subtract(dy, dx.sum(axis=self.ax, keepdims=True), out=dx)
        dx *= y
        return dx

    def backward_graph(self, dy):
        y = self.output
        return y * (dy - (dy * y).sum(axis=self.ax, keepdims=True))


class LogSoftmax(Function):
    """Log-softmax along ``axis``: y_i = (x_i − m) − log Σ_j exp(x_j − m), m = max_j x_j.

    dL/dx = dL/dy − softmax(x) · Σ_j dL/dy_j      (the sum along ``axis``)

    Shapes: x (…) → y of the same shape. Smooth: no kinks. Saved: e = exp(x − m) and Σ e
    (softmax(x) = e / Σ e in backward, a division where eʸ would be NumPy's exp again, and
    more accurate); for 2-D x with rows of at most 64 along axis 1 (the transposed path of
    ``_log_softmax``), y, and softmax(x) = eʸ.
    """

    float_inputs = True

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        x = np.asarray(x)
        axis = _axis("log_softmax", self.axis, x.ndim, x.shape)
        self.ax = axis
        if _short_rows(x, axis):
            self.y, self.e = np.ascontiguousarray(_log_softmax(x, axis)), None
            return self.y
        y, self.e, self.total = _exp_parts(x, axis)
        y -= np.log(self.total)
        return y

    def backward(self, dy):
        if self.e is not None:
            dx = np.divide(self.e, self.total)  # softmax(x), a fresh array to work in
        else:
            dx = np.exp(self.y)
        dx *= dy.sum(axis=self.ax, keepdims=True)
        return np.subtract(dy, dx, out=dx if dx.dtype == np.result_type(dy, dx) else None)

    def backward_graph(self, dy):
        return dy - self.output.exp() * dy.sum(axis=self.ax, keepdims=True)


def _check_labels(z: np.ndarray, t: np.ndarray) -> None:
    op = "softmax_cross_entropy"
    if z.ndim != 2:
        raise ValueError(f"{op}: logits must be 2-D (N, C), got logits.shape={z.shape}")
    N, C = z.shape
    if N == 0:
        raise ValueError(f"{op}: the batch is empty (logits.shape={z.shape}): the mean loss "
                         f"is undefined")
    if t.ndim not in (1, 2):
        raise ValueError(f"{op}: labels must be class indices (N,) or one-hot rows (N, C); "
                         f"got t.shape={t.shape} for logits.shape={z.shape}")
    if t.shape[0] != N:
        raise ValueError(f"{op}: {t.shape[0]} labels for {N} rows of logits; "
                         f"logits.shape={z.shape}, t.shape={t.shape}")
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            raise ValueError(f"{op}: labels of shape (N,)={t.shape} are class indices and "
                             f"must be integers, got dtype {t.dtype}")
        if _labels_out_of_range(t, C):
            low, high = int(t.min()), int(t.max())
            raise ValueError(f"{op}: class indices must lie in [0, C)=[0, {C}) for "
                             f"logits.shape={z.shape}; got labels from {low} to {high}")
    elif t.shape[1] != C:
        raise ValueError(f"{op}: one-hot labels have width {t.shape[1]} but the logits have "
                         f"C={C} classes; logits.shape={z.shape}, t.shape={t.shape}")
    elif t.dtype.kind not in "fiub":
        raise ValueError(f"{op}: one-hot labels must be numbers, got dtype {t.dtype}")


def _labels_out_of_range(t: np.ndarray, C: int) -> bool:
    """True when some integer label lies outside [0, C), in one pass over t.

    Seen as unsigned, a negative b-bit index is at least 2^(b−1), so when C ≤ 2^(b−1) the
    largest unsigned value is ≥ C exactly when some label is negative or too large. When
    C > 2^(b−1) (int8 labels for C > 128, int16 for C > 32768) no non-negative value of the
    dtype reaches C and only a negative label can be wrong: the minimum decides.
    """
    if t.dtype.kind == "i":
        if C > 1 << (8 * t.dtype.itemsize - 1):
            return int(np.minimum.reduce(t)) < 0
        t = t.view(t.dtype.str.replace("i", "u"))
    return int(np.maximum.reduce(t)) >= C


def _float_input(op: str, name: str, z: np.ndarray) -> np.ndarray:
    """z itself when it is floating point; integers and bools promoted to float as the dtype
    policy says (never truncated); anything else (complex, strings, ...) a TypeError naming
    the op."""
    if z.dtype.kind == "f":
        return z
    if z.dtype.kind in "iub":
        return z.astype(_float_dtype(z.dtype))
    raise TypeError(f"{op}: {name} must be real numbers, got dtype {z.dtype} "
                    f"(shape {z.shape})")


class SoftmaxCrossEntropy(Function):
    """Softmax cross-entropy, averaged over the batch (the textbook's SoftmaxWithLoss, fused).

    Forward: L = −(1/N) Σ_n Σ_c t[n, c] · log softmax(z[n])_c, with log softmax computed as
    (z − m) − log Σ exp(z − m) (never log of softmax): finite at logits of ±1e4. Class indices
    t (N,) stand for one-hot rows. Each row's loss is formed as Σ_c t_c (m − z_c) + (Σ_c t_c)
    · log Σ exp(z − m), the log sum as log1p(r) where the label is a maximum (for label
    rows, in every row), r the sum without that maximum's 1 (``_log_sums``): accurate in
    relative terms for a confident row too, whose loss log(1 + r) ≈ r a log of the rounded
    sum would get only to about ε/r.

    Backward: dL/dz = (softmax(z) − t) · dL/dL₀ / N for one-hot t (or indices);
    for any label rows, (softmax(z) · Σ_c t[n, c] − t) · dL/dL₀ / N. The labels get None.
    Rows of more than 64 classes keep e = exp(z − m) and its row sums from forward, and
    softmax(z) = e / Σ e is one division in backward instead of exp(log softmax) (NumPy's
    exp is most of the op: 0.34 of 0.58 ms forward at (256, 1000)); with class indices the
    forward pass forms log softmax at the N labels only, the same values as before.

    Shapes: z (N, C); t (N,) integer class indices, or (N, C) one-hot (any rows of weights,
    e.g. probabilities, are accepted) → a 0-d loss of z's dtype. Smooth: no kinks.
    Saved: e and Σ e (rows of more than 64), else log softmax(z) (N, C); and the labels.
    """

    def forward(self, z, t):
        z, t = np.asarray(z), np.asarray(t)
        if z.dtype.kind != "f":
            z = _float_input("softmax_cross_entropy", "logits", z)
        _check_labels(z, t)
        N = z.shape[0]
        if t.ndim != 1:
            t = t.astype(z.dtype, copy=False)   # float64 one-hot must not upcast float32 logits
        self.t, self.e = t, None
        if _short_rows(z, 1):                   # worked on transposed, (C, N), as _log_softmax
            st = np.array(z.T, order="C")
            st -= np.maximum.reduce(st, axis=0)
            e = np.exp(st)
            # log Σ e = log1p(Σ e without a maximum's 1), in every row (see _log_sums)
            e[st.argmax(axis=0), np.arange(N)] = 0
            log_total = np.log1p(np.add.reduce(e, axis=0))
            losses = _row_losses(st.T, log_total, t)
            st -= log_total
            self.logp = st.T                    # log softmax(z)
        else:
            s = z - _max_along(z, 1)
            self.e = e = np.exp(s)
            log_total, total = _log_sums(s, e, t if t.ndim == 1 else s.argmax(axis=1))
            self.total = total[:, None]
            losses = _row_losses(s, log_total, t)
        return np.asarray(losses.sum() / N, dtype=z.dtype)

    def backward(self, dy):
        t = self.t
        N = t.shape[0]
        if self.e is not None:
            dz = np.divide(self.e, self.total)  # softmax(z), a fresh array to work in
        else:
            dz = np.exp(self.logp, order="C")
        if t.ndim == 1:
            dz[np.arange(N), t] -= 1
        else:
            dz *= t.sum(axis=1, keepdims=True)
            dz -= t
        dz *= dy / N
        return dz, None

    def backward_graph(self, dy):
        if not self.needs_input_grad[0]:
            return None, None
        t = self.t
        N = t.shape[0]
        p = LogSoftmax(axis=1)(self.inputs[0]).exp()       # softmax(z), recorded
        if t.ndim == 1:
            onehot = np.zeros(p.shape, p.dtype)
            onehot[np.arange(N), t] = 1
            dz = p - onehot
        else:
            dz = p * t.sum(axis=1, keepdims=True) - t
        return dz * (dy / N), None

# ------------------------------------------------------------------ losses with options
# The ops below take PyTorch's ``reduction`` ('mean' | 'sum' | 'none'). Per-element losses lᵢ
# are reduced to L = Σ lᵢ / D ('mean', D the number of elements, or the total weight of the
# counted labels for the class losses), L = Σ lᵢ ('sum'), or returned as they are ('none');
# the gradient of each lᵢ is then scaled by dL/dL / D, dL/dL, or dL/dlᵢ.
#
# Each has ``backward_graph`` too: the same gradient as recorded ops on dL/dL, the inputs and the
# output, so second and higher derivatives follow (Hessians of a loss, Newton steps). Labels,
# weights, masks and ignored labels enter as constants, exactly as in ``backward``.

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(op: str, reduction) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _reduce(losses: np.ndarray, reduction: str, count) -> np.ndarray:
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return np.asarray(total, dtype=losses.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):   # nothing counted: nan, as PyTorch
        return np.asarray(total / count, dtype=losses.dtype)


def _upstream(dy: np.ndarray, reduction: str, count) -> np.ndarray:
    """dL/dlᵢ: dy itself ('none'), or the scalar dy ('sum') or dy / count ('mean')."""
    if reduction == "mean":
        return dy / dy.dtype.type(count)
    return dy


def _graph_operands(fn: Function, dtype) -> list:
    """fn's inputs for its recorded gradient: Tensors as they are, arrays (inputs that need no
    gradient) in the loss's float ``dtype``, as ``forward`` saw them."""
    return [x if isinstance(x, Tensor) else np.asarray(x).astype(dtype, copy=False)
            for x in fn.inputs]


def _pair(op: str, y: np.ndarray, t: np.ndarray, names=("input", "target")):
    """y and t as arrays of one float dtype (y's when float), with equal shapes."""
    y, t = np.asarray(y), np.asarray(t)
    if y.shape != t.shape:
        raise ValueError(f"{op}: {names[0]} and {names[1]} must have the same shape; "
                         f"{names[0]}.shape={y.shape}, {names[1]}.shape={t.shape}")
    y = _float_input(op, names[0], y)
    t = _float_input(op, names[1], t).astype(y.dtype, copy=False)
    return y, t


class MSELoss(Function):
    """Mean squared error: lᵢ = (yᵢ − tᵢ)², reduced by ``reduction``.

    dL/dy = 2 (y − t) · g    dL/dt = −2 (y − t) · g    (g = dL/dlᵢ: dL/dL / n for 'mean')
    d²L/dy² = d²L/dt² = −d²L/dy dt = 2g (elementwise); recorded: the same products.

    Shapes: y and t equal (no broadcasting) → 0-d, or y's shape for 'none'. Smooth.
    Saved: y − t.
    """

    float_inputs = True

    def __init__(self, reduction="mean"):
        self.reduction = check_reduction("mse_loss", reduction)

    def forward(self, y, t):
        y, t = _pair("mse_loss", y, t)
        self.d = y - t
        return _reduce(self.d * self.d, self.reduction, y.size)

    def backward(self, dy):
        g = 2 * self.d * _upstream(dy, self.reduction, self.d.size)
        need_y, need_t = self.needs_input_grad
        return (g if need_y else None), (-g if need_t else None)

    def backward_graph(self, dy):
        y, t = _graph_operands(self, dy.dtype)
        g = 2 * Sub()(y, t) * _upstream(dy, self.reduction, self.d.size)
        need_y, need_t = self.needs_input_grad
        return (g if need_y else None), (-g if need_t else None)


class L1Loss(Function):
    """Mean absolute error: lᵢ = |yᵢ − tᵢ|, reduced by ``reduction``.

    dL/dy = sign(y − t) · g    dL/dt = −sign(y − t) · g; at y = t the gradient is 0 (as in
    PyTorch). Piecewise linear: the second derivatives in y and t are 0 off y = t; recorded,
    the gradient is g times the same constant signs. Shapes: as MSELoss. Saved: sign(y − t).
    """

    float_inputs = True

    def __init__(self, reduction="mean"):
        self.reduction = check_reduction("l1_loss", reduction)

    def forward(self, y, t):
        y, t = _pair("l1_loss", y, t)
        d = y - t
        self.sign = np.sign(d)
        return _reduce(np.abs(d), self.reduction, y.size)

    def backward(self, dy):
        g = self.sign * _upstream(dy, self.reduction, self.sign.size)
        need_y, need_t = self.needs_input_grad
        return (g if need_y else None), (-g if need_t else None)

    def backward_graph(self, dy):
        g = Mul()(self.sign, _upstream(dy, self.reduction, self.sign.size))
        need_y, need_t = self.needs_input_grad
        return (g if need_y else None), (-g if need_t else None)


# PyTorch's floor of p (1 − p) in the gradient: 1e-12 as a float32 constant.
_BCE_EPS = float(np.float32(1e-12))


class BinaryCrossEntropy(Function):
    """Binary cross-entropy of probabilities: lᵢ = −wᵢ·(tᵢ·log pᵢ + (1 − tᵢ)·log(1 − pᵢ)),
    w = ``weight`` (1 unless given; an array that broadcasts against p).

    As in PyTorch each log is clamped at −100 (so p = 0 or 1 gives a finite loss), with
    log(1 − p) computed as log1p(−p).

    dL/dp = w · (p − t) / max(p (1 − p), 1e-12) · g    dL/dt = w · (log(1 − p) − log p) · g
    (the clamped logs). Recorded: the same formulas, so
    d²L/dp² = w · (p² − 2pt + t) / (p (1 − p))² · g (where p (1 − p) > 1e-12),
    d²L/dp dt = −w · g / (p (1 − p)), d²L/dt² = 0; a log clamped at −100 is a constant there.
    Shapes: p and t equal, every value in [0, 1] (else a ValueError).
    Saved: p, t and the clamped logs.
    """

    float_inputs = True

    def __init__(self, reduction="mean", weight=None):
        self.reduction = check_reduction("binary_cross_entropy", reduction)
        self.weight = weight

    def forward(self, p, t):
        op = "binary_cross_entropy"
        p, t = _pair(op, p, t)
        for name, a in (("input", p), ("target", t)):
            inside = (a >= 0) & (a <= 1)
            if not inside.all():
                bad = a[~inside]
                raise ValueError(f"{op}: every {name} value must be a probability in [0, 1]; "
                                 f"got {bad.size} outside (e.g. {float(bad.flat[0])!r}) in "
                                 f"{name}.shape={a.shape}" + (
                                     "; for scores use binary_cross_entropy_with_logits"
                                     if name == "input" else ""))
        with np.errstate(divide="ignore"):
            self.log_p = np.maximum(np.log(p), p.dtype.type(-100))
            self.log_q = np.maximum(np.log1p(-p), p.dtype.type(-100))
        self.p, self.t = p, t
        self.w = _constant(op, "weight", self.weight, p)
        losses = -(t * self.log_p + (1 - t) * self.log_q)
        if self.w is not None:
            losses = losses * self.w
        return _reduce(losses, self.reduction, p.size)

    def backward(self, dy):
        g = _upstream(dy, self.reduction, self.p.size)
        if self.w is not None:
            g = g * self.w
        need_p, need_t = self.needs_input_grad
        p, t = self.p, self.t
        dp = (p - t) / np.maximum(p * (1 - p), p.dtype.type(_BCE_EPS)) * g if need_p else None
        dt = (self.log_q - self.log_p) * g if need_t else None
        return _fit(dp, p.shape), _fit(dt, p.shape)

    def backward_graph(self, dy):
        g = _upstream(dy, self.reduction, self.p.size)
        if self.w is not None:
            g = g * self.w
        need_p, need_t = self.needs_input_grad
        p, t = _graph_operands(self, dy.dtype)
        dp = dt = None
        if need_p:
            floor = np.asarray(_BCE_EPS, dy.dtype)
            dp = Sub()(p, t) / Maximum()(p * (1 - p), floor) * g
        if need_t:
            if isinstance(p, Tensor):
                dt = (_clamped_log(1 - p, self.log_q) - _clamped_log(p, self.log_p)) * g
            else:
                dt = Mul()(self.log_q - self.log_p, g)
        return _fit_graph(dp, self.p.shape), _fit_graph(dt, self.p.shape)


def _clamped_log(x: Tensor, saved: np.ndarray) -> Tensor:
    """max(log x, −100) recorded, with the clamp of ``saved`` (the forward's clamped log) as a
    constant mask: log of x where it was not clamped, −100 (no gradient) where it was. x is
    replaced by 1 at the clamped places before the log, so no log(0) enters the tape."""
    kept = saved > -100
    one, floor = np.ones((), x.dtype), np.asarray(-100, x.dtype)
    if kept.all():
        return x.log()
    return Where()(kept, Where()(kept, x, one).log(), floor)


class BinaryCrossEntropyWithLogits(Function):
    """Binary cross-entropy of sigmoid(z), fused:
    lᵢ = −wᵢ · (p_w · t·log σ(z) + (1 − t)·log(1 − σ(z))), w = ``weight``, p_w = ``pos_weight``
    (both 1 unless given; arrays broadcast against z, as PyTorch's).

    With c = 1 + (p_w − 1)·t and softplus(−z) = max(−z, 0) + log1p(e^{−|z|}) this is
    lᵢ = w · ((1 − t)·z + c · softplus(−z)), which never overflows and never takes the log of
    an underflowed 0: finite and exact at logits of ±1e4. softplus(−z) is Softplus's fast
    formulation (log1p(e) = e · log(v)/(v − 1), v = 1 + e; no ``np.log1p``), which leaves
    e = e^{−|z|} behind; σ(z) in backward is max(e, 1[z ≥ 0]) / (1 + e) from it, as in
    Sigmoid (no second exp, no ``np.logaddexp``); both on runs in the cache.

    dL/dz = w · (c · σ(z) − p_w · t) · g    dL/dt = w · ((p_w − 1) · softplus(−z) − z) · g
    (with no pos_weight: (σ(z) − t) · w · g and −z · w · g). Recorded: the same formulas with
    Sigmoid and Softplus ops, so d²L/dz² = w · c · σ(z)(1 − σ(z)) · g,
    d²L/dz dt = w · ((p_w − 1) σ(z) − p_w) · g, d²L/dt² = 0.

    Shapes: z and t equal (t in [0, 1], not checked: soft targets beyond it are allowed as in
    PyTorch). Smooth. Saved: z, t, softplus(−z), e^{−|z|}. The composed version
    ``binary_cross_entropy(sigmoid(z), t)`` is its test oracle where the logs are not clamped.
    """

    float_inputs = True

    def __init__(self, reduction="mean", weight=None, pos_weight=None):
        self.reduction = check_reduction("binary_cross_entropy_with_logits", reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, z, t):
        op = "binary_cross_entropy_with_logits"
        z, t = _pair(op, z, t)
        self.w = _constant(op, "weight", self.weight, z)
        self.pw = _constant(op, "pos_weight", self.pos_weight, z)
        self.z, self.t = z, t
        self.sp, self.e = empty_like(z), empty_like(z)      # softplus(−z) = −log σ(z), e^{−|z|}
        elementwise(_SOFTPLUS, self.sp, self.e, np.negative(z))
        if self.pw is None:
            losses = np.subtract(1, t)
            losses *= z
            losses += self.sp
        else:
            losses = (1 - t) * z + (1 + (self.pw - 1) * t) * self.sp
        if self.w is not None:
            losses = losses * self.w
        return _reduce(losses, self.reduction, z.size)

    def backward(self, dy):
        g = _upstream(dy, self.reduction, self.z.size)
        if self.w is not None:
            g = g * self.w
        need_z, need_t = self.needs_input_grad
        z, t, pw = self.z, self.t, self.pw
        dz = dt = None
        if need_z:
            sigma = elementwise(_SIGMA_FROM, empty_like(z), z, self.e)
            if pw is None:
                sigma -= t
                dz = sigma * g if np.result_type(sigma, g) != sigma.dtype else _scale(sigma, g)
            else:
                dz = ((1 + (pw - 1) * t) * sigma - pw * t) * g
        if need_t:
            dt = (-z if pw is None else (pw - 1) * self.sp - z) * g
        return _fit(dz, z.shape), _fit(dt, z.shape)

    def backward_graph(self, dy):
        g = _upstream(dy, self.reduction, self.z.size)
        if self.w is not None:
            g = g * self.w
        need_z, need_t = self.needs_input_grad
        z, t = _graph_operands(self, dy.dtype)
        pw = self.pw
        dz = dt = None
        if need_z:
            sigma = Sigmoid()(z)
            if pw is None:
                dz = Sub()(sigma, t) * g
            else:
                c = 1 + Mul()(pw - 1, t)
                dz = Sub()(c * sigma, Mul()(pw, t)) * g
        if need_t:
            if pw is None:
                dt = Mul()(-z, g)
            else:
                # softplus(−z) exactly as forward's (no switch to the linear branch)
                sp = Softplus(threshold=np.inf)(-z) if isinstance(z, Tensor) else self.sp
                dt = Mul()(Mul()(pw - 1, sp) - z, g)
        return _fit_graph(dz, self.z.shape), _fit_graph(dt, self.z.shape)


def _scale(a: np.ndarray, g) -> np.ndarray:
    """a · g in a's place when g broadcasts to a's shape, else a new product."""
    if np.ndim(g) == 0 or np.broadcast_shapes(np.shape(g), a.shape) == a.shape:
        a *= g
        return a
    return a * g


def _constant(op: str, name: str, value, z: np.ndarray):
    """An optional weight array in z's dtype that broadcasts to z's shape (no gradient)."""
    if value is None:
        return None
    w = np.asarray(value.data if isinstance(value, Tensor) else value)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{op}: {name} must be real numbers, got dtype {w.dtype}")
    try:
        fits = np.broadcast_shapes(w.shape, z.shape) == z.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: {name} of shape {w.shape} does not broadcast to the input's "
                         f"shape {z.shape}")
    return w.astype(z.dtype, copy=False)


def _fit(grad, shape):
    """A gradient broadcast to the input's full shape (weights may have fewer axes)."""
    return grad if grad is None or grad.shape == shape else np.broadcast_to(grad, shape)


def _fit_graph(grad, shape):
    """``_fit`` for recorded gradients."""
    return None if grad is None else broadcast_to(grad, shape)


def _class_layout(op: str, z: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """z (N, C, d1, …) as rows (N·d1·…, C), and the shape (N, d1, …) of the per-row losses."""
    if z.ndim < 2:
        raise ValueError(f"{op}: {name} must be (N, C) or (N, C, d1, ...), got "
                         f"{name}.shape={z.shape}")
    C = z.shape[1]
    if z.ndim == 2:
        return z, z.shape[:1]
    rows = np.moveaxis(z, 1, -1).reshape(-1, C)
    return rows, (z.shape[0], *z.shape[2:])


def _weight_vector(op: str, C: int, weight, dtype, z_shape) -> np.ndarray | None:
    """The per-class ``weight`` as C numbers of ``dtype`` (None when not given)."""
    if weight is None:
        return None
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if w.shape != (C,) or w.dtype.kind not in "fiu":
        raise ValueError(f"{op}: weight must be C={C} real numbers, one per class; got "
                         f"weight.shape={w.shape} (dtype {w.dtype}) for "
                         f"input.shape={z_shape}")
    return w.astype(dtype, copy=False)


def _index_weights(op: str, C: int, t: np.ndarray, w, ignore_index, dtype, z_shape):
    """Class indices t (N, d1, …) as (safe, valid, a): the labels flat (M,) with ignored ones
    replaced by 0, the mask of counted labels (None when all count), and each label's
    weight aᵢ = w[tᵢ] (1 without ``weight``; 0 for ignored labels)."""
    t = t.reshape(-1)
    valid = None if ignore_index is None else t != ignore_index
    if valid is not None and valid.all():
        valid = None
    tv = t if valid is None else t[valid]
    if tv.size and _labels_out_of_range(tv, C):
        extra = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
        raise ValueError(f"{op}: class indices must lie in [0, C)=[0, {C}){extra} for "
                         f"input.shape={z_shape}; got labels from {int(tv.min())} to "
                         f"{int(tv.max())}")
    safe = t if valid is None else np.where(valid, t, 0)
    a = np.ones(t.size, dtype) if w is None else w[safe]
    if valid is not None:
        a = a * valid
    return safe, valid, a


def _class_weights(op: str, C: int, t: np.ndarray, weight, ignore_index, label_smoothing,
                   dtype, allow_soft: bool, z_shape) -> tuple[np.ndarray, float]:
    """The label weights q (M, C) with lᵢ = −Σ_c q[i, c] · z[i, c], and the 'mean' divisor.

    Class indices tᵢ: q[i] = (1 − ε)·w[tᵢ]·onehot(tᵢ) + (ε/C)·w, zero for ignored labels;
    divisor Σ w[tᵢ] over counted labels (PyTorch's weighted mean). Soft labels (t like z):
    q[i] = w ⊙ ((1 − ε)·tᵢ + ε/C); divisor M (the number of rows).
    """
    w = _weight_vector(op, C, weight, dtype, z_shape)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must lie in [0, 1], got {label_smoothing}")
    index_shape = (z_shape[0], *z_shape[2:])
    eps = dtype.type(label_smoothing)
    if t.shape == index_shape and t.dtype.kind in "iu":
        safe, valid, a = _index_weights(op, C, t, w, ignore_index, dtype, z_shape)
        q = np.zeros((safe.size, C), dtype)
        q[np.arange(safe.size), safe] = (1 - eps) * a
        if label_smoothing:
            smooth = (eps / C) * (np.ones(C, dtype) if w is None else w)
            q += smooth if valid is None else valid[:, None] * smooth
        return q, float(a.sum())
    if allow_soft and t.shape == tuple(z_shape) and t.dtype.kind in "fiub":
        if ignore_index is not None:
            raise ValueError(f"{op}: ignore_index applies to class-index labels, not to soft "
                             f"labels of shape {t.shape}")
        tt = t.astype(dtype, copy=False)
        q = tt if tt.ndim == 2 else np.moveaxis(tt, 1, -1).reshape(-1, C)
        if label_smoothing:
            q = (1 - eps) * q + eps / C
        if w is not None:
            q = q * w
        return q, float(q.shape[0])
    if t.shape == index_shape:
        raise ValueError(f"{op}: labels of shape {t.shape} are class indices and must be "
                         f"integers, got dtype {t.dtype}")
    soft = f" or soft labels like the input {tuple(z_shape)}" if allow_soft else ""
    raise ValueError(f"{op}: labels must be class indices {index_shape}{soft}; got "
                     f"t.shape={t.shape} for input.shape={z_shape}")


class CrossEntropy(Function):
    """Softmax cross-entropy with PyTorch's options (``F.softmax_cross_entropy`` with any
    option set; the defaults run the fused SoftmaxCrossEntropy above).

    Forward: with log softmax over the class axis 1 (computed stably, as above),
    lᵢ = −Σ_c q[i, c] · log softmax(z)[i, c], q the label weights of ``_class_weights``
    (per-class ``weight``, ``label_smoothing`` ε, ``ignore_index``), then ``reduction``.

    Backward: dL/dz[i] = (softmax(z[i]) · Σ_c q[i, c] − q[i]) · gᵢ, gᵢ = dL/dlᵢ. The labels
    get None. Recorded: the same with softmax = exp(log_softmax(z)) along axis 1 (no moving
    of axes), so d²L/dz[i]² = (diag(s) − s sᵀ) · Σ_c q[i, c] · gᵢ, s = softmax(z[i]).

    Shapes: z (N, C) or (N, C, d1, …); t (N, d1, …) class indices or soft labels like z →
    0-d, or (N, d1, …) for 'none'. Smooth. Saved: q, and e = exp(z − m) with Σ e (rows of
    more than 64 classes: softmax = e / Σ e in backward, as SoftmaxCrossEntropy), else
    log softmax(z) as rows (M, C).
    """

    def __init__(self, reduction="mean", ignore_index=None, label_smoothing=0.0, weight=None):
        self.reduction = check_reduction("softmax_cross_entropy", reduction)
        self.ignore_index, self.label_smoothing = ignore_index, float(label_smoothing)
        self.weight = weight

    def forward(self, z, t):
        op = "softmax_cross_entropy"
        z, t = np.asarray(z), np.asarray(t)
        z = _float_input(op, "logits", z)
        rows, out_shape = _class_layout(op, z, "logits")
        if rows.shape[0] == 0 and self.reduction == "mean":
            raise ValueError(f"{op}: the batch is empty (logits.shape={z.shape}): the mean "
                             f"loss is undefined")
        self.q, self.count = _class_weights(op, z.shape[1], t, self.weight, self.ignore_index,
                                            self.label_smoothing, z.dtype, True, z.shape)
        if _short_rows(rows, 1):
            logp, self.e = _log_softmax(rows, axis=1), None
            self.logp = logp
        else:                                   # keep e and Σ e: softmax = e / Σ e later
            logp, self.e, self.total = _exp_parts(rows, 1)
            logp -= np.log(self.total)
        self.z_shape, self.out_shape = z.shape, out_shape
        losses = (self.q * -logp).sum(axis=1).reshape(out_shape)   # +0 where q is 0
        return _reduce(losses, self.reduction, self.count)

    def backward(self, dy):
        g = _upstream(dy, self.reduction, self.count)
        g = g.reshape(-1, 1) if self.reduction == "none" else g
        if self.e is not None:
            dz = np.divide(self.e, self.total)      # softmax(z), a fresh array
        else:
            dz = np.exp(self.logp)
        dz *= self.q.sum(axis=1, keepdims=True)
        dz -= self.q
        dz *= g
        return _rows_back(dz, self.z_shape), None

    def backward_graph(self, dy):
        if not self.needs_input_grad[0]:
            return None, None
        q = _rows_back(self.q, self.z_shape)
        p = LogSoftmax(axis=1)(self.inputs[0]).exp()
        g = _class_axis(_upstream(dy, self.reduction, self.count), self.reduction)
        return (p * q.sum(axis=1, keepdims=True) - q) * g, None


def _class_axis(g, reduction: str):
    """dL/dlᵢ (N, d1, …) for 'none' with a class axis inserted, (N, 1, d1, …), to broadcast
    against the input (N, C, d1, …); a 0-d g as it is."""
    if reduction != "none":
        return g
    return g.reshape((g.shape[0], 1, *g.shape[1:]))


def _rows_back(rows: np.ndarray, shape) -> np.ndarray:
    """Rows (M, C) back to the layout (N, C, d1, …) of ``_class_layout``."""
    if len(shape) == 2:
        return rows
    return np.moveaxis(rows.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


class NLLLoss(Function):
    """Negative log-likelihood of log-probabilities x: lᵢ = −w[tᵢ] · x[i, tᵢ], then
    ``reduction`` ('mean' divides by Σ w[tᵢ] over counted labels, as PyTorch).

    dL/dx[i, c] = −w[tᵢ] · 1[c = tᵢ] · gᵢ. Labels equal to ``ignore_index`` count for nothing.
    Linear in x: d²L/dx² = 0; recorded, the gradient is gᵢ times the constant −q, a function of
    dL/dL only. Shapes: x (N, C) or (N, C, d1, …); t (N, d1, …) class indices. Saved: the
    labels and their weights (M,); the label weights q (M, C), zero but at the labels, are
    made in backward. Forward reads the M picked log-probabilities only (as PyTorch), not
    q ⊙ x over all M·C places: the same values, 16 times faster at (256, 1000).
    """

    def __init__(self, reduction="mean", ignore_index=None, weight=None):
        self.reduction = check_reduction("nll_loss", reduction)
        self.ignore_index, self.weight = ignore_index, weight

    def forward(self, x, t):
        op = "nll_loss"
        x, t = np.asarray(x), np.asarray(t)
        x = _float_input(op, "input", x)
        rows, out_shape = _class_layout(op, x, "input")
        self.x_shape, C = x.shape, x.shape[1]
        if t.shape != (x.shape[0], *x.shape[2:]) or t.dtype.kind not in "iu":
            _class_weights(op, C, t, self.weight, self.ignore_index, 0.0, x.dtype, False,
                           x.shape)                 # raises the error that names the labels
        w = _weight_vector(op, C, self.weight, x.dtype, x.shape)
        self.safe, _, self.a = _index_weights(op, C, t, w, self.ignore_index, x.dtype,
                                              x.shape)
        self.count = float(self.a.sum())
        picked = rows[np.arange(self.safe.size), self.safe]
        # Only the counted places: a log-probability of −∞ elsewhere must not give 0 · ∞; + 0
        # as the sum over a row of q ⊙ x gives it (a −0 becomes +0).
        with np.errstate(invalid="ignore"):
            picked = np.where(self.a != 0, self.a * picked, x.dtype.type(0))
        picked += 0
        return _reduce(np.negative(picked).reshape(out_shape), self.reduction, self.count)

    def _q(self) -> np.ndarray:
        """The label weights q (M, C): aᵢ at (i, tᵢ), else 0."""
        q = np.zeros((self.safe.size, self.x_shape[1]), self.a.dtype)
        q[np.arange(self.safe.size), self.safe] = self.a
        return q

    def backward(self, dy):
        g = _upstream(dy, self.reduction, self.count)
        g = g.reshape(-1, 1) if self.reduction == "none" else g
        return _rows_back(-self._q() * g, self.x_shape), None

    def backward_graph(self, dy):
        if not self.needs_input_grad[0]:
            return None, None
        g = _class_axis(_upstream(dy, self.reduction, self.count), self.reduction)
        q = _rows_back(self._q(), self.x_shape)
        return _fit_graph(Mul()(-q, g), self.x_shape), None
