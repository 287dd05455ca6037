"""The CPU form of the paste: a scan with real branches and banded blurs.

XLA:CPU runs a branch for free and a dense matrix product per mask at full
cost, so this form differs from the accelerator one (`accelerator`) in how
it gets the same values:

- a `lax.scan` over segment slots whose body skips padding slots and SEGs
  with nothing to paste, and same-size resizes, with `lax.cond`;
- the blur as shifted sums over a reflect-padded array (an unrolled sum up
  to radius 10, a banded block matrix product beyond), under a static
  maximum radius: one of `RADIUS_BUCKETS`, picked from a concrete feather
  (`Form.for_feather`), so a sweep over feathers 0..100 compiles at most
  that many programs;
- one SEGS per image as one scan over every image's segments, the images
  stacked along their rows (a `vmap` would turn the branches into selects).

`platform` decides where this form is used: only for images known, before
tracing, to live on a CPU.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax._src import feather as feather_lib
from segspaste_jax._src import geometry as geo_lib
from segspaste_jax._src import relative as relative_lib
from segspaste_jax._src.types import PackedSegs

# The static maximum radii: a feather is blurred with the first bucket that
# holds it (traced feathers with the last).
RADIUS_BUCKETS = (3, 6, 10, 50, 100)
_UNROLLED_MAX_RADIUS = 10  # unrolled sums up to here, banded GEMM after
_BLOCK = 128  # output samples per block of the banded matrix product
# Colour methods whose per-pixel map mixes the channels (and, for rct, runs
# transcendentals): applied in the colour step's own branch, whose result
# is a buffer of its own. Fused into the blend's in-place update of the
# window instead, XLA:CPU runs them element by element, several times
# slower. lowfreq's map (an added, upsampled field) is cheaper inside the
# blend.
_APPLIED_APART = ("rct", "mkl")


class Form(NamedTuple):
  """The CPU form as a static argument of the compiled paste.

  Attributes:
    max_radius: the blur's static maximum radius, one of `RADIUS_BUCKETS`.
  """

  max_radius: int

  @classmethod
  def for_feather(cls, feather) -> Form:
    """The form for `feather`: the first of `RADIUS_BUCKETS` that holds a
    concrete feather; the largest for a traced one."""
    if isinstance(feather, jax.core.Tracer):
      return cls(RADIUS_BUCKETS[-1])
    feather = operator.index(feather)
    return cls(next((b for b in RADIUS_BUCKETS if feather <= b),
                    RADIUS_BUCKETS[-1]))


# ----------------------------------------------------------------------------
# The blur: banded sums over a reflect-padded array.

def _taps(max_radius: int, radius, dtype):
  """Normalised Gaussian taps at offsets -R..R, zero beyond `radius`."""
  d = jnp.arange(-max_radius, max_radius + 1, dtype=dtype)
  g = jnp.where(jnp.abs(d) <= radius, feather_lib.gauss(d), 0.0)
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
  q = min(max_radius, length - 1)
  width = lambda lo, hi: [(lo, hi) if a == axis else (0, 0)
                          for a in range(x.ndim)]
  padded = jnp.pad(x, width(max_radius, max_radius))
  if q <= 0:
    return padded
  near = lax.rev(lax.slice_in_dim(x, 1, q + 1, axis=axis), (axis,))
  padded = lax.dynamic_update_slice_in_dim(padded, near, max_radius - q, axis)
  # x[n - 1 - q : n - 1], reversed, lands at p = n .. n + q - 1
  tail = lax.dynamic_slice_in_dim(jnp.pad(x, width(q, 0)), n - 1, q, axis)
  return lax.dynamic_update_slice_in_dim(padded, lax.rev(tail, (axis,)),
                                         max_radius + n, axis)


def _blur_axis(x, n, radius, max_radius: int, axis: int):
  """Blurs `x` along `axis` (real length `n`, traced) with reflect padding.

  A correlation over static shifts of the reflect-padded array, which XLA
  fuses into one loop, or (past `_UNROLLED_MAX_RADIUS`) a banded matrix
  product; taps beyond the traced `radius` are zero. Entries at and past
  `n` come out as junk for the caller to mask. `x` must be finite: in the
  matrix product a NaN reaches every output of its block.
  """
  axis = axis % x.ndim
  length = x.shape[axis]
  taps = _taps(max_radius, radius, x.dtype)
  # materialise the padded array once, or XLA re-fuses it into every shift
  padded = lax.optimization_barrier(_reflect_pad(x, n, max_radius, axis))
  if max_radius <= _UNROLLED_MAX_RADIUS:
    shifted = lambda t: lax.slice_in_dim(padded, t, t + length, axis=axis)
    out = taps[0] * shifted(0)
    for t in range(1, 2 * max_radius + 1):
      out = out + taps[t] * shifted(t)
    return out
  return _blur_axis_blocks(padded, taps, length, axis, max_radius)


def _blur_axis_blocks(padded, taps, length: int, axis: int, max_radius: int):
  """`out[k] = sum_t taps[t] * padded[k + t]` along `axis`, `k < length`.

  The padded axis is cut into overlapping blocks of `block + 2R` samples
  and each block multiplied by one `[block + 2R, block]` Toeplitz matrix of
  the taps: about twice the multiply-adds of the shifted sums, in a GEMM,
  and a compile time that does not grow with the radius.
  """
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


def blur_banded(mask, height, width, feather, max_radius: int):
  """Feathers zero-padded masks by banded sums (the CPU form).

  Args:
    mask: `[..., Hb, Wb]` float, real content in `[..., :height, :width]`,
      zeros after (and finite).
    height, width: int32 scalars, the masks' real size (>= 1).
    feather: int32 scalar (traced), at most `max_radius`.
    max_radius: static, one of `CPU_RADIUS_BUCKETS`.

  Returns:
    `[..., Hb, Wb]` blurred masks, zero outside `[:height, :width]`; the
    mask itself where the radius is 0 (a real branch: no work).
  """
  radius = feather_lib.effective_radius(feather, jnp.minimum(height, width))

  def blur(mask):
    rows = jnp.arange(mask.shape[-2])[:, None] < height
    cols = jnp.arange(mask.shape[-1])[None, :] < width
    out = jnp.where(cols, _blur_axis(mask, width, radius, max_radius, -1), 0.0)
    out = _blur_axis(out, height, radius, max_radius, -2)
    return jnp.where(rows & cols, out, 0.0)

  return lax.cond(radius > 0, blur, lambda m: m, mask)


# ----------------------------------------------------------------------------
# The paste.

def paste(image, packed: PackedSegs, how: geo_lib.Blend, ref_image,
          max_radius: int):
  """The paste of `paste_core`, CPU form.

  Args:
    image: `[N, H, W, C]` float.
    packed: `PackedSegs` (one SEGS, or one per image with a leading image
      axis).
    how: the shared `geometry.Blend`; `how.feather` at most `max_radius`.
    ref_image: `[N or 1, H, W, C']` float, or None.
    max_radius: static, `Form.max_radius`.

  Returns:
    `[N, H, W, C]` of `image`'s dtype.
  """
  if packed.per_image:
    return _per_image_rows(image, packed, how, ref_image, max_radius)
  n, h, _, _ = image.shape
  return _scan(image, packed, how, ref_image, h,
               jnp.zeros(packed.valid.shape, jnp.int32), False, max_radius)


def _per_image_rows(image, packed: PackedSegs, how, ref_image,
                    max_radius: int):
  """One SEGS per image: the images stacked along their rows (`[1, N * H,
  W, C]`, a free reshape) and one scan over every image's segments, each
  window offset into its own image's rows."""
  n, h, w, c = image.shape
  slots = packed.masks.shape[1]
  packed = jax.tree.map(lambda x: x.reshape((n * slots,) + x.shape[2:]),
                        packed)
  image_of = jnp.repeat(jnp.arange(n, dtype=jnp.int32), slots)
  shared_ref = ref_image is not None and ref_image.shape[0] == 1
  if ref_image is not None and not shared_ref:
    ref_image = ref_image[:n].reshape((1, n * h) + ref_image.shape[2:])
  out = _scan(image.reshape(1, n * h, w, c), packed, how, ref_image, h,
              image_of, shared_ref, max_radius)
  return out.reshape(n, h, w, c)


