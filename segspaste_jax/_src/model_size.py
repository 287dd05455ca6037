"""Crops at the model's resolution: resampled to one fixed size and back.

A detailer's model takes one fixed shape (a 512 x 512 image, a 64 x 64
latent) while regions vary from face to face. `crop_segs(..., size=(h,
w))` cuts each region into a bucket (`B x B`, region-aligned, zeros off the
image) and resamples the region alone, at its traced size, to `h x w`;
`resize_to_regions` resamples the model's output back to each region's own
size in the bucket, ready for `make_packed_segs` and `paste`. Both are two
matrix products per crop (`filters.axis_weights`): one compiled program
whatever the regions, no branches, differentiable.

Where a region lands in the model's input is a `CropTransform`:

- `fit="stretch"`: the region fills the whole `h x w` (each axis scaled on
  its own).
- `fit="contain"`: one scale for both axes, `min(h / rh, w / rw)` for a
  region of `rh x rw`; the limiting axis fills the output and the other is
  `round(side * scale)` (at least 1), centred (offset `(size - content) //
  2`), with zeros around it. This is what resizing the crop to that
  content size and pasting it centred on a zero canvas gives.

Filters follow Pillow's convention (`filters`): antialiased when
shrinking, normalised over the taps inside the region, so pixels outside
the region (and, on the way back, outside the content box) are never read.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax._src import filters
from segspaste_jax._src import trace_checks as checks

FITS = ("stretch", "contain")


@dataclasses.dataclass(frozen=True, eq=False)
class CropTransform:
  """Where each region lies in the model-resolution crops; a pytree.

  `S` segments; arrays carry a frame axis `N` after `S` for per-frame
  regions (`[S, N, 4]`), one transform per segment and frame.

  Attributes:
    sizes: `[S, 2]` or `[S, N, 2]` int32 `(h, w)`: the region's size in the
      bucket, `(y2 - y1, x2 - x1)` clipped to `[0, B]` (the crop extent
      `crop_segs` reports and `make_packed_segs` pastes by default).
    content: `[S, 4]` or `[S, N, 4]` int32 `(top, left, h, w)`: the box of
      the model-resolution crop that shows the region; `(0, 0, *size)`
      for `fit="stretch"`, all 0 for an empty region.
    scales: `[S, 2]` or `[S, N, 2]` float32 `(content h / region h,
      content w / region w)`, 0 for an empty region.
    bucket: static `B`, the bucket side.
    size: static `(h, w)`, the model's resolution.
  """

  sizes: Any
  content: Any
  scales: Any
  bucket: int
  size: tuple[int, int]

  @property
  def per_frame(self) -> bool:
    """Whether there is one transform per segment and frame."""
    return self.sizes.ndim == 3


jax.tree_util.register_dataclass(
    CropTransform, data_fields=["sizes", "content", "scales"],
    meta_fields=["bucket", "size"])


class ModelCrops(NamedTuple):
  """What `crop_segs(..., size=(h, w))` returns.

  Attributes:
    crops: `[S, N, h, w, C]` float (float32, or float64 for a float64
      image under x64): every segment's region of every frame resampled
      to the model's resolution (integer images keep their value scale).
    transform: `CropTransform`, for `resize_to_regions` (and
      `resize_to_model` on masks).
  """

  crops: jax.Array
  transform: CropTransform


def make_transform(extent, bucket: int, size: tuple[int, int],
                   fit: str) -> CropTransform:
  """The `CropTransform` of regions of size `extent` (`[..., 2]` int32)."""
  mh, mw = size
  eh, ew = extent[..., 0], extent[..., 1]
  empty = (eh == 0) | (ew == 0)
  if fit == "stretch":
    ch, cw = jnp.full_like(eh, mh), jnp.full_like(ew, mw)
  else:
    # The limiting axis fills the output; the other is rounded half up,
    # in int32 (exact: checks.model_size keeps 2 * B * side below 2**31).
    tall = mh * ew <= mw * eh
    safe_h, safe_w = jnp.maximum(eh, 1), jnp.maximum(ew, 1)
    ch = jnp.where(tall, mh, jnp.clip((2 * eh * mw + safe_w) // (2 * safe_w),
                                      1, mh))
    cw = jnp.where(tall, jnp.clip((2 * ew * mh + safe_h) // (2 * safe_h), 1,
                                  mw), mw)
  ch, cw = jnp.where(empty, 0, ch), jnp.where(empty, 0, cw)
  content = jnp.stack([(mh - ch) // 2, (mw - cw) // 2, ch, cw], axis=-1)
  real = jnp.float32
  scales = jnp.stack([ch.astype(real) / jnp.maximum(eh, 1).astype(real),
                      cw.astype(real) / jnp.maximum(ew, 1).astype(real)],
                     axis=-1)
  return CropTransform(sizes=extent.astype(jnp.int32),
                       content=content.astype(jnp.int32), scales=scales,
                       bucket=bucket, size=(mh, mw))


def _apply(x, rows, cols):
  """`out[s, f, u, v, c] = sum_jl rows[s, (f,) u, j] x[s, f, j, l, c]
  cols[s, (f,) v, l]`, the cheaper axis first, at full precision."""
  f = "f" if rows.ndim == 4 else ""
  u, j = rows.shape[-2:]
  v, k = cols.shape[-2:]
  hi = lax.Precision.HIGHEST
  if u * j * k + u * k * v <= v * k * j + v * j * u:
    y = jnp.einsum(f"s{f}uj,sfjlc->sfulc", rows, x, precision=hi)
    return jnp.einsum(f"s{f}vl,sfulc->sfuvc", cols, y, precision=hi)
  y = jnp.einsum(f"s{f}vl,sfjlc->sfjvc", cols, x, precision=hi)
  return jnp.einsum(f"s{f}uj,sfjvc->sfuvc", rows, y, precision=hi)


def _resample(x, transform: CropTransform, method, to_model: bool):
  """Both directions; `x` is checked against the transform here."""
  if not isinstance(transform, CropTransform):
    raise TypeError("transform: expected a CropTransform (what crop_segs("
                    f"..., size=...) returns as .transform), got "
                    f"{type(transform).__name__}")
  side = ((transform.bucket,) * 2) if to_model else transform.size
  x, masks = checks.resample_input(x, "x", transform.sizes.shape, side)
  method = checks.method(method, masks)
  return _resample_core(x, transform, method=method, to_model=to_model)


@functools.partial(jax.jit, static_argnames=("method", "to_model"))
def _resample_core(x, transform: CropTransform, method: str, to_model: bool):
  bucket, size = transform.bucket, transform.size
  masks = x.ndim == 4
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  if masks:
    x = x[..., None]
  if transform.per_frame:
    x = jnp.broadcast_to(x, transform.sizes.shape[:2] + x.shape[2:])
  region = (jnp.zeros_like(transform.sizes), transform.sizes)
  content = (transform.content[..., :2], transform.content[..., 2:])

  def axis(k: int):
    (dst_start, dst_size), (src_start, src_size) = (
        (content, region) if to_model else (region, content))
    out_len = size[k] if to_model else bucket
    return filters.axis_weights(out_len, x.shape[2 + k], dst_start[..., k],
                                dst_size[..., k], src_start[..., k],
                                src_size[..., k], method, dtype)

  out = _apply(x.astype(dtype), axis(0), axis(1))
  return jnp.clip(out[..., 0], 0, 1) if masks else out


def resize_to_model(x, transform: CropTransform, *, method: str | None = None):
  """Resamples region-aligned bucket arrays to the model's resolution.

  What `crop_segs(..., size=...)` does to the image's pixels, for other
  arrays cut at the same regions: masks above all (an inpainting model's
  mask), or crops that `crop_segs` cut at the regions' own size.

  Args:
    x: `[S, F, B, B, C]` pixels or `[S, F, B, B]` masks, region-aligned
      (pixel `(u, v)` shows image pixel `(y1 + u, x1 + v)`; what lies past
      the region's size is not read); floating or integer. `F` frames; for
      a per-frame transform `F` is `N` or 1 (used for every frame).
    transform: the `CropTransform` of `crop_segs(..., size=...)`.
    method: "linear", "cubic", "lanczos3" or "lanczos5"; default
      "lanczos3" for pixels and "linear" (which never rings) for masks.

  Returns:
    `[S, F', h, w, C]` or `[S, F', h, w]` float (`F'` is `N` for a
    per-frame transform, else `F`); zero outside each content box; masks
    clipped to [0, 1].

  Raises:
    TypeError, ValueError: at trace time, naming the argument, for a shape
      that does not match the transform or an unknown method.
  """
  return _resample(x, transform, method, True)


def resize_to_regions(x, transform: CropTransform, *,
                      method: str | None = None):
  """Resamples model-resolution crops back to every region's own size.

  The inverse of `crop_segs(..., size=...)`: each crop's content box
  (`transform.content`) is resampled to its region's size, antialiased
  when shrinking, into the top-left corner of a `B x B` bucket, zeros
  elsewhere: the region-aligned crops `make_packed_segs(regions, masks,
  crops)` takes, so that `paste` puts every crop exactly over its region.
  With the identity in between, the round trip returns the region's pixels
  up to the two resamplings' error, and exactly where a scale is 1.

  Masks made at the model's resolution come back the same way (pass them
  as `[S, F, h, w]`); masks made at the region's size (a detector's) need
  nothing: `make_packed_segs` takes them as they are.

  Args:
    x: `[S, F, h, w, C]` pixels (e.g. a model's output on
      `ModelCrops.crops`) or `[S, F, h, w]` masks; floating or integer.
      `F` frames; for a per-frame transform `F` is `N` or 1.
    transform: `ModelCrops.transform`.
    method: "linear", "cubic", "lanczos3" or "lanczos5"; default
      "lanczos3" for pixels (the Impact Pack's way back, Pillow's LANCZOS)
      and "linear" (which never rings) for masks.

  Returns:
    `[S, F', B, B, C]` or `[S, F', B, B]` float (`F'` is `N` for a
    per-frame transform, else `F`), zero past each region's size; masks
    clipped to [0, 1].

  Raises:
    TypeError, ValueError: at trace time, naming the argument, for a shape
      that does not match the transform or an unknown method.
  """
  return _resample(x, transform, method, False)
