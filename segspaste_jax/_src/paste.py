"""The jit-compiled core: feather, resize and blend packed SEGS into frames.

Everything here is pure `jnp`/`lax` on fixed shapes. Per-segment sizes and
positions, `feather` and `alpha` are traced, so one compiled program serves
every layout of a bucket and every feather (on the CPU form, every feather
of one of `feather.CPU_RADIUS_BUCKETS`). Segments land in list order, later
ones on top, each written in place with `lax.dynamic_update_slice` into a
window of the bucket's size; frames are handled by broadcasting.

The two forms of the program (`segspaste_jax._src.platform`) share the
geometry and the blend:

- accelerator: the masks of all segments are feathered, resized and cut to
  their windows at once (`vmap` of two matrix products), then the segments
  are blended one after another by straight-line code: no loop, no branch.
- cpu: a `lax.scan` over segments whose body skips padding slots and
  same-size resizes with `lax.cond` and blurs with banded sums.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax._src import blend as blend_lib
from segspaste_jax._src import feather as feather_lib
from segspaste_jax._src import platform, validate
from segspaste_jax._src.types import PackedSegs


class _Geometry(NamedTuple):
  """Per-segment placement, `[S]` int32 arrays (and `active` bool).

  The pasted pixels (the crop, or the reference image cut at the region)
  are `ref_hw` in size and land at `(oy, ox)`; the window that is read and
  written is `win_h x win_w` at `(ys, xs)`, inside the image, and its pixel
  `(u, v)` shows pasted pixel `(u + dy, v + dx)`. `ref_ys` is the row at
  which the window is cut from the reference image: `ys`, except for
  per-image SEGS stacked along the rows with one shared reference frame
  (`_per_image_rows`).
  """

  mask_hw: jax.Array
  ref_hw: jax.Array
  ys: jax.Array
  xs: jax.Array
  dy: jax.Array
  dx: jax.Array
  active: jax.Array
  ref_ys: jax.Array


def _geometry(packed: PackedSegs, image_hw, window, with_ref: bool):
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
  return _Geometry(packed.mask_sizes.astype(jnp.int32), ref_hw, ys, xs,
                   ys - oy, xs - ox, active, ys)


def _inside(shape, dy, dx, size):
  """`[h, w]` bool: entry `(u, v)` is True where `(u + dy, v + dx)` lies in
  `[0, size[0]) x [0, size[1])`."""
  rows = jnp.arange(shape[0]) + dy
  cols = jnp.arange(shape[1]) + dx
  return (((rows >= 0) & (rows < size[0]))[:, None]
          & ((cols >= 0) & (cols < size[1]))[None, :])


def _shifted_window(a, dy, dx, height: int, width: int):
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


def _blend_segment(frames, i, m, geo: _Geometry, crops, ref_image, compute,
                   rule: str, shifted: bool = True):
  """Blends segment `i` into its window of `frames` and writes it back.

  `m` is the segment's `[Fm, win_h, win_w]` window mask, already scaled by
  `alpha / 255` and zero outside the pasted pixels; `rule` is the static
  channel rule (`blend.rule`). `shifted=False` when the window is known to
  start at the crop's own corner (`dy == dx == 0`): the crop is then cut by
  a static slice.
  """
  n, _, _, c = frames.shape
  win_h, win_w = m.shape[-2:]
  ys, xs, dy, dx, ref_hw = (geo.ys[i], geo.xs[i], geo.dy[i], geo.dx[i],
                            geo.ref_hw[i])
  zero = jnp.zeros((), jnp.int32)
  corner = (zero, ys, xs, zero)
  under = lax.dynamic_slice(frames, corner, (n, win_h, win_w, c))
  if ref_image is None:
    crop = lax.dynamic_index_in_dim(crops, i, keepdims=False)
    ref = (_shifted_window(crop, dy, dx, win_h, win_w) if shifted
           else crop[:, :win_h, :win_w])
  else:
    ref = lax.dynamic_slice(ref_image, (zero, geo.ref_ys[i], xs, zero),
                            (ref_image.shape[0], win_h, win_w,
                             ref_image.shape[-1]))
  inside = _inside((win_h, win_w), dy, dx, ref_hw)[..., None]
  blended = blend_lib.blend(rule, m[..., None], under.astype(compute),
                            ref.astype(compute), inside)
  return lax.dynamic_update_slice(frames, blended.astype(frames.dtype), corner)


class _Blend(NamedTuple):
  """What every segment's blend shares (traced, except `rule`)."""

  feather: jax.Array  # int32 scalar
  gain: jax.Array     # alpha / 255
  soft: jax.Array     # bool scalar: feather_mode == "soft_edges"
  rule: str           # static, `blend.rule`