def _scan(image, packed: PackedSegs, how, ref_image, h: int, image_of,
          shared_ref: bool, max_radius: int):
  """The scan over segment slots.

  `image` may be several images of `h` rows stacked along its rows:
  segment `i` belongs to image `image_of[i]` and its window lies in that
  image's rows; a shared reference frame (`shared_ref`, `[1, h, W, C']`)
  is cut at the image's own rows.
  """
  n, _, w, _ = image.shape
  window = geo_lib.window_size(packed.masks.shape[-1], (h, w))
  geo = geo_lib.geometry(packed, (h, w), window, ref_image is not None)
  rows = geo.ys + image_of * h
  ref_rows = geo.ys if shared_ref else rows
  crops = geo_lib.frames_of(packed.crops, n)

  def segment(frames, i):
    mask_hw, ref_hw, dy, dx = (geo.mask_hw[i], geo.ref_hw[i], geo.dy[i],
                               geo.dx[i])
    mask = lax.dynamic_index_in_dim(packed.masks, i, keepdims=False)
    mask = jnp.where(geo_lib.inside(mask.shape[-2:], 0, 0, mask_hw), mask, 0)
    if how.relative:  # dense blurs with a traced sigma: no radius bucket
      mask, edge = relative_lib.segment_weights(
          mask.astype(how.compute), mask_hw, ref_hw, window, (dy, dx),
          how.feather, how.grow)
      gain = how.gain * edge
    else:
      mask = blur_banded(mask.astype(how.compute), mask_hw[0], mask_hw[1],
                         how.feather, max_radius)
      gain = how.gain * feather_lib.edge_ramp(window, (dy, dx), ref_hw,
                                              how.feather, how.soft)
    inside = geo_lib.inside(window, dy, dx, ref_hw)
    same = jnp.all(mask_hw == ref_hw)
    corner = same & (dy == 0) & (dx == 0)

    def source():
      """What the pasted pixels are cut from: the crop, or the reference
      image already cut at the window."""
      if ref_image is None:
        return lax.dynamic_index_in_dim(crops, i, keepdims=False)
      return geo_lib.cut_rows(ref_image, ref_rows[i], geo.xs[i], window)

    def mask_window(at_corner: bool):
      """The window mask times the gain: a static cut at the corner (the
      usual case), else the mask resized to the pasted pixels and cut."""
      if at_corner:
        return mask[:, :window[0], :window[1]] * gain

      def cut(m):
        return geo_lib.shifted_window(m, dy, dx, *window)

      def resize(m):  # the bilinear resize and the cut as two products
        return feather_lib.feathered_window(m, mask_hw, ref_hw, (dy, dx),
                                            window, jnp.int32(0))

      return lax.cond(same, cut, resize, mask) * gain

    def pasted(src, at_corner: bool):
      """The pasted pixels under the window, from `source()`: the crop cut
      statically at the corner, else shifted."""
      if ref_image is not None:
        return src
      if at_corner:
        return src[:, :window[0], :window[1]]
      return geo_lib.shifted_window(src, dy, dx, *window)

    # The colour step in branches of their own that only read the frames;
    # the blend's branches then write them in place. Methods in
    # `_APPLIED_APART` also apply their map there and hand the blend the
    # matched pixels (their source cut before the branch).
    apart = how.color in _APPLIED_APART

    def fit(at_corner: bool):
      def run(frames, *src):
        ref = pasted(src[0] if src else source(), at_corner)
        under = geo_lib.cut_rows(frames, rows[i], geo.xs[i], window)
        learned = geo_lib.color_fit(ref, under, mask_window(at_corner),
                                    inside, ref_hw, how)
        return geo_lib.color_apply(ref, learned, how) if apart else learned
      return run

    def blend(at_corner: bool):
      def run(frames, *fitted):
        if fitted and apart:  # the matched pixels, blended as they are
          ref, learned, rule = fitted[0], None, how._replace(color="none")
        else:  # the pasted pixels, and lowfreq's fit (or none)
          ref, learned, rule = (pasted(source(), at_corner),
                                fitted[0] if fitted else None, how)
        return geo_lib.blend_window(frames, rows[i], geo.xs[i],
                                    mask_window(at_corner), ref, inside, rule,
                                    size=ref_hw, learned=learned)
      return run

    fitted = ()
    if how.color != "none":
      operands = (frames, source()) if apart else (frames,)
      fitted = (lax.cond(corner, fit(True), fit(False), *operands),)
    return lax.cond(corner, blend(True), blend(False), frames, *fitted)

  def step(frames, i):
    # Padding slots and skipped SEGs do no work at all (a real branch).
    return lax.cond(geo.active[i], segment, lambda f, _: f, frames, i), None

  out, _ = lax.scan(step, image, jnp.arange(geo.active.shape[0]))
  return out
