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
MIN_SEGMENTS = 4
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
             with_crops: bool) -> node_rules.Seg:
  """Reads and checks one SEG; messages name it `where` (`segs[1][3]`)."""
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


def read_segs(segs, name: str = "segs"
              ) -> tuple[tuple[int, int], Sequence]:
  """Checks the outer form `((H0, W0), [SEG, ...])`; returns both parts."""
  if not isinstance(segs, (tuple, list)) or len(segs) != 2:
    raise TypeError(f"{name}: expected a 2-tuple ((H0, W0), [SEG, ...]), got "
                    f"{type(segs).__name__}"
                    + (f" of length {len(segs)}" if hasattr(segs, "__len__")
                       else ""))
  size, items = segs
  try:
    h0, w0 = (operator.index(v) for v in size)
  except (TypeError, ValueError):
    raise TypeError(f"{name}[0]: expected the source size (H0, W0) as two "
                    f"integers, got {size!r}") from None
  if h0 < 0 or w0 < 0:
    raise ValueError(f"{name}[0]: expected a non-negative size, got "
                     f"{(h0, w0)}")
  if not isinstance(items, (list, tuple)) or hasattr(items, "cropped_mask"):
    raise TypeError(f"{name}[1]: expected a list of SEG, got "
                    f"{type(items).__name__}")
  return (h0, w0), items


def _round_up(value: int, step: int) -> int:
  return -(-value // step) * step


def default_bucket_size(side: int) -> int:
  """Bucket side for a largest crop/mask side: >= 128, a multiple of 64."""
  return max(MIN_BUCKET, _round_up(side, BUCKET_STEP))


def default_max_segments(count: int) -> int:
  """Padded segment count: a power of two, at least 4."""
  return max(MIN_SEGMENTS, 1 << max(count - 1, 0).bit_length())


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


def _read_all(segs, shape, with_crops: bool, node_axis_mixup: bool,
              name: str):
  """One SEGS read, checked and put through the node's host-side rules:
  `(source_size, [Seg, ...], [mask the node pastes with, ...])`."""
  n, h, w, c = shape
  source, items = read_segs(segs, name)
  read = [read_seg(s, f"{name}[1][{i}]", c, n, with_crops)
          for i, s in enumerate(items)]
  if node_rules.needs_scale_match(source, (h, w)):
    rh, rw = h / source[0], w / source[1]
    read = [node_rules.scale_match(s, f"{name}[1][{i}]", rh, rw,
                                   node_axis_mixup)
            for i, s in enumerate(read)]
    source = (h, w)
  masks = [node_rules.paste_mask(s, f"{name}[1][{i}]", n)
           for i, s in enumerate(read)]
  return source, read, masks


def _largest_side(read, masks, h: int, w: int) -> int:
  sides = [1]
  for s, m in zip(read, masks):
    x1, y1, x2, y2 = s.region
    sides += [*m.shape[-2:], min(y2, h) - max(y1, 0), min(x2, w) - max(x1, 0)]
    if s.crop is not None:
      sides += s.crop.shape[1:3]
  return max(sides)


def _crop_channels(read, default: int) -> int:
  # One channel count for all crops: RGB crops beside RGBA ones become
  # opaque RGBA (alpha 1), which every blend rule treats as RGB.
  return max([s.crop.shape[3] for s in read if s.crop is not None],
             default=default)


def _buckets(side: int, count: int, bucket_size, max_segments,
             per_image: bool = False):
  bucket = default_bucket_size(side) if bucket_size is None else bucket_size
  if bucket < side:
    raise ValueError(f"bucket_size: {bucket} is smaller than the largest "
                     f"crop/mask/region side {side}")
  slots = default_max_segments(count) if max_segments is None else max_segments
  if slots < count:
    raise ValueError(f"max_segments: {slots} is fewer than the {count} "
                     "segments" + (" of one image" if per_image else ""))
  return bucket, slots


def _fill(read, masks, source, fields: dict, crop_frames_max: int) -> SegsMeta:
  """Writes one SEGS into the zeroed arrays `fields` (one image's views)."""
  crops, packed_masks = fields["crops"], fields["masks"]
  channels = crops.shape[-1]
  for i, (s, m) in enumerate(zip(read, masks)):
    if s.crop is not None:
      f, ch, cw, cc = s.crop.shape
      # one crop frame serves every image frame (broadcast in `paste`);
      # a per-image pack keeps frame 0 only (its image is a batch of one)
      frames = min(f if f > 1 else crop_frames_max, crops.shape[1])
      crops[i, :frames, :ch, :cw, :cc] = s.crop[:frames]
      if cc < channels:
        crops[i, :frames, :ch, :cw, 3] = 1
      fields["crop_sizes"][i] = (ch, cw)
      fields["has_crop"][i] = True
      fields["crop_frames"][i] = min(f, crops.shape[1])
    mh, mw = m.shape[-2:]
    packed_masks[i, :, :mh, :mw] = m
    fields["mask_sizes"][i] = (mh, mw)
    fields["mask_frames"][i] = len(m) if m.ndim == 3 else 0
    fields["regions"][i] = s.region
    fields["valid"][i] = True
    fields["bboxes"][i] = s.bbox
    fields["confidences"][i] = s.confidence
  return SegsMeta(source_size=source, labels=tuple(s.label for s in read),
                  wrappers=tuple(Opaque(s.wrapper) for s in read))


def _empty_fields(lead: tuple, slots: int, bucket: int, crops_shape: tuple,
                  mask_frames: int) -> dict:
  """Zeroed arrays for `lead` images (`()` for one SEGS)."""
  # aligned arrays of their own (host_empty): XLA's CPU client reads them
  # in place
  return dict(
      crops=arrays.host_empty(lead + (slots,) + crops_shape, np.float32),
      masks=arrays.host_empty(lead + (slots, mask_frames, bucket, bucket),
                              np.float32),
      regions=np.zeros(lead + (slots, 4), np.int32),
      crop_sizes=np.zeros(lead + (slots, 2), np.int32),
      mask_sizes=np.ones(lead + (slots, 2), np.int32),
      has_crop=np.zeros(lead + (slots,), bool),
      valid=np.zeros(lead + (slots,), bool),
      bboxes=np.zeros(lead + (slots, 4), np.float64),
      confidences=np.zeros(lead + (slots,), np.float64),
      crop_frames=np.zeros(lead + (slots,), np.int32),
      mask_frames=np.zeros(lead + (slots,), np.int32))


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

  Given a list of SEGS, one per image (`[segs_0, ..., segs_N-1]`), each
  image's SEGS are read as the node reads them for that image alone (a
  batch of one: crop frame 0, mask batches of `M > 1` combined), and all are
  packed into one shared bucket with a leading image axis (`PackedSegs.
  per_image`), which `paste` takes directly.

  Args:
    segs: `((H0, W0), [SEG, ...])` with numpy/torch/JAX arrays, mixed
      freely; or a list of N of them, one per image.
    image_shape: `(N, H, W, C)` of the image the SEGS will be pasted into.
    bucket_size: padded side of crops and masks; default the largest side
      rounded up to a multiple of 64, at least 128.
    max_segments: padded segment count (per image, for a list); default the
      next power of two, at least 4.
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
  if is_per_image(segs):
    return _pack_per_image(segs, (n, h, w, c), bucket_size, max_segments,
                           with_crops, node_axis_mixup)
  source, read, masks = _read_all(segs, (n, h, w, c), with_crops,
                                  node_axis_mixup, "segs")
  bucket, slots = _buckets(_largest_side(read, masks, h, w), len(read),
                           bucket_size, max_segments)
  frames = [len(s.crop) for s in read if s.crop is not None]
  fc = max([f for f in frames if f > 1], default=1)
  fm = n if any(m.ndim == 3 and len(m) > 1 for m in masks) else 1
  crops_shape = ((fc, bucket, bucket, _crop_channels(read, c)) if with_crops
                 else (1, 1, 1, c))
  fields = _empty_fields((), slots, bucket, crops_shape, fm)
  meta = _fill(read, masks, source, fields, fc)
  return PackedSegs(**fields, meta=meta)


