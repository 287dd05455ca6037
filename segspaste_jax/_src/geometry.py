"""Where each segment lands, and its blend written back: what both forms share.

A segment's pasted pixels (its crop, or the reference image cut at its
region) are `ref_hw` in size and land at `(oy, ox)`. The program reads and
writes one window of the bucket's size per segment, `win_h x win_w` at
`(ys, xs)`, moved inside the image; pixel `(u, v)` of the window shows pasted
pixel `(u + dy, v + dx)`. Everything here is traced except shapes.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax._src import blend as blend_lib
from segspaste_jax._src import color as color_lib
from segspaste_jax._src.types import PackedSegs


# The colour step's statistics read every `min(win_h, win_w) //
# STATS_SAMPLES`-th row and column of a window (see `color_fit`).
STATS_SAMPLES = 64


class Blend(NamedTuple):
  """What every segment's blend shares (traced, except `rule`, `compute`
  and `relative`)."""

  feather: jax.Array  # int32 scalar; float (per cent) when `relative`
  gain: jax.Array     # alpha / 255, of the compute dtype
  soft: jax.Array     # bool scalar: feather_mode == "soft_edges"
  rule: str           # static, `blend.rule`
  compute: jnp.dtype  # static: promote(image dtype, float32)
  relative: bool = False  # static: feather_mode == "relative"
  grow: jax.Array | float = 0.0  # float scalar, per cent (when `relative`)
  color: str = "none"  # static, one of `color.COLOR_MATCHES`
  strength: jax.Array | float = 1.0  # traced, the colour step's strength


class Geometry(NamedTuple):
  """Per-segment placement, `[S]` int32 arrays (and `active` bool).

  Attributes:
    mask_hw: `[S, 2]` the masks' real size.
    ref_hw: `[S, 2]` the pasted pixels' size (0 where there are none).
    ys, xs: `[S]` the window's corner in the image.
    dy, dx: `[S]` window pixel `(u, v)` shows pasted pixel `(u + dy, v + dx)`.
    active: `[S]` whether the segment pastes anything at all (a valid slot,
      with a crop unless the pixels come from a reference image).
  """

  mask_hw: jax.Array
  ref_hw: jax.Array
  ys: jax.Array
  xs: jax.Array
  dy: jax.Array
  dx: jax.Array
  active: jax.Array


def window_size(bucket: int, image_hw) -> tuple[int, int]:
  """The static `(win_h, win_w)`: the bucket's side, cut to the image."""
  return min(bucket, image_hw[0]), min(bucket, image_hw[1])


def geometry(packed: PackedSegs, image_hw, window, with_ref: bool) -> Geometry:
  """Every segment's placement in an image of `image_hw`.

  Args:
    packed: `PackedSegs` of one SEGS (no leading image axis).
    image_hw: static `(H, W)`.
    window: static `(win_h, win_w)`, from `window_size`.
    with_ref: the pasted pixels are cut from a reference image at each
      region, not taken from the crops.
  """
  h, w = image_hw
  win_h, win_w = window
  x1, y1, x2, y2 = (packed.regions[:, k].astype(jnp.int32) for k in range(4))
  if with_ref:
    # The node cuts ref_image[y1:y2, x1:x2]; Python slicing clips that at the
    # image's far edges, and here it is clipped at the near ones the same way.
    oy, ox = jnp.maximum(y1, 0), jnp.maximum(x1, 0)
    ref_hw = jnp.stack([jnp.clip(jnp.minimum(y2, h) - oy, 0),
                        jnp.clip(jnp.minimum(x2, w) - ox, 0)], axis=-1)
    active = packed.valid
  else:
    oy, ox = y1, x1
    ref_hw = packed.crop_sizes.astype(jnp.int32)
    active = packed.valid & packed.has_crop
  ys = jnp.clip(oy, 0, h - win_h)
  xs = jnp.clip(ox, 0, w - win_w)
  return Geometry(packed.mask_sizes.astype(jnp.int32), ref_hw, ys, xs,
                  ys - oy, xs - ox, active)


def frames_of(crops, frames: int):
  """`crops` `[S, Fc, B, B, C]` cut to the image's frames where `Fc > 1`
  (crops may carry more frames than the image)."""
  return crops[:, :frames] if crops.shape[1] > 1 else crops


def inside(shape, dy, dx, size):
  """`[h, w]` bool: entry `(u, v)` is True where `(u + dy, v + dx)` lies in
  `[0, size[0]) x [0, size[1])`."""
  rows = jnp.arange(shape[0]) + dy
  cols = jnp.arange(shape[1]) + dx
  return (((rows >= 0) & (rows < size[0]))[:, None]
          & ((cols >= 0) & (cols < size[1]))[None, :])


def shifted_window(a, dy, dx, height: int, width: int):
  """`out[:, u, v] = a[:, u + dy, v + dx]`, zero outside `a`.

  `a` is `[F, B, B]` or `[F, B, B, C]`; the result is `[F, height, width,
  ...]`. Padding by the window size on each side makes every clamped
  `dynamic_slice` start land either on the exact offset or wholly in zeros.
  """
  pads = [(0, 0), (height, height), (width, width)] + [(0, 0)] * (a.ndim - 3)
  padded = jnp.pad(a, pads)
  zero = jnp.zeros((), jnp.int32)  # one index type, with or without x64
  start = [zero, height + dy, width + dx] + [zero] * (a.ndim - 3)
  sizes = (a.shape[0], height, width) + a.shape[3:]
  return lax.dynamic_slice(padded, start, sizes)


