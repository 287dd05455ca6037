"""`crop_segs`: the inverse of the paste, cutting crop regions out of frames.

A detailer crops each segment's region out of the image, re-details the
crop and pastes it back. `paste` places crop pixel `(u, v)` of a segment at
image pixel `(y1 + u, x1 + v)` (its `crop_region`'s unclipped origin) and
clips at all four image edges; `crop_segs` is the matching cut:

    crops[s, n, u, v] = image[n, y1 + u, x1 + v]   where that pixel exists
                                                   and u < y2 - y1,
                                                   v < x2 - x1 (and < B),
                       0                           elsewhere.

So a region that starts left of or above the image keeps its geometry: the
part of the region inside the image sits in the crop at offset
`(max(-y1, 0), max(-x1, 0))`, the rows and columns before it (off the image)
are zero. This is what makes crop -> paste the identity for every region,
inside, touching or crossing any border (`paste` with full masks, feather 0
and alpha 255 writes each pixel back where it came from), and keeps a
region-sized mask aligned pixel for pixel with the crop (no resize). The
Impact Pack's own crop (`image[:, y1:y2, x1:x2]`) agrees wherever the origin
is inside the image; at negative origins Python slicing wraps around.

`SegCrops.sizes` is the crop's extent (the region's size, at most `B`), the
`crop_sizes` to paste it back with; `SegCrops.visible` says which part of it
holds image pixels, and its `(h, w)` are the sizes of the reference pixels
`paste(..., ref_image=image)` cuts at the same region (`_geometry(...,
with_ref=True)`: `min(y2, H) - max(y1, 0)` clipped at 0, likewise for x)
whenever the region fits the bucket.

With `size=(h, w)`, each region is then resampled alone to the model's
resolution (`model_size`): what a detailer's model takes.

Regions may also be given per frame (`[S, N, 4]`: a face that moves
through a video), each frame cut at its own region.

Everything is traced except the bucket side (and the model's size, fit and
filter): one compiled program per `(image shape, S, B)`, whatever the
regions.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segspaste_jax._src import model_size, trace_checks


class SegCrops(NamedTuple):
  """What `crop_segs` returns; `S` segments, `N` frames, bucket side `B`.

  For per-frame regions (`[S, N, 4]`), `sizes` and `visible` carry a frame
  axis too (`[S, N, 2]`, `[S, N, 4]`), each frame cut at its own region.

  Attributes:
    crops: `[S, N, B, B, C]` of the image's dtype: segment `s`'s crop pixel
      `(u, v)` of frame `n` is `image[n, y1 + u, x1 + v]` for
      `u < sizes[s, 0]`, `v < sizes[s, 1]` where that pixel lies in the
      image, else 0.
    sizes: `[S, 2]` int32 `(h, w)`: the crop's extent, `(y2 - y1, x2 - x1)`
      clipped to `[0, B]`. Pass it (or nothing: it is the default) as
      `crop_sizes` to `make_packed_segs` to paste the crops back.
    visible: `[S, 4]` int32 `(top, left, h, w)`: the part of the crop that
      holds image pixels, rows `top .. top + h`, columns `left .. left + w`;
      `top = clip(-y1, 0, B)`, `h = max(min(min(y2, H) - y1, B) - top, 0)`,
      likewise for x. For a region that fits the bucket, `(h, w)` is
      exactly the extent `paste` clips a reference image to (origin
      `(max(y1, 0), max(x1, 0))`, extent `min(y2, H) - max(y1, 0)` clipped
      at 0), and `(top, left)` is where that origin lies in the crop.
  """

  crops: jax.Array
  sizes: jax.Array
  visible: jax.Array


def region_extent(regions, bucket: int, low: int = 0):
  """`[..., 2]` int32 `(y2 - y1, x2 - x1)` clipped to `[low, bucket]`."""
  x1, y1, x2, y2 = (regions[..., k] for k in range(4))
  # min(y2 - y1, bucket) as y2 - max(y1, y2 - bucket): y2 - y1 itself may
  # be 2**31 (from -2**30 to 2**30)
  extent = [b - jnp.maximum(a, b - bucket) for a, b in ((y1, y2), (x1, x2))]
  return jnp.clip(jnp.stack(extent, axis=-1), low, bucket)


def visible(regions, extent, image_hw, bucket: int):
  """`SegCrops.visible` `[..., 4]` of regions `[..., 4]` with crop extent
  `[..., 2]` in an image of `image_hw`."""
  h, w = image_hw
  x1, y1, x2, y2 = (regions[..., k] for k in range(4))
  top = jnp.clip(-y1, 0, bucket)
  left = jnp.clip(-x1, 0, bucket)
  bottom = jnp.minimum(jnp.minimum(y2, h) - y1, extent[..., 0])
  right = jnp.minimum(jnp.minimum(x2, w) - x1, extent[..., 1])
  return jnp.stack([top, left, jnp.maximum(bottom - top, 0),
                    jnp.maximum(right - left, 0)], axis=-1)


def _cut(image, regions, bucket: int) -> SegCrops:
  """`crop_segs` for `[S, 4]` regions, shared by every frame."""
  n, h, w, c = image.shape
  b = bucket
  extent = region_extent(regions, b)
  # b zeros on every side: a slice start clamped into [-b, H] (or [-b, W])
  # then reads either the exact pixels or zeros, never clamped-away ones.
  padded = jnp.pad(image, [(0, 0), (b, b), (b, b), (0, 0)])
  zero = jnp.zeros((), jnp.int32)
  rows = jnp.arange(b, dtype=jnp.int32)

  def one(region, size):
    ys = jnp.clip(region[1], -b, h) + b
    xs = jnp.clip(region[0], -b, w) + b
    win = lax.dynamic_slice(padded, (zero, ys, xs, zero), (n, b, b, c))
    keep = (rows < size[0])[:, None] & (rows < size[1])[None, :]
    return jnp.where(keep[None, :, :, None], win, jnp.zeros((), image.dtype))

  crops = jax.vmap(one)(regions, extent)
  return SegCrops(crops, extent, visible(regions, extent, (h, w), b))


def _cut_any(image, regions, bucket: int) -> SegCrops:
  """`_cut`, or for `[S, N, 4]` regions, each frame at its own."""
  if regions.ndim == 2:
    return _cut(image, regions, bucket)

  def frame(img, frame_regions):
    cut = _cut(img[None], frame_regions, bucket)
    return cut._replace(crops=cut.crops[:, 0])

  return jax.vmap(frame, in_axes=(0, 1), out_axes=1)(image, regions)


def cut_one(image, region, extent, frame, bucket: int):
  """One crop of `crop_segs`: `[B, B, C]` of frame `frame` at `region`
  (`[4]`), zero past `extent` (`[2]`) and off the image.

  No padded copy of the image (a loop would write one out): the window is
  sliced where it lies inside the image, then its rows and columns are
  picked (and the ones off the image zeroed) by the offset the clamp cost.
  """
  _, h, w, c = image.shape
  wh, ww = min(bucket, h), min(bucket, w)
  rows = jnp.arange(bucket, dtype=jnp.int32)
  ys, xs = jnp.clip(region[1], -bucket, h), jnp.clip(region[0], -bucket, w)
  y0, x0 = jnp.clip(ys, 0, h - wh), jnp.clip(xs, 0, w - ww)
  zero = jnp.zeros((), jnp.int32)
  win = lax.dynamic_slice(image, (frame, y0, x0, zero), (1, wh, ww, c))[0]
  r, k = rows + (ys - y0), rows + (xs - x0)
  keep_r = (rows < extent[0]) & (r >= 0) & (r < wh)
  keep_k = (rows < extent[1]) & (k >= 0) & (k < ww)
  win = jnp.take(win, jnp.clip(r, 0, wh - 1), axis=0)
  win = jnp.take(win, jnp.clip(k, 0, ww - 1), axis=1)
  keep = keep_r[:, None, None] & keep_k[None, :, None]
  return jnp.where(keep, win, jnp.zeros((), image.dtype))


def model_inputs(image, regions, transform: model_size.CropTransform,
                 method: str):
  """A crop at a time to the model's resolution: `(args, one, dtype)`.

  `args` holds every crop's region, size, frame and resampling
  parameters, `[S * N, ...]` (segment-major); `one(args[k], branch=False)`
  cuts crop `k` (`cut_one`) and resamples it to `[h, w, C]` of `dtype`
  (the image's, promoted to float).
  `branch=True` (in a loop) cuts in a branch of its own (empty regions cut
  nothing), which keeps the cut a buffer: fused into the resampling's
  gather, each pixel would be cut again for every window that reads it.
  """
  n, c = image.shape[0], image.shape[-1]
  bucket = transform.bucket
  dtype = jnp.promote_types(image.dtype, jnp.float32)
  up, p0, p1 = model_size.resampler(transform, method, True,
                                    (bucket, bucket), dtype)
  frame = jnp.tile(jnp.arange(n, dtype=jnp.int32), regions.shape[0])
  per_crop = functools.partial(model_size.every_crop, transform=transform,
                               frames=n)
  args = per_crop((regions, transform.sizes)) + (frame,) + per_crop((p0, p1))

  def one(a, branch: bool = False):
    region, extent, f, q0, q1 = a
    cut = functools.partial(cut_one, image, region, extent, f, bucket)
    if branch:
      crop = lax.cond(jnp.all(extent > 0), cut,
                      lambda: jnp.zeros((bucket, bucket, c), image.dtype))
    else:
      crop = cut()
    return up(crop.astype(dtype), q0, q1)

  return args, one, dtype


@functools.partial(jax.jit, static_argnames=("bucket",))
def _crop_core(image, regions, bucket: int) -> SegCrops:
  return _cut_any(image, regions, bucket)


@functools.partial(jax.jit,
                   static_argnames=("bucket", "size", "fit", "method", "loop"))
def _model_core(image, regions, bucket: int, size, fit: str,
                method: str, loop: bool | None) -> model_size.ModelCrops:
  transform = model_size.make_transform(region_extent(regions, bucket),
                                        bucket, size, fit)

  def batched():  # every crop at once: the accelerator form
    cut = _cut_any(image, regions, bucket)
    return model_size.resample(cut.crops, transform, method, to_model=True,
                               loop=False)

  def looped():  # a crop at a time, cut inside the loop: the CPU form
    args, one, _ = model_inputs(image, regions, transform, method)
    out = lax.map(functools.partial(one, branch=True), args)
    return out.reshape((regions.shape[0], image.shape[0]) + out.shape[1:])

  if loop is None:
    crops = lax.platform_dependent(cpu=looped, default=batched)
  else:
    crops = looped() if loop else batched()
  return model_size.ModelCrops(crops, transform)


def _check_fits_bucket(regions, bucket: int) -> None:
  """On the way to a model, a region larger than the bucket would be cut to
  its top-left `B x B` and that part alone scaled and fitted: a picture
  the caller did not ask for. Refused where the regions are known (not
  traced: inside a caller's `jit` nothing can be read without a host
  round trip, and the docs say so)."""
  if isinstance(regions, jax.core.Tracer):
    return
  r = np.asarray(regions, np.int64)
  sides = np.stack([r[..., 3] - r[..., 1], r[..., 2] - r[..., 0]], axis=-1)
  over = np.argwhere((sides > bucket).any(axis=-1))
  if over.size:
    where = tuple(int(v) for v in over[0])
    at = f"[{where[0]}]" if len(where) == 1 else f"[{where[0]}, {where[1]}]"
    h, w = (int(v) for v in sides[where])
    raise ValueError(
        f"regions{at}: a {h} x {w} region does not fit bucket_size {bucket} "
        "(with size=..., the whole region must reach the model): use a "
        "bucket_size of at least the largest region side")


def check_cut_args(image, regions, bucket_size):
  """`(bucket, image, regions)` checked at trace time: as `crop_segs`
  takes them (per-frame regions' N must be the image's)."""
  bucket = trace_checks.bucket(bucket_size)
  image = trace_checks.image(image)
  regions = trace_checks.regions(regions, per_frame=True)
  if regions.ndim == 3 and regions.shape[1] != image.shape[0]:
    raise ValueError(f"regions: expected [S, N, 4] with N = {image.shape[0]} "
                     f"(the image's frames), got shape {regions.shape}")
  return bucket, image, regions


def check_model_args(regions, bucket: int, size, fit, method):
  """`(size, fit, method)` checked at trace time, and concrete regions
  against the bucket: the way to a model's resolution."""
  size = trace_checks.model_size(size, bucket)
  _check_fits_bucket(regions, bucket)
  fit = trace_checks.choice(fit, "fit", model_size.FITS)
  method = trace_checks.method(method, masks=False)
  return size, fit, method


def crop_segs(image, regions, bucket_size: int, *, size=None,
              fit: str = "stretch", method: str = "lanczos3"):
  """Cuts every segment's crop region out of every frame (jit-compiled).

  The inverse of `paste`'s placement: crop pixel `(u, v)` is image pixel
  `(y1 + u, x1 + v)`, zero where that is off the image or past the region
  (see the module docstring for regions crossing the borders). Pasting the
  crops back at the same regions with `crop_sizes=sizes` (the default of
  `make_packed_segs`), full masks, feather 0 and alpha 255 gives the image
  back exactly. Regions are traced (one program per shape), and the cut is
  differentiable with respect to `image`; works under `jax.jit`,
  `jax.vmap` and `jax.grad`.

  With `size=(h, w)`, every region is then resampled alone (taps never
  read past it) to the model's resolution, antialiased when shrinking;
  `resize_to_regions` brings the model's output back (see
  `model_size`).

  Args:
    image: `[N, H, W, C]` floating or integer array (its dtype is kept; one
      padded copy of it is made, `B` zeros on every side).
    regions: `[S, 4]` integer `(x1, y1, x2, y2)`, end exclusive, any values
      (coordinates beyond +-2**30 are clamped to +-2**30); an empty region
      (`x2 <= x1` or `y2 <= y1`) gives an all-zero crop of size 0. Or
      `[S, N, 4]`: one region per segment and frame.
    bucket_size: static Python int `B` >= 1, the crops' side. A region
      larger than `B` is cut to its top-left `B x B`; with `size`, such a
      region is refused (`ValueError`) where the regions are concrete,
      and cut the same way, its scale and fit computed from the cut,
      where they are traced (inside a caller's `jit`).
    size: optional static `(h, w)`, the model's resolution: return
      `ModelCrops` instead of `SegCrops`.
    fit: with `size`, static: "stretch" (the region fills `h x w`, each
      axis scaled on its own) or "contain" (aspect kept, centred, zeros
      around; `transform.content` says where).
    method: with `size`, static: the filter, "lanczos3" (Pillow's LANCZOS,
      as the Impact Pack's detailer), "lanczos5", "cubic" or "linear".

  Returns:
    Without `size`: `SegCrops(crops [S, N, B, B, C], sizes [S, 2], visible
    [S, 4])`, see `SegCrops`. With `size`: `ModelCrops(crops [S, N, h, w,
    C], transform)`, float crops (float32, float64 for float64 images),
    see `ModelCrops` and `CropTransform`.

  Raises:
    TypeError, ValueError: at trace time, naming the argument, for a wrong
      rank or dtype (non-integer regions, a non-numeric image), per-frame
      regions whose N is not the image's, a bad `bucket_size`, `size`,
      `fit` or `method`, or `fit`/`method` without `size`; with `size`,
      a concrete region larger than the bucket, naming its index.
  """
  bucket, image, regions = check_cut_args(image, regions, bucket_size)
  if size is None:
    for name, value, default in (("fit", fit, "stretch"),
                                 ("method", method, "lanczos3")):
      if value not in (None, default):
        raise ValueError(f"{name}: only used with size=(h, w), got "
                         f"{value!r} without it")
    return _crop_core(image, regions, bucket)
  size, fit, method = check_model_args(regions, bucket, size, fit, method)
  return _model_core(image, regions, bucket, size, fit, method,
                     loop=model_size.loop_for(image))