def _accelerator_form(image, packed, how: _Blend, ref_image, crops, geo,
                      window, compute):
  # Feathering, resizing and cutting every segment's masks to its window
  # does not depend on the order: all segments at once.
  def one(mask, mask_hw, ref_hw, dy, dx):
    m = feather_lib.feathered_window(mask.astype(compute), mask_hw, ref_hw,
                                     (dy, dx), window, how.feather)
    return m * feather_lib.edge_ramp(window, (dy, dx), ref_hw, how.feather,
                                     how.soft)

  masks = jax.vmap(one)(packed.masks, geo.mask_hw, geo.ref_hw, geo.dy, geo.dx)
  # Padding slots and skipped SEGs blend with a zero mask: their window is
  # written back unchanged, with no branch to decide it.
  masks = masks * jnp.where(geo.active, how.gain, 0)[:, None, None, None]
  frames = image
  for i in range(masks.shape[0]):  # unrolled while tracing: in list order
    frames = _blend_segment(frames, i, masks[i], geo, crops, ref_image,
                            compute, how.rule)
  return frames


def _cpu_form(image, packed, how: _Blend, ref_image, crops, geo, window,
              compute, max_radius: int):
  def segment(frames, i):
    mask_hw, ref_hw, dy, dx = (geo.mask_hw[i], geo.ref_hw[i], geo.dy[i],
                               geo.dx[i])
    mask = lax.dynamic_index_in_dim(packed.masks, i, keepdims=False)
    mask = jnp.where(_inside(mask.shape[-2:], 0, 0, mask_hw), mask, 0)
    mask = feather_lib.blur_banded(mask.astype(compute), mask_hw[0],
                                   mask_hw[1], how.feather, max_radius)
    gain = how.gain * feather_lib.edge_ramp(window, (dy, dx), ref_hw,
                                            how.feather, how.soft)

    def cut(m):
      return _shifted_window(m, dy, dx, *window)

    def resize(m):  # the bilinear resize and the cut as two small products
      return feather_lib.feathered_window(m, mask_hw, ref_hw, (dy, dx),
                                          window, jnp.int32(0))

    def general(frames):
      m = lax.cond(same, cut, resize, mask) * gain
      return _blend_segment(frames, i, m, geo, crops, ref_image, compute,
                            how.rule)

    def at_corner(frames):  # the usual case: static cuts, no padding
      m = mask[:, :window[0], :window[1]] * gain
      return _blend_segment(frames, i, m, geo, crops, ref_image, compute,
                            how.rule, shifted=False)

    same = jnp.all(mask_hw == ref_hw)
    return lax.cond(same & (dy == 0) & (dx == 0), at_corner, general, frames)

  def step(frames, i):
    # Padding slots and skipped SEGs do no work at all (a real branch).
    return lax.cond(geo.active[i], segment, lambda f, _: f, frames, i), None

  out, _ = lax.scan(step, image, jnp.arange(geo.active.shape[0]))
  return out


