"""Reading SEGS: torch-style SEGS into checked numpy, by the node's rules.

`read_segs` reads one SEGS (or a list of SEGS, one per image), checks every
field through `validate` (messages name the SEG: `segs[1][3].cropped_mask:
...`, and `segs[k][1][3]...` for the k-th SEGS of a list), puts it through
the node's host-side rules (`node_rules`: scale match, mask batches) and
gives it a bucket and slot count: a `ReadSegs`, which `packing.pack` writes
into a `PackedSegs`, whole or a chunk of frames at a time.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence

import numpy as np

from segspaste_jax._src import arrays, node_rules, packing, validate
from segspaste_jax._src.types import Seg

# Masks may overshoot [0, 1] by float rounding (e.g. after an upstream
# bilinear resize); anything further out is an error.
MASK_TOLERANCE = 1e-3


def is_per_image(segs) -> bool:
  """Whether `segs` is a list of SEGS, one per image, rather than one SEGS.

  One SEGS is `((H0, W0), [SEG, ...])`: its first item is the size. A list
  of SEGS is a list whose items are such pairs.
  """
  if not isinstance(segs, list) or not segs:
    return False
  return all(isinstance(s, (tuple, list)) and len(s) == 2
             and isinstance(s[0], (tuple, list)) and len(s[0]) == 2
             and isinstance(s[1], (tuple, list)) for s in segs)


def _ints(value, name: str, count: int = 4) -> tuple[int, ...]:
  try:
    # tolist: a 2-D or 0-d array is not 4 integers, and bools stay bools
    items = list(arrays.to_numpy(value, name).tolist()) if hasattr(
        value, "shape") else list(value)
  except TypeError:
    raise TypeError(f"{name}: expected {count} integers, got "
                    f"{value!r}") from None
  if len(items) != count or any(
      isinstance(v, (bool, np.bool_)) or not hasattr(v, "__index__")
      for v in items):
    raise TypeError(f"{name}: expected {count} integers (x1, y1, x2, y2), "
                    f"got {value!r}")
  return tuple(operator.index(v) for v in items)


def _numbers(value, name: str) -> tuple:
  try:
    items = list(arrays.to_numpy(value, name).reshape(-1)) if hasattr(
        value, "shape") else list(value)
  except TypeError:
    raise TypeError(f"{name}: expected 4 numbers, got {value!r}") from None
  if len(items) != 4 or not all(
      isinstance(v, (int, float, np.integer, np.floating))
      and not isinstance(v, (bool, np.bool_)) for v in items):
    raise TypeError(f"{name}: expected 4 numbers (x1, y1, x2, y2), "
                    f"got {value!r}")
  return tuple(v.item() if hasattr(v, "item") else v for v in items)


def _read_mask(value, name: str) -> np.ndarray:
  if value is None:
    raise TypeError(f"{name}: expected a [h, w] or [M, h, w] float array, "
                    "got None")
  mask = arrays.to_numpy(value, name)
  validate.check_float_array(mask, name)
  if mask.ndim not in (2, 3) or min(mask.shape) < 1:
    raise ValueError(f"{name}: expected a non-empty [h, w] or [M, h, w] "
                     f"mask, got shape {mask.shape}")
  low, high = float(mask.min()), float(mask.max())  # NaN propagates
  if not (math.isfinite(low) and math.isfinite(high)):
    raise ValueError(f"{name}: contains NaN or infinite values")
  if low < -MASK_TOLERANCE or high > 1 + MASK_TOLERANCE:
    raise ValueError(f"{name}: expected values in [0, 1], got "
                     f"[{low:g}, {high:g}]")
  return mask


def _read_crop(value, name: str, channels: int, frames: int) -> np.ndarray:
  crop = arrays.to_numpy(value, name)
  if crop.dtype != np.uint8:
    validate.check_float_array(crop, name)
  if crop.ndim != 4 or min(crop.shape[:3]) < 1:
    raise ValueError(f"{name}: expected a non-empty [F, h, w, C] array, "
                     f"got shape {crop.shape}")
  if not validate.compatible_channels(channels, crop.shape[3]):
    raise ValueError(f"{name}: expected {validate.pasted_channels(channels)} "
                     f"channels for a {channels}-channel image, got shape "
                     f"{crop.shape}")
  if 1 < crop.shape[0] < frames:
    raise ValueError(f"{name}: has {crop.shape[0]} frames for an image of "
                     f"{frames}; expected 1 (used for every frame) or at "
                     f"least {frames}")
  crop = arrays.host_unit_float(crop)
  if not validate.all_finite(crop):
    raise ValueError(f"{name}: contains NaN or infinite values")
  return crop


def read_seg(seg, where: str, channels: int, frames: int,
             with_crops: bool) -> Seg:
  """Reads and checks one SEG; messages name it `where` (`segs[1][3]`)."""
  validate.check_seg_fields(seg, where)
  mask = _read_mask(seg.cropped_mask, f"{where}.cropped_mask")
  crop = None
  if with_crops and seg.cropped_image is not None:
    crop = _read_crop(seg.cropped_image, f"{where}.cropped_image", channels,
                      frames)
  region = _ints(seg.crop_region, f"{where}.crop_region")
  x1, y1, x2, y2 = region
  if x2 <= x1 or y2 <= y1:
    raise ValueError(f"{where}.crop_region: expected x1 < x2 and y1 < y2, "
                     f"got {region}")
  validate.check_coordinates(region, f"{where}.crop_region")
  bbox = _numbers(seg.bbox, f"{where}.bbox")
  try:
    confidence = float(seg.confidence)
  except (TypeError, ValueError):
    raise TypeError(f"{where}.confidence: expected a number, got "
                    f"{seg.confidence!r}") from None
  return Seg(crop, mask, region, bbox, confidence, seg.label,
             getattr(seg, "control_net_wrapper", None))


def _scale_matched(seg: Seg, where: str, rh: float, rw: float,
                   node_axis_mixup: bool) -> Seg:
  """The node's scale match of one read SEG, its new region checked."""
  region = node_rules.scale_box(seg.region, rh, rw, node_axis_mixup)
  if region[2] <= region[0] or region[3] <= region[1]:
    raise ValueError(f"{where}.crop_region: {seg.region} scales to "
                     f"{region}, an empty region (the node crashes here)")
  validate.check_coordinates(region, f"{where}.crop_region", seg.region)
  return node_rules.scale_match(seg, rh, rw, node_axis_mixup)


