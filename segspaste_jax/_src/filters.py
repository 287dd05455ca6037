"""Resampling filters as per-axis weight matrices, for traced sizes.

Resizing a region whose size is only known at run time, inside a buffer of
static size, to a target whose placement is also traced cannot use a
resize of static shapes. Here one axis of such a resize is a `[out, in]`
matrix built from the traced sizes (as `feather.axis_matrix` builds the
node's blur): applying it is a matrix product, with no data-dependent
shapes and no branches.

The convention is Pillow's: output pixel `t` of a target interval of
length `n_out` samples the source interval of length `n_in` around the
centre `c = (t + 0.5) * n_in / n_out` (source pixel `j` spans `[j, j + 1)`);
source pixel `j` weighs `k((j + 0.5 - c) / f)` with `f = max(n_in / n_out,
1)`, so a filter of support `a` reaches `a * f` source pixels: widened when
downscaling, which is the antialiasing. The weights are normalised to sum
to 1 over the taps that lie inside the source interval, so nothing outside
it is ever read (the edges are not padded, as in Pillow).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# name -> support (the kernel is zero at and beyond it)
SUPPORT = {"linear": 1.0, "cubic": 2.0, "lanczos3": 3.0, "lanczos5": 5.0}
METHODS = tuple(SUPPORT)
_CUBIC_A = -0.5  # Keys' cubic, as Pillow's BICUBIC and jax.image's "cubic"


def _sin_pi(x):
  """`sin(pi x)`, exactly 0 at integers (so that a Lanczos kernel at an
  integer offset is exactly 0, and a resize by 1 exactly the identity)."""
  n = jnp.round(x)
  sign = 1 - 2 * jnp.mod(n, 2)
  return sign * jnp.sin(np.pi * (x - n))


def _sinc(x):
  safe = jnp.where(x == 0, 1.0, x)
  return jnp.where(x == 0, 1.0, _sin_pi(safe) / (np.pi * safe))


def kernel(method: str, x):
  """The filter `method` at offsets `x` (in filter units), any shape."""
  ax = jnp.abs(x)
  if method == "linear":
    return jnp.maximum(1.0 - ax, 0.0)
  if method == "cubic":
    a = _CUBIC_A
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return jnp.where(ax < 1, near, jnp.where(ax < 2, far, 0.0))
  support = SUPPORT[method]  # lanczos
  return jnp.where(ax < support, _sinc(x) * _sinc(x / support), 0.0)


def axis_weights(out_length: int, in_length: int, dst_start, dst_size,
                 src_start, src_size, method: str, dtype=jnp.float32):
  """One axis of a resize between two traced intervals, as matrices.

  Row `t` holds the weights with which output sample `t` takes the input
  samples `0 .. in_length - 1`: for `t` in `[dst_start, dst_start +
  dst_size)`, the source interval `[src_start, src_start + src_size)`
  resampled to `dst_size` samples (module docstring), the input outside
  that interval weighing 0; rows outside the target interval are 0.

  Args:
    out_length: static, the output buffer's length.
    in_length: static, the input buffer's length.
    dst_start, dst_size: int `[...]` (traced), the target interval.
    src_start, src_size: int `[...]` (traced), the source interval; all
      four broadcast together to the batch shape `[...]`.
    method: one of `METHODS`.
    dtype: float32, or float64 (under x64).

  Returns:
    `[..., out_length, in_length]` of `dtype`.
  """
  col = lambda v: jnp.asarray(v)[..., None, None]
  dst_start, dst_size, src_start, src_size = (
      col(v) for v in (dst_start, dst_size, src_start, src_size))
  t = jnp.arange(out_length, dtype=jnp.int32)[:, None]
  j = jnp.arange(in_length, dtype=jnp.int32)[None, :]
  n_in = src_size.astype(dtype)
  n_out = jnp.maximum(dst_size, 1).astype(dtype)
  stretch = jnp.maximum(n_in / n_out, 1.0)
  # source coordinates relative to the source interval's start
  centre = ((t - dst_start).astype(dtype) + 0.5) * n_in / n_out
  offset = ((j - src_start).astype(dtype) + 0.5 - centre) / stretch
  weights = kernel(method, offset)
  inside = ((j >= src_start) & (j < src_start + src_size)
            & (t >= dst_start) & (t < dst_start + dst_size))
  weights = jnp.where(inside, weights, 0.0).astype(dtype)
  total = jnp.sum(weights, axis=-1, keepdims=True)
  return jnp.where(total != 0, weights / jnp.where(total != 0, total, 1), 0)
