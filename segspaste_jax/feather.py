"""Mask feathering: the Impact Pack's `tensor_gaussian_blur_mask` in JAX.

The node blurs with torchvision's `GaussianBlur(k, sigma=10)`: a separable
Gaussian with sigma fixed at 10 whatever the kernel size, over a mask padded in
reflect mode (mirror without repeating the edge pixel). Its kernel size is
`2 * feather + 1`, clamped for masks whose shorter side is not larger than
that. Here the blur runs on masks padded to a bucket, with the real size
traced, so the kernel radius is traced too: the taps beyond it are zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

SIGMA = 10.0  # fixed by the node, independent of the kernel size
# Kernels up to this many taps are one unrolled sum, wider ones a banded
# matrix product, by platform ("cpu" or "other": GPU, TPU). On XLA:CPU the
# sum is the faster of the two up to 21 taps. On an H200 both ran W3's
# 21-tap blur at the same speed, but the unrolled sum took its program
# 32-36 s to compile against 11 s for the matrix product.
_UNROLLED_TAPS = {"cpu": 21, "other": 11}
_BLOCK = 128  # output samples per block of the wide kernels' matrix product


def platform_of(x) -> str | None:
  """"cpu" or "other": where an array will be worked on, when that is known
  before tracing (a concrete array); None inside a trace.

  Programs differ by platform (the blur's form here; the window paths in
  `paste`). Where it is only known at lowering (inside the caller's own
  `jit`), both forms are traced and `lax.platform_dependent` picks one;
  knowing it first saves tracing the other (about 0.1 s of W2's first call).
  """
  if isinstance(x, jax.core.Tracer):
    return None
  if isinstance(x, jax.Array):
    cpu = all(d.platform == "cpu" for d in x.devices())
  else:  # host data goes to the default backend
    cpu = jax.default_backend() == "cpu"
  return "cpu" if cpu else "other"


def effective_radius(feather: int, short_side):
  """Blur radius `(k - 1) // 2` the node uses for a mask's shorter side.

  Args:
    feather: static int, the node's `feather` (kernel size `2 * feather + 1`).
    short_side: int or int array, `min(mask_h, mask_w)`.

  Returns:
    The radius, 0 where the node skips the blur; same shape as `short_side`.
  """
  if feather <= 0:
    return jnp.zeros_like(jnp.asarray(short_side, jnp.int32))
  s = jnp.asarray(short_side, jnp.int32)
  k = 2 * feather + 1
  clamped = s // 2
  clamped = jnp.where(clamped % 2 == 0, clamped + 1, clamped)
  clamped = jnp.where(clamped < 3, 1, clamped)  # k == 1: no blur
  k_eff = jnp.where(s <= k, clamped, k)
  return (k_eff - 1) // 2


def _taps(max_radius: int, radius, dtype):
  """Normalised Gaussian taps at offsets -R..R, zero beyond `radius`."""
  d = jnp.arange(-max_radius, max_radius + 1, dtype=dtype)
  g = jnp.exp(-0.5 * (d / SIGMA) ** 2)
  g = jnp.where(jnp.abs(d) <= radius, g, 0.0)
  return g / jnp.sum(g)


def _reflect_pad(x, n, max_radius: int, axis: int):
  """Pads `x[:n]` along `axis` by `R` on each side in reflect mode.

  `x` is zero at and past `n` (a traced scalar). The near edge mirrors a
  static slice; the far edge mirrors a `q`-wide slab cut out at `n` and
  written back after it (`dynamic_slice` on whole arrays is slow on CPU;
  on thin slabs it is not). Returns `[..., L + 2R, ...]` whose entry `R + p`
  holds `x[reflect(p)]` for every `p` a tap within `radius <= n - 1` reads.
  """
  axis = axis % x.ndim
  length = x.shape[axis]
  big_r = max_radius
  q = min(big_r, length - 1)
  width = lambda lo, hi: [(lo, hi) if a == axis else (0, 0)
                          for a in range(x.ndim)]
  padded = jnp.pad(x, width(big_r, big_r))
  if q <= 0:
    return padded
  near = lax.rev(lax.slice_in_dim(x, 1, q + 1, axis=axis), (axis,))
  padded = lax.dynamic_update_slice_in_dim(padded, near, big_r - q, axis)
  # x[n - 1 - q : n - 1], reversed, lands at p = n .. n + q - 1
  tail = lax.dynamic_slice_in_dim(jnp.pad(x, width(q, 0)), n - 1, q, axis)
  return lax.dynamic_update_slice_in_dim(padded, lax.rev(tail, (axis,)),
                                         big_r + n, axis)


def _blur_axis(x, n, radius, max_radius: int, axis: int, unrolled: bool):
  """Blurs `x` along `axis` (real length `n`, traced) with reflect padding.

  A correlation over static shifts of the reflect-padded array, which XLA
  fuses into one loop (`unrolled`), or a banded matrix product; taps beyond
  the traced `radius` are zero. Entries at and past `n` come out as junk
  and are the caller's to mask. `x` must be finite: in the matrix product
  a NaN reaches every output of its block, not only its neighbours.
  """
  axis = axis % x.ndim
  length = x.shape[axis]
  taps = _taps(max_radius, radius, x.dtype)
  # materialise the padded array once, or XLA re-fuses it into every shift
  padded = lax.optimization_barrier(_reflect_pad(x, n, max_radius, axis))
  count = 2 * max_radius + 1
  if unrolled:
    shifted = lambda t: lax.slice_in_dim(padded, t, t + length, axis=axis)
    out = taps[0] * shifted(0)
    for t in range(1, count):
      out = out + taps[t] * shifted(t)
    return out

  # Wide kernels: a banded matrix product. The padded axis is cut into
  # overlapping blocks of `block + 2R` samples and each block is multiplied
  # by one `[block + 2R, block]` Toeplitz matrix of the taps: about twice the
  # multiply-adds of the shifted sums, in a GEMM that runs several times
  # faster than the fused loop (W4's 101-tap blur: 19 -> 13 ms here), and
  # compile time does not grow with the feather.
  return _blur_axis_blocks(padded, taps, length, axis, max_radius)


def _blur_axis_blocks(padded, taps, length: int, axis: int, max_radius: int):
  """`out[k] = sum_t taps[t] * padded[k + t]` along `axis`, `k < length`."""
  block = _BLOCK
  span = block + 2 * max_radius
  p = jnp.moveaxis(padded, axis, -1)
  blocks = -(-length // block)
  short = blocks * block + 2 * max_radius - p.shape[-1]
  if short > 0:
    p = jnp.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, short)])
  stacked = jnp.stack([p[..., j * block:j * block + span]
                       for j in range(blocks)], axis=-2)
  d = jnp.arange(span)[:, None] - jnp.arange(block)[None, :]
  toeplitz = jnp.where((d >= 0) & (d <= 2 * max_radius),
                       taps[jnp.clip(d, 0, 2 * max_radius)], 0)
  out = jnp.matmul(stacked, toeplitz, precision=lax.Precision.HIGHEST)
  out = out.reshape(out.shape[:-2] + (blocks * block,))[..., :length]
  return jnp.moveaxis(out, -1, axis)


def blur_padded(mask, height, width, feather: int,
                platform: str | None = None):
  """Feathers zero-padded masks whose real size is traced.

  Args:
    mask: `[..., Hb, Wb]` float, real content in `[..., :height, :width]`,
      zeros after.
    height: int32 scalar, the masks' real height (>= 1).
    width: int32 scalar, the masks' real width (>= 1).
    feather: static int in 0..100.
    platform: "cpu" or "other" where the program will run, if known; None:
      `lax.platform_dependent` picks the blur's form at lowering.

  Returns:
    `[..., Hb, Wb]` blurred masks, zero outside `[:height, :width]`.
  """
  if feather <= 0:
    return mask
  unrolled = {p: 2 * feather + 1 <= taps for p, taps in _UNROLLED_TAPS.items()}
  if platform is None and unrolled["cpu"] != unrolled["other"]:
    blur = lambda p: functools.partial(_blur_both_axes, feather=feather,
                                       unrolled=unrolled[p])
    return lax.platform_dependent(mask, height, width, cpu=blur("cpu"),
                                  default=blur("other"))
  return _blur_both_axes(mask, height, width, feather=feather,
                         unrolled=unrolled[platform or "cpu"])


def _blur_both_axes(mask, height, width, *, feather: int, unrolled: bool):
  radius = effective_radius(feather, jnp.minimum(height, width))
  rows = jnp.arange(mask.shape[-2])[:, None] < height
  cols = jnp.arange(mask.shape[-1])[None, :] < width
  out = jnp.where(cols, _blur_axis(mask, width, radius, feather, -1, unrolled),
                  0.0)
  out = _blur_axis(out, height, radius, feather, -2, unrolled)
  return jnp.where(rows & cols, out, 0.0)


def gaussian_blur_mask(mask, feather: int):
  """Feathers masks the way the Impact Pack's `tensor_gaussian_blur_mask` does.

  Kernel size `k = 2 * feather + 1`, sigma 10, reflect padding; where the
  mask's shorter side `s <= k`, `k = int(s / 2)` made odd, and no blur at all if
  that is below 3. `feather <= 0` returns the mask unchanged.

  Args:
    mask: `[h, w]` or `[..., h, w]` float array, values in [0, 1].
    feather: int in 0..100 (static: it sets the kernel's size).

  Returns:
    The blurred masks, same shape as `mask` (the node returns `[1, h, w, 1]`;
    here the caller's layout is kept), float32 unless `mask` is float64.
    A NaN or inf in a mask spreads further than in the node's blur (up to
    128 + 2 * feather pixels for feather > 10 on the CPU, > 5 elsewhere):
    `segs_paste` rejects such masks; call this one with finite masks.
  """
  feather = int(feather)
  mask = jnp.asarray(mask)
  if mask.ndim < 2:
    raise ValueError(f"mask: expected [h, w] or [..., h, w], got shape {mask.shape}")
  if not jnp.issubdtype(mask.dtype, jnp.floating):
    mask = mask.astype(jnp.float32)
  h, w = mask.shape[-2:]
  if h == 0 or w == 0:
    raise ValueError(f"mask: expected a non-empty [h, w], got shape {mask.shape}")
  return _blur_stack(mask.reshape((-1, h, w)), feather=feather,
                     platform=platform_of(mask)).reshape(mask.shape)


@functools.partial(jax.jit, static_argnames=("feather", "platform"))
def _blur_stack(masks, feather: int, platform: str | None):
  h, w = masks.shape[-2:]
  return blur_padded(masks, np.int32(h), np.int32(w), feather, platform)