def cut_rows(ref_image, ys, xs, window):
  """`ref_image` `[F, H, W, C]` cut to the window `window` at `(ys, xs)`."""
  zero = jnp.zeros((), jnp.int32)
  return lax.dynamic_slice(ref_image, (zero, ys, xs, zero),
                           (ref_image.shape[0], *window, ref_image.shape[-1]))


def pasted_window(i, geo: Geometry, crops, ref_image, window):
  """Segment `i`'s pasted pixels under its window: `[F, win_h, win_w, C']`,
  the crop shifted by `(dy, dx)` (zero outside it), or the reference image
  cut at the window."""
  if ref_image is None:
    crop = lax.dynamic_index_in_dim(crops, i, keepdims=False)
    return shifted_window(crop, geo.dy[i], geo.dx[i], *window)
  return cut_rows(ref_image, geo.ys[i], geo.xs[i], window)


def blend_window(frames, ys, xs, m, ref, inside_mask, how: Blend,
                 size=None, learned=None):
  """Blends pasted pixels into one window of `frames` and writes it back.

  With `how.color` other than "none", the pasted pixels are first matched
  to the window's own (`color_fit`, `color_apply`).

  Args:
    frames: `[N, H, W, C]`.
    ys, xs: int32 scalars, the window's corner.
    m: `[Fm, win_h, win_w]` window mask, already scaled by `alpha / 255`
      and zero outside the pasted pixels.
    ref: `[F, win_h, win_w, C']` pasted pixels under the window (read only
      where `m != 0`).
    inside_mask: `[win_h, win_w]` bool, where the pasted pixels are real.
    how: the shared `Blend`.
    size: int32 `(h, w)`, the pasted pixels' real size (for the colour
      step only).
    learned: the colour step's `color_fit`, already computed (the CPU form
      fits before its branches: read inside a branch that then writes the
      frames in place, the window makes XLA copy all the frames); None: fit
      here.

  Returns:
    `frames` with the window blended (`lax.dynamic_update_slice`).
  """
  n, _, _, c = frames.shape
  win_h, win_w = m.shape[-2:]
  zero = jnp.zeros((), jnp.int32)
  corner = (zero, ys, xs, zero)
  under = lax.dynamic_slice(frames, corner, (n, win_h, win_w, c))
  if how.color != "none":
    if learned is None:
      learned = color_fit(ref, under, m, inside_mask, size, how)
    ref = color_apply(ref, learned, how)
  blended = blend_lib.blend(how.rule, m[..., None], under.astype(how.compute),
                            ref.astype(how.compute), inside_mask[..., None])
  return lax.dynamic_update_slice(frames, blended.astype(frames.dtype), corner)


def color_fit(ref, under, m, inside_mask, size, how: Blend) -> color_lib.Fit:
  """The colour step's statistics: the pasted pixels `ref` against the
  frame's pixels they replace, `under` `[N, win_h, win_w, C]`.

  Each frame's pasted pixels are matched (`color.fit`, method `how.color`)
  to that frame's window as it is when the segment lands (earlier segments
  included), weighted by the blend's own mask `m` (feathered, resized,
  times `alpha / 255` and the soft edge: the pixels weigh as much as they
  are replaced), zero outside the pasted pixels' real extent. lowfreq's
  sigma is a fraction of `size`, the pasted pixels' real size. rct and mkl
  take their statistics from every `min(win_h, win_w) //
  STATS_SAMPLES`-th row and column: at least `STATS_SAMPLES` per axis of
  the window, plenty for a mean and a 3x3 covariance at a fraction of the
  reads (a crop far smaller than its bucket gets fewer).
  """
  ref = jnp.where(inside_mask[..., None], ref.astype(how.compute), 0)
  w = jnp.where(inside_mask, m.astype(how.compute), 0)
  stride = max(1, min(ref.shape[-3:-1]) // STATS_SAMPLES)
  return color_lib.fit(ref, under.astype(how.compute), w, how.color,
                       size=size, stride=stride)


def color_apply(ref, learned: color_lib.Fit, how: Blend):
  """The pasted pixels `ref` `[F, win_h, win_w, C']` matched by what
  `color_fit` learned, with strength `how.strength`; alpha channels pass
  through. Returns `[N, win_h, win_w, C']` of the compute dtype.

  Pixels outside `inside_mask` are matched as they are and then ignored
  by the blend: zeros in everything the library packs or cuts. A
  non-finite value there leaves the pixels finite but would make the
  gradients of rct and mkl NaN; zeroing them first costs a select per
  channel in the loop that applies the map (the blend's, or on the CPU the
  colour step's own branch for rct and mkl), measured at a fifth to a half
  of the colour step's time on the CPU when all ran in the blend.
  """
  return color_lib.apply(ref.astype(how.compute), learned, how.color,
                         how.strength)
