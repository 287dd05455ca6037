"""Crops at the model's resolution: resampled to one fixed size and back.

A detailer's model takes one fixed shape (a 512 x 512 image, a 64 x 64
latent) while regions vary from face to face. `crop_segs(..., size=(h,
w))` cuts each region into a bucket (`B x B`, region-aligned, zeros off the
image) and resamples the region alone, at its traced size, to `h x w`;
`resize_to_regions` resamples the model's output back to each region's own
size in the bucket, ready for `make_packed_segs` and `paste`. Each axis
of each crop is resampled in the form its static shapes make cheapest
(`plan`): tiles of the few taps each output needs (`filters.axis_band`
to the model, `filters.axis_spread` back), or one dense matrix
(`filters.axis_weights`) where the taps cover the axis. One compiled
program whatever the regions (the taps' count is bounded by the bucket
and the model's size, `max_stretch`), no branches, differentiable.

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
import numpy as np
from jax import lax

from segspaste_jax._src import filters, platform
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


def max_stretch(bucket: int, size: tuple[int, int]) -> tuple[float, float]:
  """Per axis, the largest `region side / content side` of any transform
  `make_transform` makes for a bucket `B` and model size `(h, w)`, either
  fit (static: it sizes the banded resampling's taps).

  The content side is the model's side (stretch, or the limiting axis of
  contain) or, on contain's other axis, `round(e * m_o / e_o)` clipped to
  `[1, m]`, which falls as the other side `e_o` grows: at `e_o = B` it is
  smallest. So `e / clip(round(e * m_o / B), 1, m)` over `e = 1 .. B`
  bounds both fits.
  """
  e = np.arange(1, bucket + 1, dtype=np.int64)
  bounds = []
  for k in (0, 1):
    m, other = size[k], size[1 - k]
    low = np.clip((2 * e * other + bucket) // (2 * bucket), 1, m)
    bounds.append(float(np.max(e / low)))
  return bounds[0], bounds[1]


# The banded forms' tiles, and what one of their multiply-adds costs
# against one of the dense form's (measured on a CPU: see `_form`).
TILE = {"band": 32, "spread": 16}
BAND_COST = 3.0
SPREAD_COST = 5.0


def _form(out_len: int, in_len: int, window: int, tile: int,
          banded: str) -> str:
  """"dense", or `banded` ("band": tiles of outputs gathering windows of
  inputs; "spread": tiles of inputs added into windows of outputs) where
  its multiply-adds, weighted, are fewer.

  All three are matrix products: the dense form does `out_len * in_len`
  multiply-adds per line, a banded one `tile * window` per tile, on small
  matrices after a gather of the windows (and, spread, a scatter that adds the
  tiles' parts into the output). On a CPU a banded multiply-add costs about
  `BAND_COST` (`SPREAD_COST`) dense ones (BENCHMARKS.md), so with Lanczos 3
  and no shrinking (windows of 38 for the band's tiles of 32, 22 for the
  spread's 16) the band pays from about 115 inputs and the spread from about
  110 outputs; below that, and wherever the window covers the whole axis, the
  dense form stays. The same rule holds on GPUs and TPUs, unmeasured: at full
  float32 precision their matrix units do not apply, the banded forms do a
  tenth of the dense form's FLOPs at W2's shapes, and the roofline puts the
  two level on an H100 even with the bytes XLA:CPU counts for the gathered
  windows, the banded ahead where a GPU's fusion keeps them in cache
  (BENCHMARKS.md, the accelerator on paper).
  """
  if window >= (in_len if banded == "band" else out_len):
    return "dense"
  dense = _cost("dense", tile, window, out_len, in_len)
  return banded if _cost(banded, tile, window, out_len, in_len) < dense else (
      "dense")


def _along(x, axis: int, fn):
  """`fn` on `x` with `axis` moved to the front, moved back after."""
  return jnp.moveaxis(fn(jnp.moveaxis(x, axis, 0)), 0, axis)


def _pass(x, axis: int, form: str, params, out_len: int):
  """One axis (0 or 1) of one crop `[L0, L1, C]` in the given form."""
  hi = lax.Precision.HIGHEST
  if form == "dense":
    (matrix,) = params
    return _along(x, axis, lambda y: jnp.tensordot(matrix, y, axes=1,
                                                   precision=hi))
  if form == "band":
    # small matrix products, one per tile: [tile, window] by the window
    start, weights = params
    tiles, tile, window = weights.shape
    rows = start[:, None] + jnp.arange(window, dtype=jnp.int32)
    if axis == 0:
      out = jnp.einsum("iuw,iwlc->iulc", weights, x[rows], precision=hi)
      return out.reshape((tiles * tile,) + x.shape[1:])[:out_len]
    out = jnp.einsum("iuw,liwc->liuc", weights, x[:, rows], precision=hi)
    return out.reshape((x.shape[0], tiles * tile, x.shape[2]))[:, :out_len]
  # spread: along the first axis of a 2-D array, the other axis and the
  # channels flattened (rows and columns swapped around a column pass), so
  # that its fused multiply-adds and scatter run along one long contiguous
  # axis rather than the 3 channels
  swap = lambda a: jnp.swapaxes(a, 0, 1)
  y = swap(x) if axis == 1 else x
  out = _spread(y.reshape(y.shape[0], -1), params, out_len).reshape(
      (out_len,) + y.shape[1:])
  return swap(out) if axis == 1 else out


def _spread(x, params, out_len: int):
  """The spread form along the first axis of `x` `[L, M]`: `[out_len, M]`.

  part[tile i, w] = sum_u weights[i, w, u] x[i * tile + u]: the tile's
  terms unrolled (static) into one fused multiply-add, which XLA:CPU runs
  faster here than small batched products; then added into the outputs at
  each tile's window, and divided by each output's total weight.
  """
  start, weights, total = params
  tiles, window, tile = weights.shape
  rows = start[:, None] + jnp.arange(window, dtype=jnp.int32)
  g = jnp.pad(x, [(0, tiles * tile - x.shape[0]), (0, 0)]).reshape(
      (tiles, tile, x.shape[1]))
  part = sum(weights[:, :, u, None] * g[:, u, None] for u in range(tile))
  out = jnp.zeros((out_len, x.shape[1]), x.dtype).at[rows].add(part)
  scale = total[:, None]
  return jnp.where(scale != 0, out / jnp.where(scale != 0, scale, 1), 0)


def loop_for(x) -> bool | None:
  """The resampling's form for crops `x`: True (a loop over crops) for an
  array known, before tracing, to live on a CPU; False for one on an
  accelerator; None for a tracer, whose program then holds both forms and
  takes the one for the platform it is compiled for
  (`lax.platform_dependent`).

  A loop keeps each crop's intermediates (the gathered windows, each
  pass's transposes) small enough for the caches, and XLA:CPU allocates
  them once for all crops instead of writing every crop's out at once into
  fresh memory; on an accelerator all crops at once keep the device busy.
  """
  if isinstance(x, jax.core.Tracer):
    return None
  return platform.form_of(x) == "cpu"


def resample(x, transform: CropTransform, method, to_model: bool,
             form: str | None = None, loop: bool | None = None):
  """Both directions; `x` is checked against the transform here.

  `loop`: resample one crop after another (`lax.map`, the CPU form) or
  all at once (`vmap`, the accelerator form); None: `loop_for(x)`.
  """
  if loop is None:
    loop = loop_for(x)
  if not isinstance(transform, CropTransform):
    raise TypeError("transform: expected a CropTransform (what crop_segs("
                    f"..., size=...) returns as .transform), got "
                    f"{type(transform).__name__}")
  side = ((transform.bucket,) * 2) if to_model else transform.size
  x, masks = checks.resample_input(x, "x", transform.sizes.shape, side)
  method = checks.method(method, masks)
  return _resample_core(x, transform, method=method, to_model=to_model,
                        form=form, loop=loop)


def every_crop(tree, transform: CropTransform, frames: int):
  """Per-segment (`[S, ...]`) or, for a per-frame transform, per-crop
  (`[S, N, ...]`) arrays of `tree`, one entry per crop: `[S * frames,
  ...]`, segment-major."""
  def flat(q):
    s = q.shape[0]
    if not transform.per_frame:
      q = jnp.broadcast_to(q[:, None], (s, frames) + q.shape[1:])
    return q.reshape((s * frames,) + q.shape[2:])
  return jax.tree.map(flat, tree)


def plan(transform: CropTransform, method: str, to_model: bool,
         in_side: tuple[int, int], form: str | None = None,
         tile: int | None = None):
  """Per axis `(form, taps, out_len, in_len)`: the static plan of a
  resampling; `form` forces "dense" or the banded form for tests."""
  bucket, size = transform.bucket, transform.size
  stretch = max_stretch(bucket, size)
  out = []
  for k in (0, 1):
    out_len = size[k] if to_model else bucket
    in_len = in_side[k]
    taps = filters.band_taps(method, stretch[k])
    banded = "band" if to_model else "spread"
    tile = min(tile or TILE[banded], in_len if banded == "spread" else out_len)
    window = filters.tile_window(taps, tile, stretch[k])
    if form is None:
      chosen = _form(out_len, in_len, window, tile, banded)
    elif form == "dense" or window > (in_len if to_model else out_len):
      chosen = "dense"
    else:
      chosen = banded
    out.append((chosen, tile, window, out_len, in_len))
  return tuple(out)


def _cost(form: str, tile: int, window: int, out_len: int,
          in_len: int) -> float:
  """Multiply-adds per line of the other axis, weighted (`_form`)."""
  if form == "dense":
    return out_len * in_len
  if form == "band":
    return -(-out_len // tile) * tile * window * BAND_COST
  return -(-in_len // tile) * tile * window * SPREAD_COST


def resampler(transform: CropTransform, method: str, to_model: bool,
               in_side: tuple[int, int], dtype, form: str | None = None,
               tile: int | None = None):
  """`(one, p0, p1)`: `one(y, p0, p1)` resamples one crop `[L0, L1, C]`
  with its rows' and columns' parameters; `p0`, `p1` hold every crop's,
  with leading `[S]` (or `[S, N]` for a per-frame transform)."""
  steps = plan(transform, method, to_model, in_side, form, tile)
  region = (jnp.zeros_like(transform.sizes), transform.sizes)
  content = (transform.content[..., :2], transform.content[..., 2:])

  def params(k: int):
    (dst_start, dst_size), (src_start, src_size) = (
        (content, region) if to_model else (region, content))
    chosen, tile, window, out_len, in_len = steps[k]
    args = (dst_start[..., k], dst_size[..., k], src_start[..., k],
            src_size[..., k], method, dtype)
    if chosen == "dense":
      return (filters.axis_weights(out_len, in_len, *args),)
    if chosen == "band":
      return filters.axis_band(out_len, in_len, tile, window, *args)
    return filters.axis_spread(out_len, in_len, tile, window, *args)

  # the cheaper axis first: the second pass then runs on fewer lines
  c0, c1 = _cost(*steps[0]), _cost(*steps[1])
  (_, _, _, o0, i0), (_, _, _, o1, i1) = steps
  rows_first = c0 * i1 + c1 * o0 <= c1 * i0 + c0 * o1
  order = (0, 1) if rows_first else (1, 0)

  def one(y, p0, p1):
    for axis in order:
      y = _pass(y, axis, steps[axis][0], (p0, p1)[axis], steps[axis][3])
    return y

  return one, params(0), params(1)


@functools.partial(jax.jit, static_argnames=("method", "to_model", "form",
                                             "tile", "loop"))
def _resample_core(x, transform: CropTransform, method: str, to_model: bool,
                   form: str | None = None, tile: int | None = None,
                   loop: bool | None = None):
  masks = x.ndim == 4
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  if masks:
    x = x[..., None]
  per_frame = transform.per_frame
  if per_frame:
    x = jnp.broadcast_to(x, transform.sizes.shape[:2] + x.shape[2:])
  one, p0, p1 = resampler(transform, method, to_model, x.shape[2:4], dtype,
                           form, tile)

  def batched(x, p0, p1):  # every crop at once: the accelerator form
    frames = jax.vmap(one, in_axes=(0, 0 if per_frame else None,
                                    0 if per_frame else None))
    return jax.vmap(frames)(x, p0, p1)

  def looped(x, p0, p1):  # one crop after another: the CPU form
    s, n = x.shape[:2]
    params = every_crop((p0, p1), transform, n)
    out = lax.map(lambda a: one(a[0], *a[1]),
                  (x.reshape((s * n,) + x.shape[2:]), params))
    return out.reshape((s, n) + out.shape[1:])

  args = (x.astype(dtype), p0, p1)
  if loop is None:
    out = lax.platform_dependent(*args, cpu=looped, default=batched)
  else:
    out = (looped if loop else batched)(*args)
  return jnp.clip(out[..., 0], 0, 1) if masks else out


def resize_to_model(x, transform: CropTransform, *, method: str | None = None):
  """Resamples region-aligned bucket arrays to the model's resolution.

  What `crop_segs(..., size=...)` does to the image's pixels, for other
  arrays cut at the same regions: masks above all (an inpainting model's
  mask), or crops that `crop_segs` cut at the regions' own size.

  Args:
    x: `[S, F, B, B, C]` pixels or `[S, F, B, B]` masks, region-aligned
      (pixel `(u, v)` shows image pixel `(y1 + u, x1 + v)`; what lies past
      the region's size is not read); pixels floating or integer (kept
      at their value scale), masks floating in [0, 1]. `F` frames; for
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
      that does not match the transform, integer masks or an unknown
      method.
  """
  return resample(x, transform, method, True)


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
      `ModelCrops.crops`) or `[S, F, h, w]` masks; pixels floating or
      integer, masks floating in [0, 1]. `F` frames; for a per-frame
      transform `F` is `N` or 1.
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
      that does not match the transform, integer masks or an unknown
      method.
  """
  return resample(x, transform, method, False)