def _pack_per_image(segs_list, shape, bucket_size, max_segments, with_crops,
                    node_axis_mixup) -> PackedSegs:
  n, h, w, c = shape
  if len(segs_list) != n:
    raise ValueError(f"segs: a list of {len(segs_list)} SEGS for {n} "
                     f"images; expected one SEGS per image")
  per_image = [_read_all(s, (1, h, w, c), with_crops, node_axis_mixup,
                         f"segs[{k}]") for k, s in enumerate(segs_list)]
  side = max(_largest_side(read, masks, h, w) for _, read, masks in per_image)
  count = max(len(read) for _, read, _ in per_image)
  bucket, slots = _buckets(side, count, bucket_size, max_segments,
                           per_image=True)
  channels = max(_crop_channels(read, 0) for _, read, _ in per_image) or c
  # each image is a batch of one: frame 0 of every crop, one mask frame
  crops_shape = ((1, bucket, bucket, channels) if with_crops
                 else (1, 1, 1, c))
  fields = _empty_fields((n,), slots, bucket, crops_shape, 1)
  metas = tuple(
      _fill(read, masks, source, {f: a[k] for f, a in fields.items()}, 1)
      for k, (source, read, masks) in enumerate(per_image))
  return PackedSegs(**fields, meta=SegsMeta(source_size=(h, w),
                                            per_image=metas))


def _number(v: float):
  return int(v) if float(v).is_integer() else float(v)


def unpack_segs(packed: PackedSegs) -> tuple | list:
  """Turns a `PackedSegs` back into torch-style SEGS with numpy arrays.

  Args:
    packed: from `pack_segs` (numpy or device arrays).

  Returns:
    `((H0, W0), [SEG, ...])`: crops `[F, h, w, C]` float32 (None where there
    was none; RGB crops packed beside RGBA ones come back as opaque RGBA),
    masks `[h, w]` or `[M, h, w]` float32 as `paste` uses them (after scale
    match and mask-batch combination), crop regions and bboxes as tuples,
    the labels, confidences and ControlNet wrappers as given. For a
    per-image pack (`packed.per_image`), a list of such SEGS, one per image,
    each crop with its frame 0 only.
  """
  a = {f: np.asarray(getattr(packed, f)) for f in ARRAY_FIELDS}
  if packed.per_image:
    return [_unpack({f: x[k] for f, x in a.items()}, meta)
            for k, meta in enumerate(packed.meta.per_image)]
  return _unpack(a, packed.meta)


def _unpack(a: dict, meta: SegsMeta):
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
