"""Torch-style SEGS in and out: reading, checking and packing into buckets.

`pack_segs` is the door between ComfyUI's data and the jitted core: it
reads every SEG (numpy, torch or JAX fields, mixed freely), checks what the
node would crash or silently misbehave on, applies the node's host-side
rules (`node_rules`) and pads the segments into a `PackedSegs` of bucketed
shapes, on the host with numpy. `unpack_segs` goes back.
"""

from __future__ import annotations

import math
import operator
from typing import Sequence

import numpy as np

from segspaste_jax._src import arrays, node_rules, validate
from segspaste_jax._src.types import (ARRAY_FIELDS, REQUIRED_FIELDS, SEG,
                                      Opaque, PackedSegs, SegsMeta)

MIN_BUCKET = 128   # one bucket covers every crop side up to 128
BUCKET_STEP = 64
MIN_SEGMENTS = 8
# Masks may overshoot [0, 1] by float rounding (e.g. after an upstream
# bilinear resize); anything further out is an error.
MASK_TOLERANCE = 1e-3
MAX_PADDED = 1 << 15  # bound on explicit bucket_size and max_segments


def _ints(value, name: str, count: int = 4) -> tuple[int, ...]:
  try:
    # tolist: a 2-D or 0-d array is not 4 integers, and bools stay bools
    items = list(arrays.to_numpy(value, name).tolist()) if hasattr(
        value, "shape") else list(value)
  except TypeError:
    raise TypeError(f"{name}: expected {count} integers, got {value!r}") from None
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
  if crop.shape[3] != channels:
    raise ValueError(f"{name}: expected {channels} channels like the image, "
                     f"got shape {crop.shape}")
  if 1 < crop.shape[0] < frames:
    raise ValueError(f"{name}: has {crop.shape[0]} frames for an image of "
                     f"{frames}; expected 1 (used for every frame) or at "
                     f"least {frames}")
  crop = arrays.host_unit_float(crop)
  if not validate.all_finite(crop):
    raise ValueError(f"{name}: contains NaN or infinite values")
  return crop


def read_seg(seg, index: int, channels: int, frames: int,
             with_crops: bool) -> node_rules.Seg:
  """Reads and checks one SEG; messages name `segs[1][index]`."""
  where = f"segs[1][{index}]"
  missing = [f for f in REQUIRED_FIELDS if not hasattr(seg, f)]
  if missing:
    raise TypeError(f"{where}: expected a SEG with fields {REQUIRED_FIELDS}, "
                    f"missing {missing} on {type(seg).__name__}")
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
  node_rules.check_coordinates(region, f"{where}.crop_region")
  bbox = _numbers(seg.bbox, f"{where}.bbox")
  try:
    confidence = float(seg.confidence)
  except (TypeError, ValueError):
    raise TypeError(f"{where}.confidence: expected a number, got "
                    f"{seg.confidence!r}") from None
  return node_rules.Seg(crop, mask, region, bbox, confidence, seg.label,
                        getattr(seg, "control_net_wrapper", None))


def read_segs(segs) -> tuple[tuple[int, int], Sequence]:
  """Checks the outer form `((H0, W0), [SEG, ...])`; returns both parts."""
  if not isinstance(segs, (tuple, list)) or len(segs) != 2:
    raise TypeError("segs: expected a 2-tuple ((H0, W0), [SEG, ...]), got "
                    f"{type(segs).__name__}"
                    + (f" of length {len(segs)}" if hasattr(segs, "__len__")
                       else ""))
  size, items = segs
  try:
    h0, w0 = (operator.index(v) for v in size)
  except (TypeError, ValueError):
    raise TypeError(f"segs[0]: expected the source size (H0, W0) as two "
                    f"integers, got {size!r}") from None
  if h0 < 0 or w0 < 0:
    raise ValueError(f"segs[0]: expected a non-negative size, got {(h0, w0)}")
  if not isinstance(items, (list, tuple)) or hasattr(items, "cropped_mask"):
    raise TypeError(f"segs[1]: expected a list of SEG, got "
                    f"{type(items).__name__}")
  return (h0, w0), items


