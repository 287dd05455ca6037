"""Mask feathering: the Impact Pack's `tensor_gaussian_blur_mask` in JAX.

The node blurs with torchvision's `GaussianBlur(k, sigma=10)`: a separable
Gaussian with sigma fixed at 10 whatever the kernel size, over a mask padded
in reflect mode (mirror without repeating the edge pixel). Its kernel size is
`2 * feather + 1`, clamped for masks whose shorter side is not larger than
that. Here masks are padded to a bucket, their real size is traced, and so
are `feather` and the kernel radius: one compiled program serves every
feather.

The blur along one axis is a `[rows, L]` matrix (`axis_matrix`) whose
entries are the Gaussian taps with the reflection folded in and, optionally,
the bilinear resize that follows it in the node and the cut to a window.
Applying it is a matrix product: what GPUs and TPUs do best, with no
data-dependent shapes or branches. (The CPU form of the paste blurs by
banded sums instead: `segspaste_jax._src.cpu`.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax._src import relative
from segspaste_jax._src.types import FEATHER_MODES as FEATHER_MODES

SIGMA = 10.0  # fixed by the node, independent of the kernel size
MAX_FEATHER = 100  # the node's range is 0..100


def effective_radius(feather, short_side):
  """Blur radius `(k - 1) // 2` the node uses for a mask's shorter side.

  Args:
    feather: int or int array (traced or not), the node's `feather`
      (kernel size `2 * feather + 1`).
    short_side: int or int array, `min(mask_h, mask_w)`.

  Returns:
    int32 radius, 0 where the node skips the blur (`feather <= 0`, or a
    clamped kernel under 3 taps); broadcast shape of the arguments.
  """
  f = jnp.asarray(feather, jnp.int32)
  s = jnp.asarray(short_side, jnp.int32)
  k = 2 * f + 1
  clamped = s // 2
  clamped = jnp.where(clamped % 2 == 0, clamped + 1, clamped)
  clamped = jnp.where(clamped < 3, 1, clamped)  # k == 1: no blur
  k_eff = jnp.where(s <= k, clamped, k)
  return jnp.where(f <= 0, 0, (k_eff - 1) // 2)


def gauss(d):
  """The unnormalised Gaussian tap at offset `d` (sigma 10)."""
  return jnp.exp(-0.5 * (d / SIGMA) ** 2)


def _norm(radius, dtype):
  """Sum of the taps at offsets `-radius .. radius`."""
  t = jnp.arange(-MAX_FEATHER, MAX_FEATHER + 1, dtype=dtype)
  return jnp.sum(jnp.where(jnp.abs(t) <= radius, gauss(t), 0.0))


def _reflected_taps(k, j, n, radius, dtype):
  """Weight of input sample `j` in blurred output `k` (unnormalised).

  Reflect padding reads padded position `p = k + t` for taps `|t| <= r`:
  sample `p` itself inside `[0, n)`, `-p` before it and `2 (n - 1) - p`
  after it. The three positions that land on `j` are distinct, and a
  radius below `n` (which the node's kernel clamp guarantees) never
  reflects twice. `k` and `j` broadcast against each other; entries with
  `j` at or past `n` are zero.
  """
  def tap(t, ok):
    return jnp.where(ok & (jnp.abs(t) <= radius),
                     gauss(t.astype(dtype)), 0.0)

  weights = (tap(j - k, True) + tap(-j - k, j > 0)
             + tap(2 * (n - 1) - j - k, j < n - 1))
  return jnp.where(j < n, weights, 0.0)


def axis_matrix(out_index, n_in, n_out, radius, length: int,
                dtype=jnp.float32):
  """One axis of the node's feather-then-resize as a `[rows, length]` matrix.

  Row `u` holds the weights with which pasted pixel `out_index[u]` (of
  `n_out`) takes the mask's samples `0 .. n_in - 1` along this axis: the
  Gaussian blur of radius `radius` with reflect padding at `n_in`, then
  torch's bilinear resize (`align_corners=False`) from `n_in` to `n_out`,
  the identity when they agree. Rows whose `out_index` lies outside
  `[0, n_out)` are zero, so the product is zero outside the pasted pixels.

  Args:
    out_index: int32 `[rows]`, output sample indices (traced).
    n_in: int32 scalar, the mask's length along the axis (>= 1).
    n_out: int32 scalar, the pasted pixels' length (0 for none).
    radius: int32 scalar, the blur radius, `< n_in`.
    length: static, the mask bucket's length along the axis.
    dtype: float32, or float64 for float64 images under x64.

  Returns:
    `[rows, length]` of `dtype`.
  """
  n_in_f = jnp.maximum(n_in, 1).astype(dtype)
  n_out_f = jnp.maximum(n_out, 1).astype(dtype)
  src = jnp.maximum((out_index.astype(dtype) + 0.5) * (n_in_f / n_out_f)
                    - 0.5, 0.0)
  last = jnp.maximum(n_in - 1, 0)
  i0 = jnp.minimum(jnp.floor(src).astype(jnp.int32), last)
  i1 = jnp.minimum(i0 + 1, last)
  lam = jnp.clip(src - i0.astype(dtype), 0.0, 1.0)[:, None]
  j = jnp.arange(length, dtype=jnp.int32)[None, :]
  taps = functools.partial(_reflected_taps, j=j, n=n_in, radius=radius,
                           dtype=dtype)
  weights = (1 - lam) * taps(i0[:, None]) + lam * taps(i1[:, None])
  keep = ((out_index >= 0) & (out_index < n_out))[:, None]
  return jnp.where(keep, weights / _norm(radius, dtype), 0.0)


def feathered_window(mask, size, out_size, shift, window, feather):
  """The node's feather, then resize, of zero-padded masks, cut to a window.

  Two matrix products (`axis_matrix` per axis): entry `(u, v)` of the
  result is pixel `(u + shift[0], v + shift[1])` of the masks feathered at
  their own size and resized to `out_size`, zero outside `out_size`.

  Args:
    mask: `[..., Hb, Wb]` float, real content in `[..., :size[0],
      :size[1]]`; the rest is ignored.
    size: int32 `(h, w)`, the masks' real size (>= 1 each).
    out_size: int32 `(h, w)` to resize to (equal to `size`: no resize).
    shift: int32 `(dy, dx)`, the window's offset.
    window: static `(rows, cols)` of the result.
    feather: int32 scalar (traced), the node's feather.

  Returns:
    `[..., rows, cols]`, float64 for float64 masks (under x64), else
    float32.
  """
  hb, wb = mask.shape[-2:]
  dtype = jnp.promote_types(mask.dtype, jnp.float32)
  radius = effective_radius(feather, jnp.minimum(size[0], size[1]))
  rows = axis_matrix(jnp.arange(window[0]) + shift[0], size[0], out_size[0],
                     radius, hb, dtype)
  cols = axis_matrix(jnp.arange(window[1]) + shift[1], size[1], out_size[1],
                     radius, wb, dtype)
  mask = jnp.where(relative.real_extent(mask.shape[-2:], size), mask, 0)
  return jnp.einsum("uj,...jl,vl->...uv", rows, mask.astype(dtype), cols,
                    precision=lax.Precision.HIGHEST)


def edge_ramp(window, shift, size, feather, soft):
  """The soft-edge factor of a window: 0 on the pasted rectangle's border.

  With `d` the distance of a pasted pixel from the nearest border pixel of
  its rectangle (`min(u, h - 1 - u, v, w - 1 - v)` for pixel `(u, v)` of an
  `h x w` rectangle), the factor is `smoothstep(d / (2 * feather))`:
  `3 t^2 - 2 t^3` for `t` clipped to [0, 1]. It is 0 on the border ring, 1
  from `2 * feather` pixels inward, and steps by at most `0.75 / feather`
  between neighbours. Multiplying the node's feathered mask by it is
  `feather_mode="soft_edges"`.

  Args:
    window: static `(rows, cols)` of the result.
    shift: int32 `(dy, dx)`: entry `(u, v)` is pasted pixel `(u + dy, v + dx)`.
    size: int32 `(h, w)` of the pasted rectangle.
    feather: int32 scalar (traced), the node's feather.
    soft: bool scalar (traced): False (or feather 0) gives all ones.

  Returns:
    `[rows, cols]` float32.
  """
  span = 2.0 * jnp.maximum(feather, 1).astype(jnp.float32)

  def axis(count, offset, n):
    i = jnp.arange(count) + offset
    t = jnp.clip(jnp.minimum(i, n - 1 - i).astype(jnp.float32) / span, 0, 1)
    return t * t * (3 - 2 * t)

  ramp = jnp.minimum(axis(window[0], shift[0], size[0])[:, None],
                     axis(window[1], shift[1], size[1])[None, :])
  return jnp.where(soft & (feather > 0), ramp, 1.0)


def blur_matrix_form(mask, height, width, feather):
  """Feathers zero-padded masks by two matrix products (any backend).

  `feathered_window` with no resize and no shift: `[..., Hb, Wb]` in and
  out, zero outside `[:height, :width]`.
  """
  size = (height, width)
  return feathered_window(mask, size, size, (0, 0), mask.shape[-2:], feather)


def gaussian_blur_mask(mask, feather) -> jax.Array:
  """Feathers masks the way the Impact Pack's `tensor_gaussian_blur_mask` does.

  Kernel size `k = 2 * feather + 1`, sigma 10, reflect padding; where the
  mask's shorter side `s <= k`, `k = int(s / 2)` made odd, and no blur at all
  if that is below 3. `feather <= 0` returns the mask unchanged.

  Args:
    mask: `[h, w]` or `[..., h, w]` float array, values in [0, 1], finite.
    feather: int in 0..100; traced or not, one program per mask shape.

  Returns:
    The blurred masks, float32 (float64 for float64 masks under x64), same
    shape as `mask` (the node returns `[1, h, w, 1]`; here the caller's
    layout is kept).
  """
  mask = jnp.asarray(mask)
  if not jnp.issubdtype(mask.dtype, jnp.floating):
    mask = mask.astype(jnp.float32)
  if mask.ndim < 2:
    raise ValueError(f"mask: expected [h, w] or [..., h, w], got shape "
                     f"{mask.shape}")
  h, w = mask.shape[-2:]
  if h == 0 or w == 0:
    raise ValueError(f"mask: expected a non-empty [h, w], got shape "
                     f"{mask.shape}")
  return _blur_jit(mask, jnp.asarray(feather, jnp.int32))


@jax.jit
def _blur_jit(mask, feather):
  h, w = mask.shape[-2:]
  return blur_matrix_form(mask, jnp.int32(h), jnp.int32(w), feather)