def paste_core(image, packed: PackedSegs, feather, alpha, ref_image,
               soft_edges=False, *, form: str, max_radius: int,
               rgba_mode: str = "composite"):
  """The paste as a traceable function (what `paste` compiles).

  Args:
    image: `[N, H, W, C]` float.
    packed: `PackedSegs` without metadata; crops of channels compatible
      with the image's (`validate.compatible_channels`); with a leading
      image axis (`PackedSegs.per_image`), each image takes its own SEGS.
    feather: int32 scalar in 0..100 (at most `max_radius` for the CPU form).
    alpha: scalar in [0, 255].
    ref_image: `[N or 1, H, W, C']` float (C' compatible), or None.
    soft_edges: bool scalar (traced): `feather_mode="soft_edges"`.
    form: static, "cpu" or "accelerator" (see `platform`).
    max_radius: static, the CPU form's blur bucket (`static_args`).
    rgba_mode: static, one of `validate.RGBA_MODES`.

  Returns:
    `[N, H, W, C]` of `image`'s dtype.
  """
  if packed.masks.ndim == 5:  # one SEGS per image
    if form != "cpu":
      return _per_image(image, packed, feather, alpha, ref_image, soft_edges,
                        form=form, max_radius=max_radius, rgba_mode=rgba_mode)
    return _per_image_rows(image, packed, feather, alpha, ref_image,
                           soft_edges, max_radius=max_radius,
                           rgba_mode=rgba_mode)
  return _paste(image, packed, feather, alpha, ref_image, soft_edges,
                form=form, max_radius=max_radius, rgba_mode=rgba_mode)


def _paste(image, packed, feather, alpha, ref_image, soft_edges, *, form,
           max_radius, rgba_mode, rows_of=None):
  """`paste_core` for one SEGS. `rows_of`: `(H, [S] image index)` when
  `image` is a per-image batch stacked along its rows (`_per_image_rows`):
  segment `i`'s window is placed in its own image's `H` rows."""
  n, h, w, c = image.shape
  if rows_of is not None:
    h = rows_of[0]
  bucket = packed.masks.shape[-1]
  window = (min(bucket, h), min(bucket, w))
  compute = jnp.promote_types(image.dtype, jnp.float32)
  geo = _geometry(packed, (h, w), window, ref_image is not None)
  if rows_of is not None:
    rows = geo.ys + rows_of[1] * h
    # a shared reference frame ([1, H, W, C']) is cut at the image's own rows
    shared_ref = ref_image is not None and ref_image.shape[1] == h
    geo = geo._replace(ys=rows, ref_ys=geo.ys if shared_ref else rows)
  crops = packed.crops
  if crops.shape[1] > 1:
    crops = crops[:, :n]  # crops may carry more frames than the image
  pasted = (crops if ref_image is None else ref_image).shape[-1]
  if not validate.compatible_channels(c, pasted):
    raise ValueError(f"cannot paste {pasted}-channel pixels into a "
                     f"{c}-channel image (see validate.compatible_channels)")
  how = _Blend(feather=jnp.asarray(feather, jnp.int32),
               gain=jnp.asarray(alpha, compute) / 255,
               soft=jnp.asarray(soft_edges, bool),
               rule=blend_lib.rule(c, pasted, rgba_mode))
  if form == "cpu":
    return _cpu_form(image, packed, how, ref_image, crops, geo, window,
                     compute, max_radius)
  return _accelerator_form(image, packed, how, ref_image, crops, geo, window,
                           compute)


def _per_image_rows(image, packed: PackedSegs, feather, alpha, ref_image,
                    soft_edges, **static):
  """One SEGS per image, the CPU form: the images stacked along their rows
  (`[1, N * H, W, C]`, a free reshape) and one scan over every image's
  segments, each window offset into its own image's rows: the CPU form's
  branches stay branches (a `vmap` would turn them into selects)."""
  n, h, w, c = image.shape
  slots = packed.masks.shape[1]
  packed = jax.tree.map(lambda x: x.reshape((n * slots,) + x.shape[2:]),
                        packed)
  image_of = jnp.repeat(jnp.arange(n, dtype=jnp.int32), slots)
  if ref_image is not None and ref_image.shape[0] > 1:  # else one, shared
    ref_image = ref_image[:n].reshape((1, n * h) + ref_image.shape[2:])
  out = _paste(image.reshape(1, n * h, w, c), packed, feather, alpha,
               ref_image, soft_edges, form="cpu", rows_of=(h, image_of),
               **static)
  return out.reshape(n, h, w, c)