def _round_up(value: int, step: int) -> int:
  return -(-value // step) * step


def default_bucket_size(side: int) -> int:
  """Bucket side for a largest crop/mask side: >= 128, a multiple of 64."""
  return max(MIN_BUCKET, _round_up(side, BUCKET_STEP))


def default_max_segments(count: int) -> int:
  """Padded segment count: a power of two, at least 8."""
  return max(MIN_SEGMENTS, 1 << max(count - 1, 0).bit_length())


def pack_segs(segs, image_shape, *, bucket_size: int | None = None,
              max_segments: int | None = None, with_crops: bool = True,
              node_axis_mixup: bool = False) -> PackedSegs:
  """Converts torch-style SEGS into a fixed-shape `PackedSegs` (numpy leaves).

  Applies the node's host-side rules: scale match when the SEGS' source size
  differs from the image's (Pillow LANCZOS for crops with 3 or 4 channels,
  bilinear otherwise), and the mask batch rules (per-frame masks when
  `M == N`, bitwise-OR combination when `M > 1` differs from `N`). Masks are
  packed at their own size; `paste` feathers them there and resizes them to
  the pasted pixels' size afterwards, as the node does.

  Args:
    segs: `((H0, W0), [SEG, ...])` with numpy/torch/JAX arrays, mixed freely.
    image_shape: `(N, H, W, C)` of the image the SEGS will be pasted into.
    bucket_size: padded side of crops and masks; default the largest side
      rounded up to a multiple of 64, at least 128.
    max_segments: padded segment count; default the next power of two, at
      least 8.
    with_crops: False skips `cropped_image` entirely (what the node does when
      `ref_image_opt` is given); the crops are then left empty.
    node_axis_mixup: scale crop regions as the node does (`y1` by the width's
      factor, `x2` by the height's); only differs for non-uniform scales.

  Returns:
    A `PackedSegs` of new numpy arrays (zero padded, see `PackedSegs`),
    ready for `jax.device_put` or a jitted call.

  Raises:
    TypeError, ValueError: with the argument, the SEG index and what was
      expected, wherever the node would crash or silently misbehave.
  """
  n, h, w, c = validate.check_image_shape(image_shape, "image_shape")
  if bucket_size is not None:
    bucket_size = validate.check_int(bucket_size, "bucket_size", 1,
                                     MAX_PADDED)
  if max_segments is not None:
    max_segments = validate.check_int(max_segments, "max_segments", 0,
                                      MAX_PADDED)
  source, items = read_segs(segs)
  read = [read_seg(s, i, c, n, with_crops) for i, s in enumerate(items)]
  if node_rules.needs_scale_match(source, (h, w)):
    rh, rw = h / source[0], w / source[1]
    read = [node_rules.scale_match(s, i, rh, rw, node_axis_mixup)
            for i, s in enumerate(read)]
    source = (h, w)
  masks = [node_rules.paste_mask(s, i, n)
           for i, s in enumerate(read)]

  count = len(read)
  sides = [1]
  for s, m in zip(read, masks):
    x1, y1, x2, y2 = s.region
    sides += [*m.shape[-2:], min(y2, h) - max(y1, 0), min(x2, w) - max(x1, 0)]
    if s.crop is not None:
      sides += s.crop.shape[1:3]
  side = max(sides)
  bucket = default_bucket_size(side) if bucket_size is None else bucket_size
  if bucket < side:
    raise ValueError(f"bucket_size: {bucket} is smaller than the largest "
                     f"crop/mask/region side {side}")
  slots = default_max_segments(count) if max_segments is None else max_segments
  if slots < count:
    raise ValueError(f"max_segments: {slots} is fewer than the {count} "
                     "segments")

  crop_frames = [0 if s.crop is None else len(s.crop) for s in read]
  fc = max([f for f in crop_frames if f > 1], default=1)
  fm = n if any(m.ndim == 3 and len(m) > 1 for m in masks) else 1
  # zero pages of their own: XLA's CPU client reads them in place
  crops = arrays.host_empty((slots, fc, bucket, bucket, c) if with_crops else
                            (slots, 1, 1, 1, c), np.float32)
  packed_masks = arrays.host_empty((slots, fm, bucket, bucket), np.float32)
  regions = np.zeros((slots, 4), np.int32)
  crop_sizes = np.zeros((slots, 2), np.int32)
  mask_sizes = np.ones((slots, 2), np.int32)
  has_crop = np.zeros((slots,), bool)
  valid = np.zeros((slots,), bool)
  bboxes = np.zeros((slots, 4), np.float64)
  confidences = np.zeros((slots,), np.float64)
  mask_frames = np.zeros((slots,), np.int32)
  for i, (s, m) in enumerate(zip(read, masks)):
    if s.crop is not None:
      f, ch, cw = s.crop.shape[:3]
      # one crop frame serves every image frame (broadcast in `paste`)
      crops[i, :f if f > 1 else fc, :ch, :cw] = s.crop
      crop_sizes[i] = (ch, cw)
      has_crop[i] = True
    mh, mw = m.shape[-2:]
    packed_masks[i, :, :mh, :mw] = m
    mask_sizes[i] = (mh, mw)
    mask_frames[i] = len(m) if m.ndim == 3 else 0
    regions[i] = s.region
    valid[i] = True
    bboxes[i] = s.bbox
    confidences[i] = s.confidence

  meta = SegsMeta(source_size=source,
                  labels=tuple(s.label for s in read),
                  wrappers=tuple(Opaque(s.wrapper) for s in read))
  return PackedSegs(crops=crops, masks=packed_masks, regions=regions,
                    crop_sizes=crop_sizes, mask_sizes=mask_sizes,
                    has_crop=has_crop, valid=valid, bboxes=bboxes,
                    confidences=confidences,
                    crop_frames=np.asarray(crop_frames + [0] * (slots - count),
                                           np.int32),
                    mask_frames=mask_frames, meta=meta)


def _number(v: float):
  return int(v) if float(v).is_integer() else float(v)


def unpack_segs(packed: PackedSegs):
  """Turns a `PackedSegs` back into torch-style SEGS with numpy arrays.

  Args:
    packed: from `pack_segs` (numpy or device arrays).

  Returns:
    `((H0, W0), [SEG, ...])`: crops `[F, h, w, C]` float32 (None where there
    was none), masks `[h, w]` or `[M, h, w]` float32 as `paste` uses them
    (after scale match and mask-batch combination), crop regions and bboxes as
    tuples, the labels, confidences and ControlNet wrappers as given.
  """
  a = {f: np.asarray(getattr(packed, f)) for f in ARRAY_FIELDS}
  meta = packed.meta
  segs = []
  for i in range(meta.num_segments):
    crop = None
    if a["has_crop"][i]:
      fh, fw = a["crop_sizes"][i]
      crop = a["crops"][i, :a["crop_frames"][i], :fh, :fw].copy()
    mh, mw = a["mask_sizes"][i]
    frames = a["mask_frames"][i]
    mask = a["masks"][i, :max(frames, 1), :mh, :mw].copy()
    if frames == 0:
      mask = mask[0]
    segs.append(SEG(
        cropped_image=crop,
        cropped_mask=mask,
        confidence=float(a["confidences"][i]),
        crop_region=tuple(int(v) for v in a["regions"][i]),
        bbox=tuple(_number(v) for v in a["bboxes"][i]),
        label=meta.labels[i],
        control_net_wrapper=meta.wrappers[i].value))
  return tuple(meta.source_size), segs
