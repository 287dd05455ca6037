"""`make_packed_segs`: a `PackedSegs` built from device arrays, inside `jit`.

`pack_segs` reads torch-style SEGS on the host. A pipeline that detects,
crops and re-details on the device (`crop_segs`, a model, ...) already holds
fixed-shape arrays; `make_packed_segs` assembles them into the pytree
`paste` takes without leaving the trace: only `jnp` operations, no host
work, no value checks (values are traced), and shapes and dtypes checked
while tracing, with `TypeError`/`ValueError` naming the argument.

Defaults follow what a detailer's arrays mean: crops and masks are
region-aligned, pixel `(u, v)` of both showing image pixel
`(y1 + u, x1 + v)` (as `crop_segs` cuts them and as the Impact Pack's SEGS
carry them: a SEG's mask and crop have its crop region's size). So both
sizes default to the region's size, clipped to the bucket: no resize
happens in `paste`, and whatever lies past a region's size in the bucket
(a full `B x B` mask of ones, say) is never read.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from segspaste_jax._src import trace_checks as checks
from segspaste_jax._src.crop import region_extent
from segspaste_jax._src.types import Opaque, PackedSegs, SegsMeta

# One shared "no ControlNet wrapper" so that equal metadata compares equal
# (`Opaque` compares by identity) and a jitted function taking the result
# as an argument does not recompile per call.
_NO_WRAPPER = Opaque(None)


def make_packed_segs(regions, masks, crops=None, *, crop_sizes=None,
                     mask_sizes=None, valid=None, has_crop=None, bboxes=None,
                     confidences=None, channels: int | None = None,
                     labels: Sequence[str] | None = None,
                     source_size: tuple[int, int] = (0, 0)) -> PackedSegs:
  """Builds a `PackedSegs` from (traced) arrays, for `paste`, inside `jit`.

  Only `jnp` operations: works on tracers under `jax.jit`, `jax.vmap` and
  `jax.grad` (gradients flow to `masks` and `crops`). Shapes and dtypes are
  checked while tracing; values are not (sizes are clipped into range, see
  below), so feed it what `crop_segs` and your own code produce.

  Per-frame regions `[S, N, 4]` (a face moving through a video) paste
  segment `s` of frame `n` at `regions[s, n]`: `masks` are then `[S, B,
  B]`, `[S, 1, B, B]` or `[S, N, B, B]`, `crops` `[S, Fc, B, B, C]` with
  `Fc` 1 or >= N (e.g. `crop_segs` with the same regions), and the
  optional per-segment arrays may carry the frame axis too (`[S, N, 2]`
  sizes, `[S, N]` flags and confidences, `[S, N, 4]` boxes). The result is
  the per-image form (`PackedSegs.per_image`, each frame a batch of one
  with its own SEGS), which `paste` takes as it is.

  Args:
    regions: `[S, 4]` integer `(x1, y1, x2, y2)`, end exclusive, any
      values (`paste` clips at the image's edges; coordinates beyond
      +-2**30 are clamped to +-2**30). `S` is the slot count. Or
      `[S, N, 4]`, per frame (above).
    masks: `[S, B, B]` (one mask per segment, for every frame) or
      `[S, Fm, B, B]` (`Fm` 1 or the image's frame count N) floating, in
      [0, 1], region-aligned at the top-left of the bucket; `B` is the
      bucket side. Kept in their dtype (float64 stays float64).
    crops: optional `[S, Fc, B, B, C]` floating (`Fc` 1, used for every
      frame, or >= N; C in 1, 3, 4), region-aligned like `masks`, e.g.
      `crop_segs(...).crops` or an edit of it. None: a crop-less
      `PackedSegs` for `paste(..., ref_image=...)`.
    crop_sizes: optional `[S, 2]` integer `(h, w)` of each crop; default the
      region's size `(y2 - y1, x2 - x1)` (what `crop_segs` reports as
      `sizes`). Clipped to `[0, B]`; 0 wherever `has_crop` is False.
    mask_sizes: optional `[S, 2]` integer `(h, w)` of each mask; default the
      region's size. Clipped to `[1, B]`. A mask of another size than its
      crop is resized to the crop's size (bilinear), as the node does.
    valid: optional `[S]` bool, False for slots to skip (padding); default
      all True.
    has_crop: optional `[S]` bool; default `valid` when `crops` is given,
      all False otherwise.
    bboxes: optional `[S, 4]` real detection boxes (not used by `paste`);
      default `regions`. Integers become the default float type (float32,
      float64 under x64), as do the defaults.
    confidences: optional `[S]` real scores (not used by `paste`); default
      1 where `valid`, 0 elsewhere (as `pack_segs` pads).
    channels: C of the empty crops placeholder `[S, 1, 1, 1, C]` when
      `crops` is None (default 3); must equal the crops' C when given.
    labels: optional static labels for the leading slots (at most S);
      default one `""` per slot. `PackedSegs.num_segments` and
      `unpack_segs` count these (validity is only known at run time).
    source_size: static `(H0, W0)` for `unpack_segs`; default `(0, 0)` (no
      scale match when the unpacked SEGS are pasted again).

  Returns:
    A `PackedSegs`: `masks` `[S, Fm, B, B]`, `crops` as given (or the
    placeholder), int32 `regions`, `crop_sizes`, `mask_sizes`, bool
    `has_crop`, `valid`; `crop_frames` `Fc` where `has_crop` (else 0),
    `mask_frames` 0 for `[S, B, B]` masks and `Fm` for `[S, Fm, B, B]` ones
    where `valid` (else 0), as `pack_segs` records 2-D and 3-D masks.
    For per-frame regions, the per-image form: `masks` `[N, S, 1, B, B]`,
    `crops` `[N, S, 1, B, B, C]`, `regions` `[N, S, 4]`, every other array
    `[N, S, ...]` (one crop frame and, for 4-D masks, one mask frame per
    image), and `meta.per_image` N copies of the metadata.

  Raises:
    TypeError: an argument of the wrong kind (non-floating masks or crops,
      uint8 crops included, non-integer regions or sizes, non-bool flags).
    ValueError: a wrong rank or shape, naming the argument and the shape
      expected from the others.
  """
  regions = checks.regions(regions, per_frame=True)
  slots = regions.shape[0]
  frames = regions.shape[1] if regions.ndim == 3 else None
  lead = regions.shape[:-1]  # (S,), or (S, N) per frame
  masks, bucket, given_frames = checks.masks(masks, regions.shape)
  if frames is not None and masks.shape[1] not in (1, frames):
    raise ValueError(f"masks: expected [S, B, B], [S, 1, B, B] or [S, N, B, "
                     f"B] with N = {frames} for per-frame regions "
                     f"{regions.shape}, got shape {masks.shape}")
  if channels is not None:
    channels = checks.channels(channels)
  with_crops = crops is not None
  if with_crops:
    crops = checks.crops(crops, slots, bucket, channels)
    if frames is not None and 1 < crops.shape[1] < frames:
      raise ValueError(f"crops: expected [S, Fc, B, B, C] with Fc 1 or at "
                       f"least N = {frames} for per-frame regions "
                       f"{regions.shape}, got shape {crops.shape}")
  else:
    crops = jnp.zeros((slots, 1, 1, 1, 3 if channels is None else channels),
                      masks.dtype)

  def spread(value):  # [S, ...] or [S, N, ...] -> lead + ...
    if frames is None or value.shape[:2] == lead:
      return value
    return jnp.broadcast_to(value[:, None], lead + value.shape[1:])

  extra = {} if frames is None else {"frames": frames}
  valid = (jnp.ones(lead, bool) if valid is None
           else spread(checks.flags(valid, "valid", slots, **extra)))
  if has_crop is None:
    has_crop = valid if with_crops else jnp.zeros(lead, bool)
  else:
    has_crop = spread(checks.flags(has_crop, "has_crop", slots, **extra))

  extent = region_extent(regions, bucket)
  if crop_sizes is None:
    crop_sizes = extent
  else:
    crop_sizes = spread(checks.sizes(crop_sizes, "crop_sizes", slots, 0,
                                     bucket, **extra))
  crop_sizes = jnp.where(has_crop[..., None], crop_sizes, 0)
  mask_sizes = (jnp.maximum(extent, 1) if mask_sizes is None
                else spread(checks.sizes(mask_sizes, "mask_sizes", slots, 1,
                                         bucket, **extra)))

  real = jnp.result_type(float)  # float32, or float64 under x64
  bboxes = (regions.astype(real) if bboxes is None
            else spread(checks.reals(bboxes, "bboxes", (slots, 4), **extra)))
  confidences = (valid.astype(real)
                 if confidences is None
                 else spread(checks.reals(confidences, "confidences",
                                          (slots,), **extra)))

  meta = _meta(labels, slots, source_size)
  if frames is None:
    crop_frames = jnp.where(has_crop, jnp.int32(crops.shape[1]), 0)
    mask_frames = jnp.where(valid, jnp.int32(given_frames), 0)
    return PackedSegs(crops=crops, masks=masks, regions=regions,
                      crop_sizes=crop_sizes, mask_sizes=mask_sizes,
                      has_crop=has_crop, valid=valid, bboxes=bboxes,
                      confidences=confidences, crop_frames=crop_frames,
                      mask_frames=mask_frames, meta=meta)

  # Per frame: the per-image form (`PackedSegs.per_image`), every image a
  # batch of one with its own SEGS: a leading image axis, one crop frame
  # and one mask frame per image.
  def per_image(a):  # [S, N or 1, ...] -> [N, S, 1, ...]
    a = jnp.broadcast_to(a[:, :frames], (slots, frames) + a.shape[2:])
    return jnp.swapaxes(a, 0, 1)[:, :, None]

  swap = lambda a: jnp.swapaxes(a, 0, 1)
  return PackedSegs(
      crops=per_image(crops), masks=per_image(masks), regions=swap(regions),
      crop_sizes=swap(crop_sizes), mask_sizes=swap(mask_sizes),
      has_crop=swap(has_crop), valid=swap(valid), bboxes=swap(bboxes),
      confidences=swap(confidences),
      crop_frames=swap(jnp.where(has_crop, jnp.int32(1), 0)),
      mask_frames=swap(jnp.where(valid, jnp.int32(min(given_frames, 1)), 0)),
      meta=SegsMeta(source_size=meta.source_size,
                    per_image=(meta,) * frames))


def _meta(labels, slots: int, source_size) -> SegsMeta:
  source_size = checks.source_size(source_size)
  labels = checks.labels(labels, slots)
  return SegsMeta(source_size=source_size, labels=labels,
                  wrappers=(_NO_WRAPPER,) * len(labels))