def _per_image(image, packed: PackedSegs, feather, alpha, ref_image,
               soft_edges, **static):
  """`paste_core` on every image alone with its own SEGS (a batch of one),
  `vmap` over images: the accelerator form, straight-line. (The CPU form
  scans all images' segments at once instead, `_per_image_rows`.)"""
  shared_ref = ref_image is not None and ref_image.shape[0] == 1

  def one(args):
    img, p, ref = args
    ref = ref_image if shared_ref else None if ref is None else ref[None]
    return paste_core(img[None], p, feather, alpha, ref, soft_edges,
                      **static)[0]

  refs = (None if ref_image is None or shared_ref
          else ref_image[:image.shape[0]])
  return jax.vmap(one)((image, packed, refs))


_STATIC = ("form", "max_radius", "rgba_mode")
_paste_jit = jax.jit(paste_core, static_argnames=_STATIC)
_paste_jit_donated = jax.jit(paste_core, static_argnames=_STATIC,
                             donate_argnums=0)


def paste(image, packed: PackedSegs, *, feather=5, alpha=255, ref_image=None,
          feather_mode: str = "node", rgba_mode: str = "composite",
          donate_image: bool = False) -> jax.Array:
  """Feathers each packed mask and blends its crop into every frame.

  The node's per-frame, per-segment loop as one XLA program: each
  segment's masks are feathered at their own size, resized to the pasted
  pixels' size, scaled by `alpha / 255` and blended into all frames at once,
  clipped at all four image edges, later segments on top. Works under
  `jax.jit`, `jax.vmap` and `jax.grad`; inputs are assumed valid
  (`segs_paste` and `pack_segs` check them).

  Args:
    image: `[N, H, W, C]` float array, values in [0, 1].
    packed: `PackedSegs` from `pack_segs` for this image's shape (or
      `make_packed_segs`); from a list of SEGS, one per image, every image
      takes its own (`PackedSegs.per_image`: a leading image axis).
    feather: int in 0..100 (traced: no new program per value), blur kernel
      size `2 * feather + 1`.
    alpha: scalar in [0, 255] (traced: differentiable), opacity.
    ref_image: optional `[N, H, W, C']` (or `[1, H, W, C']`); when given,
      the pasted pixels are cut from it at each crop region instead of taken
      from the crops, as the node's `ref_image_opt`.
    feather_mode: "node" (the node's feathering) or "soft_edges" (the same,
      times `feather.edge_ramp`: zero on the border of the pasted
      rectangle, unchanged from `2 * feather` pixels inward). Traced: both
      modes share one program.
    rgba_mode: "composite" (today's node: an RGBA image's alpha is
      composited, `a1 + a2 m (1 - a1)`) or "legacy" (the node before 2025:
      RGBA onto RGBA blends alpha like colour). RGB and RGBA pixels mix
      either way as `blend` describes; 1-channel images take 1-channel
      pixels only.
    donate_image: paste into `image`'s own buffer instead of a new one; the
      caller's `image` (a JAX array it no longer needs) is then deleted.

  Returns:
    `[N, H, W, C]` array of `image`'s dtype.
  """
  soft = validate.check_modes(feather_mode, rgba_mode)
  form = platform.form_of(image)
  kernel = _paste_jit_donated if donate_image else _paste_jit
  return kernel(image, packed.strip_meta(), feather, alpha, ref_image, soft,
                **static_args(form, feather), rgba_mode=rgba_mode)


def static_args(form: str, feather) -> dict:
  """The static arguments of the compiled core for a form and feather."""
  # Only the CPU form's program depends on the feather's bucket.
  max_radius = feather_lib.cpu_max_radius(feather) if form == "cpu" else 0
  return dict(form=form, max_radius=max_radius)