def _read_one(segs, shape, with_crops: bool, node_axis_mixup: bool,
              name: str) -> tuple[tuple[int, int], tuple[Seg, ...]]:
  """One SEGS read, checked and put through the node's host-side rules:
  `(source_size, segs)`, each SEG's mask the one the node pastes with."""
  n, h, w, c = shape
  source, items = validate.check_segs(segs, name)
  read = [read_seg(s, f"{name}[1][{i}]", c, n, with_crops)
          for i, s in enumerate(items)]
  if node_rules.needs_scale_match(source, (h, w)):
    rh, rw = h / source[0], w / source[1]
    read = [_scale_matched(s, f"{name}[1][{i}]", rh, rw, node_axis_mixup)
            for i, s in enumerate(read)]
    source = (h, w)
  read = [dataclasses.replace(s, mask=node_rules.paste_mask(
      s.mask, f"{name}[1][{i}]", n)) for i, s in enumerate(read)]
  return source, tuple(read)


def _largest_side(segs: Sequence[Seg], h: int, w: int) -> int:
  sides = [1]
  for s in segs:
    x1, y1, x2, y2 = s.region
    sides += [*s.mask.shape[-2:], min(y2, h) - max(y1, 0),
              min(x2, w) - max(x1, 0)]
    if s.crop is not None:
      sides += s.crop.shape[1:3]
  return max(sides)


@dataclasses.dataclass(frozen=True)
class ReadSegs:
  """SEGS read and checked, ready for `packing.pack`.

  Attributes:
    sources: `(H0, W0)` of each SEGS after the scale match.
    segs: each SEGS' segments, masks as the node pastes them.
    per_image: one SEGS per image (a list of SEGS), not one for all.
    bucket: the bucket side they pack into.
    slots: the segment slots (per image) they pack into.
    frames: the frame count N they were read for.
  """

  sources: tuple[tuple[int, int], ...]
  segs: tuple[tuple[Seg, ...], ...]
  per_image: bool
  bucket: int
  slots: int
  frames: int


def read_segs(segs, image_shape, opts: validate.Options, *,
              with_crops: bool = True) -> ReadSegs:
  """Reads, checks and scale-matches SEGS for an image of `image_shape`.

  Args:
    segs: `((H0, W0), [SEG, ...])`, or a list of N of them (one per image).
    image_shape: checked `(N, H, W, C)`.
    opts: `node_axis_mixup`, `bucket_size` and `max_segments` apply.
    with_crops: read `cropped_image` (False: it is ignored, as the node
      ignores it when `ref_image_opt` is given).

  Raises:
    TypeError, ValueError: naming the SEG and field, wherever the node would
      crash or silently misbehave; or for a bucket too small.
  """
  n, h, w, c = image_shape
  per_image = is_per_image(segs)
  if per_image:
    if len(segs) != n:
      raise ValueError(f"segs: a list of {len(segs)} SEGS for {n} "
                       f"images; expected one SEGS per image")
    # each image is read as a batch of one, as the node run on it alone
    read = [_read_one(s, (1, h, w, c), with_crops, opts.node_axis_mixup,
                      f"segs[{k}]") for k, s in enumerate(segs)]
  else:
    read = [_read_one(segs, image_shape, with_crops, opts.node_axis_mixup,
                      "segs")]
  side = max(_largest_side(items, h, w) for _, items in read)
  count = max(len(items) for _, items in read)
  bucket = (packing.default_bucket_size(side) if opts.bucket_size is None
            else opts.bucket_size)
  if bucket < side:
    raise ValueError(f"bucket_size: {bucket} is smaller than the largest "
                     f"crop/mask/region side {side}")
  slots = (packing.default_max_segments(count) if opts.max_segments is None
           else opts.max_segments)
  if slots < count:
    raise ValueError(f"max_segments: {slots} is fewer than the {count} "
                     "segments" + (" of one image" if per_image else ""))
  return ReadSegs(tuple(s for s, _ in read), tuple(i for _, i in read),
                  per_image, bucket, slots, n)
