"""Winograd F(2×2, 3×3) convolution in NumPy, timed against minigrad's im2col and PyTorch.

The lever measured here: a 3×3 stride-1 convolution computed with Winograd's minimal filtering
algorithm F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2015) instead of im2col and one matrix product (``minigrad/ops/conv.py``).

The maths
---------
In one dimension F(2, 3) gives two outputs of a 3-tap correlation from four inputs d with four
multiplications instead of six: y = Aᵀ [(G g) ⊙ (Bᵀ d)], with

    Bᵀ = [[1,  0, −1,  0],     G = [[1,    0,   0  ],     Aᵀ = [[1, 1,  1,  0],
          [0,  1,  1,  0],          [1/2,  1/2, 1/2],           [0, 1, −1, −1]]
          [0, −1,  1,  0],          [1/2, −1/2, 1/2],
          [0,  1,  0, −1]]          [0,    0,   1  ]]

Nested, F(2×2, 3×3) turns a 4×4 input tile d and a 3×3 filter g into a 2×2 output tile:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A                     (16 multiplications instead of 36)

A convolution of x (N, C, H, W) with w (FN, C, 3, 3), zero padding P, has the output
(N, FN, OH, OW), OH = H + 2P − 2. Cover it with TH × TW output tiles of 2×2, TH = ⌈OH / 2⌉
(an odd OH gets one more row of tiles, which is cut off at the end); output tile (th, tw) reads
the 4×4 input tile at rows 2·th … 2·th + 3 and columns 2·tw … 2·tw + 3 of the zero-padded
input xp (input tiles overlap by two rows and columns). Write the transformed filter and tile as
16 components ξν (ξ, ν = 0 … 3):

    U[ξν, f, c]    = (G w[f, c] Gᵀ)[ξ, ν]                        filter transform  (16, FN, C)
    V[ξν, c, t]    = (Bᵀ d[c, t] B)[ξ, ν]    t = (n, th, tw)      input transform   (16, C, T)
    M[ξν, f, t]    = Σ_c U[ξν, f, c] · V[ξν, c, t]                16 matrix products (FN, C)·(C, T)
    y[n, f, 2th + a, 2tw + b] = (Aᵀ M[:, f, t] A)[a, b]           output transform

The sum over the channels is the only place with many multiplications, and it is 16 ordinary
matrix products, each one BLAS call over all tiles of a block of images. Per output pixel
they do 16·C·FN / 4 = 4·C·FN multiply-adds where im2col's product does 9·C·FN: 2.25× fewer.
The transforms cost additions only, but they read and write arrays 4× the size of the input
(V) and of the output (M): 16 values per tile against im2col's 9 per pixel, in memory.

A bias b[f] is added to the component ξν = (1, 1) of M: row 1 of Aᵀ and column 1 of A are all
ones, so it reaches each of the four outputs of the tile exactly once.

Gradients (dy = dL/dy):

- dL/dx is the convolution of dy, zero-padded by 2 − P, with the filters turned by 180° and
  their two channel axes swapped (``w[:, :, ::−1, ::−1]`` as (C, FN, 3, 3)): the same
  Winograd convolution (so P ≤ 2).
- dL/dw follows from the adjoint of each linear step: with dM[ξν, f, t] = (A dy_t Aᵀ)[ξ, ν] for
  the 2×2 tile dy_t of dy (zero beyond OH, OW),

      dU[ξν] = Σ_t dM[ξν, :, t] · V[ξν, :, t]ᵀ    (16 products (FN, T)·(T, C))
      dw[f, c] = Gᵀ dU[:, f, c] G                  (as a 4×4 matrix over ξ, ν)

  again 16 products with 2.25× fewer multiply-adds than im2col's dy·colᵀ. V is either kept
  by the forward pass (``v_keep``; 4·C·H·W values per image) or recomputed block by block.
- dL/db = Σ_{n, oh, ow} dy.

How it is laid out for NumPy
----------------------------
Channels last, as minigrad's own convolutions from 16 channels on: the images are read as NHWC
memory (any layout is accepted; NCHW input costs a transposing copy) and y is returned as the
(N, FN, OH, OW) view of NHWC memory. Both transforms are one small matrix product each over a
gathered tile array, a block of images at a time: the 4×4 input tiles of the block are copied
from a strided view of the padded block into D (16, n·TH·TW·C), component-major, whose inner
runs are the C channels of a pixel, and V = (Bᵀ ⊗ Bᵀ) · D with the Kronecker product (16, 16);
the 16 channel products are V[ξν] (n·TH·TW, C) · U[ξν]ᵀ (C, FN); the four output components
are (Aᵀ ⊗ Aᵀ) · M, a (4, 16) matrix times M (16, n·TH·TW·FN), copied into y with runs of FN.
Tried and dropped (see benchmarks/README.md): the same in NCHW memory (tiles (16, C, n·TH·TW),
whose gather runs only TW = 4–14 values: 1.3–2× slower); the input transform as slice
additions (two passes of 4 strided additions for Bᵀ d B), in blocks 1.1–1.4× slower on most
layers; the whole batch at once instead of blocks of images, 1.7–3× slower (V and M of the
whole batch are 20 MB each on DeepConvNet's second layer and no longer fit in the cache); the
input split into parity planes so that each tile component is one contiguous slice, no faster.

Blocks: ``block_images(...)`` takes as many images as keep D, V and M of a block within
``BLOCK_BYTES``; the buffers are made once per call and reused from block to block.

The benchmark
-------------
For each 3×3 convolution of the textbook's DeepConvNet at batch 100, float32 (``LAYERS``), it
times in one process, interleaved (each repeat runs every variant once, the order rotating),
CPU time (``time.process_time``):

- forward: minigrad's ``functional.conv2d`` under ``no_grad``, this Winograd, and
  ``torch.nn.functional.conv2d`` under ``torch.no_grad``;
- dL/dx alone and dL/dw with dL/db alone (minigrad and torch: backward of a graph whose other
  inputs need no gradient; the forward pass is run untimed before each sample);
- a training step of the layer: forward with the graph, then backward with a fixed dy, with
  dL/dx only where the network needs it (not for conv1, whose input is the images); for
  Winograd with V kept by the forward pass ("winograd") and recomputed ("winograd-recompute").

minigrad and Winograd get x and dy in the memory layouts minigrad's DeepConvNet gives each
layer (``minigrad_memory``: channels last after a convolution that ran channels last); torch
gets NCHW. It reports medians, the ratios Winograd / minigrad and Winograd / torch, and the
sums over the six layers. It also measures the float32 error of the three against a float64 direct
convolution (``direct_conv2d``, a sum over the nine filter taps): max |error| / max |exact|
and the relative RMS ‖error‖₂ / ‖exact‖₂, for y, dL/dx and dL/dw, on random normal inputs
with He-initialised weights and on the activations that 100 MNIST test images produce at each
layer's input of a He-initialised DeepConvNet (computed in float64).

Threads: run it with the BLAS thread variables set, as NumPy reads them when it loads::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 \\
        python benchmarks/bench_winograd.py --threads 1 --repeats 41 --json winograd.json
    python benchmarks/bench_winograd.py --layers conv2,conv6 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout of minigrad

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
# Component ξν of a transformed tile is entry 4ξ + ν of the flattened 4×4 matrix, so
# Bᵀ d B flattened is kron(Bᵀ, Bᵀ) · d flattened, and Aᵀ m A is kron(Aᵀ, Aᵀ) · m.
BB = np.kron(BT, BT)        # (16, 16)
AA = np.kron(AT, AT)        # (4, 16)
BIAS_COMPONENT = 4 * 1 + 1  # ξν = (1, 1): Aᵀ[:, 1] = (1, 1), so it reaches all four outputs

BLOCK_BYTES = 1 << 19        # 512 KiB: the fastest of 256 KiB … 4 MiB on every layer but conv1
DW_TILES = 512               # at least this many tiles per block of dL/dw

# DeepConvNet's six 3×3 stride-1 convolutions at batch 100: name → (C, FN, H, padding);
# the input is square, H × H.
LAYERS = {
    "conv1": (1, 16, 28, 1),
    "conv2": (16, 16, 28, 1),
    "conv3": (16, 32, 14, 1),
    "conv4": (32, 32, 14, 2),
    "conv5": (32, 64, 8, 1),
    "conv6": (64, 64, 8, 1),
}
BATCH = 100


# ------------------------------------------------------------------------- the convolution


def _check(op: str, x_shape, w_shape, padding: int) -> None:
    if len(x_shape) != 4:
        raise ValueError(f"{op}: input must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    if len(w_shape) != 4 or tuple(w_shape[2:]) != (3, 3):
        raise ValueError(f"{op}: F(2×2, 3×3) needs a weight (FN, C, 3, 3), got "
                         f"{tuple(w_shape)}")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"{op}: input has {x_shape[1]} channels but weight (FN, C, 3, 3)="
                         f"{tuple(w_shape)} expects {w_shape[1]}; x.shape={tuple(x_shape)}")
    if not 0 <= padding <= 2:
        raise ValueError(f"{op}: padding must be 0, 1 or 2 (dL/dx pads dy by 2 − padding), "
                         f"got {padding}")
    if min(x_shape[2:]) + 2 * padding < 3:
        raise ValueError(f"{op}: the 3×3 kernel is larger than the padded input; "
                         f"x.shape={tuple(x_shape)}, padding={padding}")


def tiles(H: int, W: int, padding: int) -> tuple[int, int, int, int]:  # noqa: N803
    """(OH, OW, TH, TW): the output size and the number of 2×2 output tiles that cover it.

    >>> tiles(28, 28, 1), tiles(14, 14, 2), tiles(5, 4, 0)
    ((28, 28, 14, 14), (16, 16, 8, 8), (3, 2, 2, 1))
    """
    OH, OW = H + 2 * padding - 2, W + 2 * padding - 2
    return OH, OW, (OH + 1) // 2, (OW + 1) // 2


def block_images(N: int, C: int, FN: int, TH: int, TW: int, itemsize: int,  # noqa: N803
                 block_bytes: int = BLOCK_BYTES) -> int:
    """Images per block: as many as keep one block's D, V (16·C values per tile) and M (16·FN)
    within ``block_bytes``; at least one."""
    per_image = (2 * 16 * C + 16 * FN) * TH * TW * itemsize
    return max(1, min(N, block_bytes // per_image))


def filter_transform(w: np.ndarray) -> np.ndarray:
    """U (16, FN, C): U[4ξ + ν, f, c] = (G w[f, c] Gᵀ)[ξ, ν], in w's dtype (computed in
    float64: it is small)."""
    FN, C = w.shape[:2]
    u = np.einsum("ai,fcij,bj->abfc", G, w.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(16, FN, C), dtype=w.dtype)


class _InputTiles:
    """V = Bᵀ d B for every 4×4 input tile of a block of images, channels last, into buffers
    kept for the next block: ``xp`` (n, 2·TH + 2, 2·TW + 2, C) whose zero border is written
    once, the gathered tiles D (16, n, TH, TW, C) and V (16, n·TH·TW·C)."""

    def __init__(self, n: int, C: int, H: int, W: int, padding: int,  # noqa: N803
                 TH: int, TW: int, dtype) -> None:  # noqa: N803
        self.P, self.H, self.W = padding, H, W
        self.xp = np.zeros((n, 2 * TH + 2, 2 * TW + 2, C), dtype=dtype)
        sN, sH, sW, sC = self.xp.strides
        # view[ξ, ν, n, th, tw, c] = xp[n, 2·th + ξ, 2·tw + ν, c]
        self.view = as_strided(self.xp, (4, 4, n, TH, TW, C),
                               (sH, sW, sN, 2 * sH, 2 * sW, sC), writeable=False)
        self.d = np.empty((16, n, TH, TW, C), dtype=dtype)
        self.v = np.empty((16, n * TH * TW * C), dtype=dtype)
        self.bb = BB.astype(dtype)

    def __call__(self, x_block: np.ndarray) -> np.ndarray:
        """V (16, n·TH·TW, C) of the images x_block (n', C, H, W), n' ≤ n (the rest zero)."""
        n = x_block.shape[0]
        P, H, W = self.P, self.H, self.W
        self.xp[:n, P:P + H, P:P + W] = x_block.transpose(0, 2, 3, 1)
        if n < self.xp.shape[0]:
            self.xp[n:] = 0
        np.copyto(self.d.reshape(4, 4, *self.d.shape[1:]), self.view)
        np.matmul(self.bb, self.d.reshape(16, -1), out=self.v)
        return self.v.reshape(16, -1, self.d.shape[-1])


def kept_tiles_shape(x_shape, padding: int) -> tuple[int, int, int]:
    """The shape (16, N·TH·TW, C) of the V that :func:`winograd_conv2d` keeps for
    :func:`winograd_conv2d_dw` when given ``v_keep`` (as im2col keeps col).

    >>> kept_tiles_shape((100, 16, 28, 28), 1)
    (16, 19600, 16)
    """
    N, C, H, W = x_shape
    _, _, TH, TW = tiles(H, W, padding)
    return 16, N * TH * TW, C


def _check_kept(op: str, v, x_shape, padding: int, dtype) -> None:
    expected = kept_tiles_shape(x_shape, padding)
    if v is not None and (v.shape != expected or v.dtype != dtype):
        raise ValueError(f"{op}: the kept V must be {expected} of {np.dtype(dtype)} for "
                         f"x.shape={tuple(x_shape)}, padding={padding}; got {v.shape} of "
                         f"{v.dtype}")


def winograd_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                    padding: int = 1, block_bytes: int = BLOCK_BYTES,
                    v_keep: np.ndarray | None = None) -> np.ndarray:
    """y = conv2d(x, w, b, stride 1, padding) by Winograd F(2×2, 3×3) (see the module docstring).

    Args:
        x: images (N, C, H, W), best as a view of NHWC memory.
        w: filters (FN, C, 3, 3).
        b: bias (FN,) or None.
        padding: zeros on each side, 0, 1 or 2.
        block_bytes: the size of one block's tile arrays (``block_images``).
        v_keep: None, or an array of ``kept_tiles_shape`` in y's dtype that receives V,
            V[ξν, (n·TH + th)·TW + tw, c], for :func:`winograd_conv2d_dw`.

    Returns:
        y (N, FN, H + 2·padding − 2, W + 2·padding − 2), of x's and w's result dtype, a view
        of NHWC memory.

    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> winograd_conv2d(x, np.ones((1, 1, 3, 3)), padding=0)[0, 0]
    array([[45., 54.],
           [81., 90.]])
    """
    x, w = np.asarray(x), np.asarray(w)
    _check("winograd_conv2d", x.shape, w.shape, padding)
    dtype = np.result_type(x, w)
    N, C, H, W = x.shape
    FN = w.shape[0]
    OH, OW, TH, TW = tiles(H, W, padding)
    n = block_images(N, C, FN, TH, TW, dtype.itemsize, block_bytes)
    _check_kept("winograd_conv2d", v_keep, x.shape, padding, dtype)
    T = TH * TW
    u_t = np.ascontiguousarray(filter_transform(w.astype(dtype, copy=False)).transpose(0, 2, 1))
    tiles_of = _InputTiles(n, C, H, W, padding, TH, TW, dtype)
    m = np.empty((16, n * T, FN), dtype=dtype)
    yt = np.empty((4, n * T * FN), dtype=dtype)
    aa = AA.astype(dtype)
    y = np.empty((N, 2 * TH, 2 * TW, FN), dtype=dtype)      # NHWC
    for s in range(0, N, n):
        e = min(N, s + n)
        v = tiles_of(x[s:e])                                   # (16, n·TH·TW, C)
        if v_keep is not None:
            np.copyto(v_keep[:, s * T:e * T], v[:, :(e - s) * T])
        if C == 1:      # NumPy's matmul does not hand an inner dimension of 1 to BLAS
            np.multiply(v, u_t, out=m)
        else:
            np.matmul(v, u_t, out=m)                           # 16 × (n·TH·TW, C)·(C, FN)
        if b is not None:
            m[BIAS_COMPONENT] += np.asarray(b, dtype=dtype)
        np.matmul(aa, m.reshape(16, -1), out=yt)               # (4, n·TH·TW·FN)
        # yt[2a + b', i, th, tw, f] goes to y[s + i, 2·th + a, 2·tw + b', f]
        out = y[s:e].reshape(e - s, TH, 2, TW, 2, FN).transpose(2, 4, 0, 1, 3, 5)
        np.copyto(out, yt.reshape(2, 2, n, TH, TW, FN)[:, :, :e - s])
    if (2 * TH, 2 * TW) != (OH, OW):
        y = np.ascontiguousarray(y[:, :OH, :OW])
    return y.transpose(0, 3, 1, 2)


def turned(w: np.ndarray) -> np.ndarray:
    """The filters of dL/dx: w turned by 180° with its channel axes swapped, (C, FN, 3, 3)."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def winograd_conv2d_dx(dy: np.ndarray, w: np.ndarray, padding: int = 1,
                       block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """dL/dx of :func:`winograd_conv2d`: the convolution of dy padded by 2 − padding with the
    turned filters, dx (N, C, OH + 2 − 2·padding, ...) = (N, C, H, W)."""
    dy, w = np.asarray(dy), np.asarray(w)
    if np.ndim(dy) != 4 or np.ndim(w) != 4 or dy.shape[1] != w.shape[0]:
        raise ValueError(f"winograd_conv2d_dx: dy (N, FN, OH, OW) and w (FN, C, 3, 3) must "
                         f"agree in FN; got dy.shape={dy.shape}, w.shape={w.shape}")
    if not 0 <= padding <= 2:
        raise ValueError(f"winograd_conv2d_dx: padding must be 0, 1 or 2, got {padding}")
    return winograd_conv2d(dy, turned(w), padding=2 - padding, block_bytes=block_bytes)


def winograd_conv2d_dw(x: np.ndarray, dy: np.ndarray, padding: int = 1,
                       block_bytes: int = BLOCK_BYTES,
                       v_kept: np.ndarray | None = None, min_tiles: int = DW_TILES) -> np.ndarray:
    """dL/dw (FN, C, 3, 3) of :func:`winograd_conv2d`: dU[ξν] = Σ_t dM[ξν] · V[ξν]ᵀ with
    dM = A dy_t Aᵀ per 2×2 tile of dy, then dw[f, c] = Gᵀ dU[:, f, c] G.

    V is recomputed from x block by block (blocks as in the forward pass, so that V stays in
    the cache), or taken from ``v_kept``, the ``v_keep`` of the forward pass; a block then holds
    at least ``min_tiles`` tiles, since each block adds a (16, FN, C) product into dU, which
    must stay small beside the block's own work (on 8×8 images a block of the forward's size
    holds 32 tiles)."""
    x, dy = np.asarray(x), np.asarray(dy)
    N, C, H, W = x.shape
    OH, OW, TH, TW = tiles(H, W, padding)
    if np.ndim(dy) != 4 or dy.shape[0] != N or dy.shape[2:] != (OH, OW):
        raise ValueError(f"winograd_conv2d_dw: dy must be (N, FN, OH, OW)=({N}, FN, {OH}, "
                         f"{OW}) for x.shape={x.shape}, padding={padding}; got {dy.shape}")
    FN = dy.shape[1]
    _check("winograd_conv2d_dw", x.shape, (FN, C, 3, 3), padding)
    dtype = np.result_type(x, dy)
    _check_kept("winograd_conv2d_dw", v_kept, x.shape, padding, dtype)
    T = TH * TW
    n = block_images(N, C, FN, TH, TW, dtype.itemsize, block_bytes)
    if v_kept is not None:
        n = min(N, max(n, -(-min_tiles // T)))
    tiles_of = _InputTiles(n, C, H, W, padding, TH, TW, dtype) if v_kept is None else None
    dyp = np.zeros((n, 2 * TH, 2 * TW, FN), dtype=dtype)    # dy's tiles, zero beyond OH, OW
    s_n, s_h, s_w, s_f = dyp.strides
    # dy_tiles[a, b', i, th, tw, f] = dyp[i, 2·th + a, 2·tw + b', f]
    dy_tiles = as_strided(dyp, (2, 2, n, TH, TW, FN), (s_h, s_w, s_n, 2 * s_h, 2 * s_w, s_f),
                          writeable=False)
    dyt = np.empty((4, n, TH, TW, FN), dtype=dtype)
    dm = np.empty((16, n * T, FN), dtype=dtype)
    aa_t = np.ascontiguousarray(AA.T, dtype=dtype)         # (16, 4): the adjoint of Aᵀ m A
    du = np.zeros((16, FN, C), dtype=dtype)
    du_block = np.empty_like(du)
    for s in range(0, N, n):
        e = min(N, s + n)
        if v_kept is None:
            v = tiles_of(x[s:e])[:, :(e - s) * T]             # (16, n·TH·TW, C)
        else:
            v = v_kept[:, s * T:e * T]
        dyp[:e - s, :OH, :OW] = dy[s:e].transpose(0, 2, 3, 1)
        np.copyto(dyt.reshape(2, 2, n, TH, TW, FN), dy_tiles)
        np.matmul(aa_t, dyt.reshape(4, -1), out=dm.reshape(16, -1))
        np.matmul(dm[:, :(e - s) * T].transpose(0, 2, 1), v, out=du_block)
        du += du_block
    dw = np.einsum("ai,abfc,bj->fcij", G, du.reshape(4, 4, FN, C).astype(np.float64), G)
    return dw.astype(dtype)


# ----------------------------------------------------------------------- the exact reference


def direct_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None,
                  padding: int = 1) -> np.ndarray:
    """The plain definition, y[n, f, h, v] = Σ_{c,i,j} w[f, c, i, j] · xp[n, c, h + i, v + j]
    (+ b[f]), as a sum over the filter taps, in float64."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    FN, C, FH, FW = w.shape
    P = padding
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    OH, OW = xp.shape[2] - FH + 1, xp.shape[3] - FW + 1
    y = np.zeros((x.shape[0], FN, OH, OW))
    for i in range(FH):
        for j in range(FW):
            y += np.einsum("nchw,fc->nfhw", xp[:, :, i:i + OH, j:j + OW], w[:, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64)[:, None, None]
    return y


def direct_conv2d_grads(x: np.ndarray, w: np.ndarray, dy: np.ndarray,
                        padding: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dx, dL/dw) of :func:`direct_conv2d` in float64, tap by tap:
    dxp[n, c, h + i, v + j] += Σ_f w[f, c, i, j] · dy[n, f, h, v] and
    dw[f, c, i, j] = Σ_{n,h,v} dy[n, f, h, v] · xp[n, c, h + i, v + j]."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    FN, C, FH, FW = w.shape
    P = padding
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    OH, OW = dy.shape[2:]
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(FH):
        for j in range(FW):
            dxp[:, :, i:i + OH, j:j + OW] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, xp[:, :, i:i + OH, j:j + OW])
    return dxp[:, :, P:P + x.shape[2], P:P + x.shape[3]], dw


# ---------------------------------------------------------------------------- the benchmark


def he_weights(rng: np.random.Generator, FN: int, C: int) -> np.ndarray:  # noqa: N803
    """He-normal filters (FN, C, 3, 3), std √(2 / (9·C)), float64."""
    return rng.standard_normal((FN, C, 3, 3)) * np.sqrt(2.0 / (9 * C))


def mnist_activations(names, n_images: int, seed: int) -> dict:
    """The input of each named layer of a He-initialised DeepConvNet (zero biases) for the
    first ``n_images`` MNIST test images, computed in float64 with :func:`direct_conv2d`, ReLU
    and 2×2 max pooling; with the weights of each layer: {name: (x, w)}."""
    from minigrad.data import load_mnist

    (_, _), (x_test, _) = load_mnist(subset=True)
    rng = np.random.default_rng(seed)
    x = x_test[:n_images].astype(np.float64)
    out = {}
    for i, (name, (C, FN, H, P)) in enumerate(LAYERS.items(), start=1):
        assert x.shape[1:] == (C, H, H), (name, x.shape)
        w = he_weights(rng, FN, C)
        if name in names:
            out[name] = (x, w)
        x = np.maximum(direct_conv2d(x, w, None, P), 0)
        if i % 2 == 0:
            N, F, OH, OW = x.shape
            x = x.reshape(N, F, OH // 2, 2, OW // 2, 2).max(axis=(3, 5))
    return out


def relative_errors(got, exact) -> dict:
    """max |got − exact| / max |exact| and ‖got − exact‖₂ / ‖exact‖₂."""
    err = np.asarray(got, np.float64) - exact
    return {"max": float(np.abs(err).max() / np.abs(exact).max()),
            "rms": float(np.linalg.norm(err) / np.linalg.norm(exact))}


def float32_errors(x, w, dy, P, torch=None) -> dict:  # noqa: N803
    """The float32 errors of y, dL/dx and dL/dw of Winograd, minigrad's im2col (and torch)
    against the float64 direct convolution of the same float32-rounded inputs."""
    import minigrad
    import minigrad.functional as F

    x32, w32, dy32 = (a.astype(np.float32) for a in (x, w, dy))
    y64 = direct_conv2d(x32, w32, None, P)
    dx64, dw64 = direct_conv2d_grads(x32, w32, dy32, P)
    got = {"winograd": (winograd_conv2d(x32, w32, None, P), winograd_conv2d_dx(dy32, w32, P),
                        winograd_conv2d_dw(x32, dy32, P))}
    xt, wt = minigrad.Tensor(x32, requires_grad=True), minigrad.Tensor(w32, requires_grad=True)
    y = F.conv2d(xt, wt, padding=P)
    y.backward(dy32)
    got["im2col"] = (y.data, xt.grad, wt.grad)
    if torch is not None:
        xt, wt = (torch.tensor(a, requires_grad=True) for a in (x32, w32))
        y = torch.nn.functional.conv2d(xt, wt, padding=P)
        y.backward(torch.from_numpy(dy32))
        got["torch"] = (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy())
    return {who: {part: relative_errors(a, exact)
                  for part, a, exact in zip(("y", "dx", "dw"), arrays, (y64, dx64, dw64))}
            for who, arrays in got.items()}


def nhwc_memory(a: np.ndarray) -> np.ndarray:
    """a (N, C, H, W) as a view of NHWC memory ("channels last"): same shape and values."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def minigrad_memory(name: str, x: np.ndarray, w: np.ndarray, dy: np.ndarray, padding: int):
    """x and dy in the memory layouts that minigrad's DeepConvNet gives this layer: x channels
    last when the convolution before it ran channels last (from ``Conv2d.channels_last_from``
    input channels; ReLU and pooling keep the layout), dy in the layout of the layer's own
    output. Returns (x, dy, "NCHW" or "NHWC" for x, the same for dy)."""
    import minigrad
    import minigrad.functional as F
    from minigrad.ops.conv import Conv2d

    names = list(LAYERS)
    i = names.index(name)
    first = getattr(Conv2d, "channels_last_from", None)
    x_layout = "NCHW"
    if i > 0 and first is not None and LAYERS[names[i - 1]][0] >= first:
        x, x_layout = nhwc_memory(x), "NHWC"
    with minigrad.no_grad():
        y = F.conv2d(x[:2], w, padding=padding).data
    if not y.flags.c_contiguous and y.transpose(0, 2, 3, 1).flags.c_contiguous:
        return x, nhwc_memory(dy), x_layout, "NHWC"
    return x, dy, x_layout, "NCHW"


def layer_samplers(name: str, rng: np.random.Generator, batch: int = BATCH,
                   torch=None) -> dict:
    """{(part, variant): function returning the CPU seconds of one sample} for one layer at
    ``batch`` images. Each function runs any untimed set-up (the forward pass before a backward)
    itself and times only its part."""
    import minigrad
    import minigrad.functional as F

    C, FN, H, P = LAYERS[name]
    N = batch
    OH, OW, _, _ = tiles(H, H, P)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = he_weights(rng, FN, C).astype(np.float32)
    b = (0.1 * rng.standard_normal(FN)).astype(np.float32)
    dy = rng.standard_normal((N, FN, OH, OW)).astype(np.float32)
    clock = time.process_time
    needs_dx = name != "conv1"        # the network's first layer: its input is the images
    x_mg, dy_mg, *layouts = minigrad_memory(name, x, w, dy, P)

    def mg(x_grad: bool, w_grad: bool, parts: str):
        def sample():
            xt = minigrad.Tensor(x_mg, requires_grad=x_grad)
            wt = minigrad.Tensor(w, requires_grad=w_grad)
            bt = minigrad.Tensor(b, requires_grad=w_grad)
            t0 = clock()
            if parts == "forward":
                with minigrad.no_grad():
                    F.conv2d(xt, wt, bt, padding=P)
                return clock() - t0
            y = F.conv2d(xt, wt, bt, padding=P)
            t1 = clock()
            y.backward(dy_mg)
            t2 = clock()
            return t2 - t0 if parts == "step" else t2 - t1
        return sample

    # Winograd gets the arrays minigrad gets. V of the forward pass is kept for dL/dw as
    # im2col keeps col: one buffer, reused from call to call as minigrad recycles its memory.
    kept = np.zeros(kept_tiles_shape(x.shape, P), dtype=np.float32)

    def wg(parts: str, keep: bool):
        def sample():
            if parts == "dw" and keep:
                winograd_conv2d(x_mg, w, b, P, v_keep=kept)  # untimed, as the others' forward
            t0 = clock()
            if parts in ("forward", "step"):
                winograd_conv2d(x_mg, w, b, P, v_keep=kept if keep and parts == "step" else None)
            if parts in ("dx", "step") and (parts == "dx" or needs_dx):
                winograd_conv2d_dx(dy_mg, w, P)
            if parts in ("dw", "step"):
                winograd_conv2d_dw(x_mg, dy_mg, P, v_kept=kept if keep else None)
                dy_mg.sum(axis=(0, 2, 3))
            return clock() - t0
        return sample

    samplers = {
        ("forward", "im2col"): mg(False, False, "forward"),
        ("forward", "winograd"): wg("forward", False),
        ("dx", "im2col"): mg(True, False, "backward"),
        ("dx", "winograd"): wg("dx", False),
        ("dw", "im2col"): mg(False, True, "backward"),
        ("dw", "winograd"): wg("dw", True),
        ("dw", "winograd-recompute"): wg("dw", False),
        ("step", "im2col"): mg(needs_dx, True, "step"),
        ("step", "winograd"): wg("step", True),
        ("step", "winograd-recompute"): wg("step", False),
    }
    if torch is not None:
        tf = torch.nn.functional
        xs, ws, bs, dys = (torch.from_numpy(a) for a in (x, w, b, dy))

        def th(x_grad: bool, w_grad: bool, parts: str):
            def sample():
                xt = xs.clone().requires_grad_(x_grad)
                wt, bt = ws.clone().requires_grad_(w_grad), bs.clone().requires_grad_(w_grad)
                t0 = clock()
                if parts == "forward":
                    with torch.no_grad():
                        tf.conv2d(xt, wt, bt, padding=P)
                    return clock() - t0
                y = tf.conv2d(xt, wt, bt, padding=P)
                t1 = clock()
                y.backward(dys)
                t2 = clock()
                return t2 - t0 if parts == "step" else t2 - t1
            return sample

        samplers.update({
            ("forward", "torch"): th(False, False, "forward"),
            ("dx", "torch"): th(True, False, "backward"),
            ("dw", "torch"): th(False, True, "backward"),
            ("step", "torch"): th(needs_dx, True, "step"),
        })
    return samplers


def measure(names, repeats: int, seed: int, batch: int = BATCH, torch=None) -> dict:
    """Medians (seconds) per layer, part and variant, of ``repeats`` interleaved samples: each
    repeat runs every sampler of every layer once, the order of the variants rotating."""
    rng = np.random.default_rng(seed)
    samplers = {name: layer_samplers(name, rng, batch, torch) for name in names}
    times = {name: {key: [] for key in s} for name, s in samplers.items()}
    for s in samplers.values():               # warm-up: first calls fault their memory in
        for f in s.values():
            f()
    for r in range(repeats):
        for name, s in samplers.items():
            keys = list(s)
            parts = sorted({k[0] for k in keys}, key=[k[0] for k in keys].index)
            for part in parts:
                who = [k for k in keys if k[0] == part]
                for k in who[r % len(who):] + who[:r % len(who)]:
                    times[name][k].append(s[k]())
    return {name: {f"{part}/{who}": statistics.median(v) for (part, who), v in t.items()}
            for name, t in times.items()}


def error_table(names, seed: int, batch: int = BATCH, torch=None, mnist: bool = True) -> dict:
    """{data: {layer: float32_errors}} on random normal inputs and, if MNIST loads, on MNIST
    activations; dy is random normal in both."""
    rng = np.random.default_rng(seed + 1)
    out = {"random": {}}
    for name in names:
        C, FN, H, P = LAYERS[name]
        x = rng.standard_normal((batch, C, H, H))
        w = he_weights(rng, FN, C)
        dy = rng.standard_normal((batch, FN, *tiles(H, H, P)[:2]))
        out["random"][name] = float32_errors(x, w, dy, P, torch)
    if mnist:
        try:
            acts = mnist_activations(names, batch, seed + 2)
        except (OSError, ValueError, RuntimeError) as e:   # no data: say so, keep the rest
            out["mnist_unavailable"] = str(e)
            return out
        out["mnist"] = {}
        for name, (x, w) in acts.items():
            C, FN, H, P = LAYERS[name]
            dy = rng.standard_normal((len(x), FN, *tiles(H, H, P)[:2]))
            out["mnist"][name] = float32_errors(x, w, dy, P, torch)
    return out


def format_times(times: dict, has_torch: bool) -> str:
    """The timing table in Markdown: ms per call and the ratios, per layer, summed over the
    layers, and summed with conv1 left to im2col ("sum, conv1 im2col")."""
    who = ["im2col", "winograd", "winograd-recompute"] + (["torch"] if has_torch else [])
    ratios = [("winograd", "im2col"), ("winograd-recompute", "im2col")]
    if has_torch:
        ratios += [("winograd", "torch"), ("im2col", "torch")]
    head = ("| layer | part | " + " | ".join(f"{w} ms" for w in who) + " | "
            + " | ".join(f"{a} / {b}" for a, b in ratios) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    parts = ["forward", "dx", "dw", "step"]

    def value(t, p, w):
        if f"{p}/{w}" in t:
            return t[f"{p}/{w}"]
        return t[f"{p}/winograd"] if w == "winograd-recompute" else None

    rows = [(name, {f"{p}/{w}": value(t, p, w) for p in parts for w in who})
            for name, t in times.items()]
    for label, im2col_first in (("sum", False), ("sum, conv1 im2col", True)):
        if len(rows) < 2 or (im2col_first and "conv1" not in times):
            continue
        total = {}
        for name, t in rows[:len(times)]:
            for p in parts:
                for w in who:
                    if name == "conv1" and p == "dx":
                        continue                     # the network needs no dx of conv1
                    source = "im2col" if im2col_first and name == "conv1" else w
                    source = w if w == "torch" else source
                    total[f"{p}/{w}"] = total.get(f"{p}/{w}", 0.0) + t[f"{p}/{source}"]
        rows.append((label, total))
    for name, t in rows:
        for p in parts:
            label = "dx (not in the net)" if name == "conv1" and p == "dx" else p
            if name.startswith("sum") and p == "dx" and "conv1" in times:
                label = "dx (conv2–6)"
            cells = [f"{t[f'{p}/{w}'] * 1e3:.2f}" if w != "winograd-recompute" or p in
                     ("dw", "step") else "–" for w in who]
            for a, b in ratios:
                shown = a != "winograd-recompute" or p in ("dw", "step")
                cells.append(f"{t[f'{p}/{a}'] / t[f'{p}/{b}']:.2f}" if shown else "–")
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("step = forward with the graph, then backward: dx (where the network needs it, "
                 "not for conv1), dw, db. winograd keeps V from the forward pass for dw, as "
                 "im2col keeps col; winograd-recompute computes it again in dw.")
    return "\n".join(lines)


def format_errors(errors: dict) -> str:
    """The float32 error table in Markdown: max |err| / max |exact| and relative RMS."""
    who = ("winograd", "im2col", "torch")
    lines = ["| data | layer | part | " + " | ".join(f"{w} max / rms" for w in who) + " |",
             "|---|---|---|---|---|---|"]
    for data in ("random", "mnist"):
        for name, e in errors.get(data, {}).items():
            for part in ("y", "dx", "dw"):
                cells = [f"{e[w][part]['max']:.1e} / {e[w][part]['rms']:.1e}" if w in e else "–"
                         for w in who]
                lines.append(f"| {data} | {name} | {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--layers", default=",".join(LAYERS),
                        help="comma-separated layers of DeepConvNet (default: all six)")
    parser.add_argument("--repeats", type=int, default=31, help="interleaved samples per "
                        "variant (default 31)")
    parser.add_argument("--threads", type=int, default=1,
                        help="minigrad.set_num_threads and torch.set_num_threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=BATCH, help="images per call (default 100)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-mnist", action="store_true", help="errors on random data only")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    unknown = [n for n in names if n not in LAYERS]
    if unknown or not names:
        parser.error(f"--layers: unknown {unknown}; choose from {', '.join(LAYERS)}")
    if args.repeats < 1 or args.threads < 1 or args.batch < 1:
        parser.error("--repeats, --threads and --batch must be positive")
    import minigrad

    minigrad.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch = None
        else:
            torch.set_num_threads(args.threads)
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                          "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    layouts = {}
    for n in names:
        C, FN, H, P = LAYERS[n]
        OH = tiles(H, H, P)[0]
        layouts[n] = minigrad_memory(n, np.zeros((2, C, H, H), np.float32),
                                     np.zeros((FN, C, 3, 3), np.float32),
                                     np.zeros((2, FN, OH, OH), np.float32), P)[2:]
    times = measure(names, args.repeats, args.seed, args.batch, torch)
    errors = error_table(names, args.seed, args.batch, torch, mnist=not args.no_mnist)
    result = {
        "layers": {n: dict(zip(("C", "FN", "H", "padding"), LAYERS[n])) for n in names},
        "batch": args.batch, "repeats": args.repeats, "threads": args.threads,
        "clock": "time.process_time", "block_bytes": BLOCK_BYTES,
        "median_seconds": times, "float32_errors": errors, "environment": env,
        "minigrad_x_dy_memory": layouts,
        "python": platform.python_version(), "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "loadavg_after": os.getloadavg(),
    }
    print(f"batch {args.batch}, float32, {args.threads} thread(s), CPU time, median of "
          f"{args.repeats} interleaved samples; env {env}")
    print("minigrad's x and dy memory, as in its DeepConvNet: " + ", ".join(
        f"{n} {x}/{dy}" for n, (x, dy) in layouts.items()) + "; Winograd: the same; torch: NCHW")
    print(format_times(times, torch is not None))
    print()
    print("float32 error against a float64 direct convolution (max |err| / max |exact|, "
          "relative RMS):")
    print(format_errors(errors))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
