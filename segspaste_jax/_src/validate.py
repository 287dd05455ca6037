"""Host input, checked and converted in one place.

Every host entry point comes through here: `segs_paste` (with or without a
mesh) and `pack_segs` (`segspaste_jax._src.api`), streaming (`stream`),
SEGS files (`segs_io`), the CLI and the ComfyUI nodes. Checks run before
anything reaches JAX and never modify their input; each raises `TypeError`
(the wrong kind of thing) or `ValueError` (the right kind with a bad shape or
value) whose message starts with the argument's name, and the SEG's index
where there is one (`segs[1][3].cropped_mask: ...`).

What comes out is ready for the layers below: `Options` (the options every
entry point forwards, checked once), `ReadSegs` (SEGS read into numpy, put
through the node's host-side rules and given a bucket, for `packing.pack`)
and `Call` (a node-style call with its arrays converted for `paste`).
`trace_checks` is the trace-time counterpart for arrays built inside `jit`.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any
from collections.abc import Sequence

import jax
import numpy as np

from segspaste_jax._src import arrays, blend, feather, node_rules, packing
from segspaste_jax._src import color as color_lib
from segspaste_jax._src import paste as paste_lib
from segspaste_jax._src import types

# Names from where they are defined, for the checks below and for the
# surfaces (CLI, ComfyUI nodes).
CHANNELS = types.CHANNELS
FEATHER_MODES = feather.FEATHER_MODES
RGBA_MODES = blend.RGBA_MODES
COLOR_MATCHES = color_lib.COLOR_MATCHES
check_modes = paste_lib.check_modes
check_color = paste_lib.check_color
compatible_channels = blend.compatible_channels
Seg = types.Seg

# Masks may overshoot [0, 1] by float rounding (e.g. after an upstream
# bilinear resize); anything further out is an error.
MASK_TOLERANCE = 1e-3
MAX_PADDED = 1 << 15  # bound on explicit bucket_size and max_segments
MAX_COORDINATE = types.MAX_COORDINATE
MAX_FRAMES = 1 << 40


# ----------------------------------------------------------------------------
# Scalars and options.

def check_int(value, name: str, low: int, high: int) -> int:
  """An integer in `[low, high]`, as the node's INT inputs are."""
  if isinstance(value, bool) or not hasattr(value, "__index__"):
    raise TypeError(f"{name}: expected an integer in {low}..{high}, "
                    f"got {value!r}")
  value = operator.index(value)
  if not low <= value <= high:
    raise ValueError(f"{name}: expected an integer in {low}..{high}, "
                     f"got {value}")
  return value


def check_alpha(alpha) -> float:
  """`alpha` in 0..255; integers as the node takes, real numbers accepted."""
  if isinstance(alpha, bool) or not isinstance(
      alpha, (int, float, np.integer, np.floating)):
    raise TypeError(f"alpha: expected a number in 0..255, got {alpha!r}")
  if not (math.isfinite(alpha) and 0 <= alpha <= 255):
    raise ValueError(f"alpha: expected a number in 0..255, got {alpha}")
  return alpha


@dataclasses.dataclass(frozen=True)
class Options:
  """The options every entry point forwards, checked (see `options`).

  Attributes:
    feather: int in 0..100.
    alpha: number in 0..255.
    feather_mode: one of `FEATHER_MODES`.
    rgba_mode: one of `RGBA_MODES`.
    node_axis_mixup: place crops as the node does under a non-uniform
      scale match.
    bucket_size: the bucket side to pack into, or None (the default).
    max_segments: the segment slots to pack into, or None (the default).
    color_match: one of `color.COLOR_MATCHES`.
    color_strength: number in [0, 1].
  """

  feather: int = 5
  alpha: float = 255
  feather_mode: str = "node"
  rgba_mode: str = "composite"
  node_axis_mixup: bool = False
  bucket_size: int | None = None
  max_segments: int | None = None
  color_match: str = "none"
  color_strength: float = 1.0

  def paste_kwargs(self) -> dict:
    """The keyword arguments `paste` and `sharded_paste` take from here."""
    return dict(feather=self.feather, alpha=self.alpha,
                feather_mode=self.feather_mode, rgba_mode=self.rgba_mode,
                color_match=self.color_match,
                color_strength=self.color_strength)


def options(feather=5, alpha=255, *, feather_mode: str = "node",
            rgba_mode: str = "composite", node_axis_mixup: bool = False,
            bucket_size: int | None = None,
            max_segments: int | None = None, color_match: str = "none",
            color_strength=1.0) -> Options:
  """Checks the options of a call (see `segs_paste`) into an `Options`."""
  feather = check_int(feather, "feather", 0, 100)
  alpha = check_alpha(alpha)
  check_modes(feather_mode, rgba_mode)
  check_color(color_match, color_strength)
  if bucket_size is not None:
    bucket_size = check_int(bucket_size, "bucket_size", 1, MAX_PADDED)
  if max_segments is not None:
    max_segments = check_int(max_segments, "max_segments", 0, MAX_PADDED)
  return Options(feather, alpha, feather_mode, rgba_mode,
                 bool(node_axis_mixup), bucket_size, max_segments,
                 color_match, float(color_strength))


# ----------------------------------------------------------------------------
# Arrays and images.

def is_float_dtype(dtype) -> bool:
  """Floating dtypes, numpy's and torch's (bfloat16 included)."""
  if isinstance(dtype, str):
    return dtype in ("float16", "bfloat16", "float32", "float64")
  return np.issubdtype(dtype, np.floating) or str(dtype) == "bfloat16"


def check_float_array(x, name: str) -> None:
  if not is_float_dtype(arrays.dtype_of(x)):
    raise TypeError(f"{name}: expected a floating-point array, got dtype "
                    f"{arrays.dtype_of(x)}")


def all_finite(x: np.ndarray) -> bool:
  """Whether every value of a float host array is finite.

  NaN propagates through both reductions; +inf shows in the largest value
  and -inf in the smallest (two streaming passes, cheaper than building
  `isfinite(x)`).
  """
  if x.size == 0:
    return True
  return math.isfinite(float(x.max())) and math.isfinite(float(x.min()))


def check_finite(x, name: str) -> None:
  """Raises where a float array (host, torch or JAX) holds NaN or inf.

  An array already in JAX (or torch on a device) is reduced where it is,
  and one bool is read back.
  """
  if isinstance(x, np.ndarray):
    finite = all_finite(x)
  elif arrays.is_torch(x):
    finite = bool(x.isfinite().all())
  else:
    finite = bool(jax.numpy.isfinite(x).all())
  if not finite:
    raise ValueError(f"{name}: contains NaN or infinite values")


def pasted_channels(image_channels: int) -> str:
  """The channel counts an image takes, for messages: "1", "3 or 4"."""
  return "3 or 4" if image_channels in (3, 4) else str(image_channels)


def check_image_shape(shape, name: str = "image") -> tuple[int, int, int, int]:
  """`[N, H, W, C]` with N, H, W >= 1 and C in (1, 3, 4)."""
  try:
    shape = tuple(operator.index(s) for s in shape)
  except TypeError:
    raise TypeError(f"{name}: expected a shape (N, H, W, C) of integers, "
                    f"got {shape!r}") from None
  if len(shape) != 4:
    raise ValueError(f"{name}: expected rank 4 [N, H, W, C], got shape {shape}")
  if shape[3] not in CHANNELS:
    raise ValueError(f"{name}: expected C in {CHANNELS} channels, got shape "
                     f"{shape}")
  if min(shape[:3]) < 1:
    raise ValueError(f"{name}: expected a non-empty [N, H, W, C], got shape "
                     f"{shape}")
  return shape


def check_image(image, name: str = "image") -> tuple[int, int, int, int]:
  """Checks an IMAGE batch: `[N, H, W, C]`, float or uint8; its shape.

  numpy, torch and JAX arrays (and memmaps) are accepted as they are; the
  data is not read.
  """
  if not arrays.is_array(image):
    raise TypeError(f"{name}: expected a numpy, torch or JAX array "
                    f"[N, H, W, C], got {type(image).__name__}")
  shape = check_image_shape(tuple(image.shape), name)
  if arrays.dtype_of(image) != np.uint8:
    check_float_array(image, name)
  return shape


def check_ref_shape(shape, image_shape, name: str = "ref_image_opt") -> None:
  """The rules for `ref_image_opt`'s shape, given the image it serves.

  The image's H, W and C (None where not known yet); one frame (used for
  every frame) or at least as many as the image's N (None where not known:
  streaming counts frames as they arrive).
  """
  n, h, w, c = image_shape
  if any(want is not None and have != want
         for have, want in zip(shape[1:3], (h, w))) or (
             c is not None and not compatible_channels(c, shape[3])):
    channels = "C" if c is None else pasted_channels(c)
    raise ValueError(f"{name}: expected frames [H, W, C] = [{h}, {w}, "
                     f"{channels}] for the image, got shape {tuple(shape)}")
  if n is not None and 1 < shape[0] < n:
    raise ValueError(f"{name}: has {shape[0]} frames for an image of {n}; "
                     "expected 1 (used for every frame) or at least "
                     f"{n}")


def check_ref_image(ref, image_shape, name: str = "ref_image_opt",
                    read_values: bool = True) -> tuple[int, int, int, int]:
  """Checks `ref_image_opt` against the image it serves; returns its shape.

  An IMAGE batch (`check_image`) of the shape `check_ref_shape` allows,
  with finite values: the blend multiplies the reference by the mask, and
  0 * NaN would leak outside the crop region.

  Args:
    ref: the reference images (any array kind).
    image_shape: `(N, H, W, C)` of the image; entries may be None where not
      known yet.
    name: the argument's name in messages.
    read_values: also check that the values are finite.
  """
  shape = check_image(ref, name)
  check_ref_shape(shape, image_shape, name)
  if read_values and arrays.dtype_of(ref) != np.uint8:
    check_finite(ref if not isinstance(ref, np.memmap) else np.asarray(ref),
                 name)
  return shape


# ----------------------------------------------------------------------------
# SEGS.

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


def check_segs(segs, name: str = "segs") -> tuple[tuple[int, int], Sequence]:
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


def check_seg_fields(seg, where: str) -> None:
  """Raises unless `seg` has the SEG fields (`control_net_wrapper` may be
  missing)."""
  missing = [f for f in types.REQUIRED_FIELDS if not hasattr(seg, f)]
  if missing:
    raise TypeError(f"{where}: expected a SEG with fields "
                    f"{types.REQUIRED_FIELDS}, "
                    f"missing {missing} on {type(seg).__name__}")


def check_coordinates(region, name: str, scaled_from=None) -> None:
  """Raises unless every coordinate is within +-`MAX_COORDINATE`."""
  if max(abs(v) for v in region) > MAX_COORDINATE:
    origin = "" if scaled_from is None else f"{scaled_from} scales to "
    raise ValueError(f"{name}: expected coordinates within "
                     f"+-{MAX_COORDINATE}, got {origin}{region}")


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
  check_float_array(mask, name)
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
    check_float_array(crop, name)
  if crop.ndim != 4 or min(crop.shape[:3]) < 1:
    raise ValueError(f"{name}: expected a non-empty [F, h, w, C] array, "
                     f"got shape {crop.shape}")
  if not compatible_channels(channels, crop.shape[3]):
    raise ValueError(f"{name}: expected {pasted_channels(channels)} "
                     f"channels for a {channels}-channel image, got shape "
                     f"{crop.shape}")
  if 1 < crop.shape[0] < frames:
    raise ValueError(f"{name}: has {crop.shape[0]} frames for an image of "
                     f"{frames}; expected 1 (used for every frame) or at "
                     f"least {frames}")
  crop = arrays.host_unit_float(crop)
  if not all_finite(crop):
    raise ValueError(f"{name}: contains NaN or infinite values")
  return crop


def read_seg(seg, where: str, channels: int, frames: int,
             with_crops: bool) -> Seg:
  """Reads and checks one SEG; messages name it `where` (`segs[1][3]`)."""
  check_seg_fields(seg, where)
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
  check_coordinates(region, f"{where}.crop_region")
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
  check_coordinates(region, f"{where}.crop_region", seg.region)
  return node_rules.scale_match(seg, rh, rw, node_axis_mixup)


def _read_one(segs, shape, with_crops: bool, node_axis_mixup: bool,
              name: str) -> tuple[tuple[int, int], tuple[Seg, ...]]:
  """One SEGS read, checked and put through the node's host-side rules:
  `(source_size, segs)`, each SEG's mask the one the node pastes with."""
  n, h, w, c = shape
  source, items = check_segs(segs, name)
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


def read_segs(segs, image_shape, opts: Options, *,
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


# ----------------------------------------------------------------------------
# SEGS files: what `save_segs` stores as given.

def seg_array(value, name: str, ndims: tuple[int, ...]) -> np.ndarray:
  """numpy, torch or JAX array as numpy, of a numeric dtype and given rank."""
  value = arrays.to_numpy(value, name)
  if value.dtype.kind not in "biuf":
    raise TypeError(f"{name}: expected a numeric array, got dtype "
                    f"{value.dtype}")
  if value.ndim not in ndims:
    raise ValueError(f"{name}: expected rank {' or '.join(map(str, ndims))}, "
                     f"got shape {value.shape}")
  return value


def seg_box(value, name: str) -> tuple[np.ndarray, np.ndarray]:
  """4 numbers as `(values, is_int)`: int64 values unless one is a float."""
  if hasattr(value, "shape"):
    items = list(seg_array(value, name, (1,)))
  else:
    items = list(value) if isinstance(value, (tuple, list)) else []
  ok = len(items) == 4 and all(
      isinstance(v, (int, float, np.integer, np.floating))
      and not isinstance(v, (bool, np.bool_)) for v in items)
  if not ok:
    raise TypeError(f"{name}: expected 4 numbers (x1, y1, x2, y2), got "
                    f"{value!r}")
  is_int = np.array([isinstance(v, (int, np.integer)) for v in items])
  dtype = np.int64 if is_int.all() else np.float64
  return np.array(items, dtype), is_int


# ----------------------------------------------------------------------------
# Streams of frames.

def count_frames(frames, num_frames, name: str) -> int:
  """The total frame count: `num_frames`, else read off an array or a list
  of arrays."""
  total = _held_frames(frames, name)
  if num_frames is not None:
    num_frames = check_int(num_frames, "num_frames", 1, MAX_FRAMES)
    if total is not None and total != num_frames:
      raise ValueError(f"num_frames: {num_frames}, but {name} holds "
                       f"{total} frames")
    return num_frames
  if total is None:
    raise ValueError(
        f"num_frames: required when {name} is an iterator (the node's "
        "per-frame crop and mask rules depend on the total frame count); "
        f"pass num_frames=N, got a {type(frames).__name__}")
  return total


def _held_frames(frames, name: str) -> int | None:
  """The frame count of an array or a list of arrays; None for others."""
  if arrays.is_array(frames):
    if len(frames.shape) != 4:
      raise ValueError(f"{name}: expected [N, H, W, C] or an iterable of "
                       f"[H, W, C] frames, got shape {tuple(frames.shape)}")
    return frames.shape[0]
  if isinstance(frames, (list, tuple)) and all(map(arrays.is_array, frames)):
    return sum(f.shape[0] if len(f.shape) == 4 else 1 for f in frames)
  return None


def check_frame_indices(frame_indices, num_frames, frames,
                        name: str) -> tuple[np.ndarray, int]:
  """`(indices, N)`: `frame_indices` as an int64 vector of frame numbers in
  `[0, N)`, N = `num_frames`, with one entry per frame of `frames` where
  that count is known."""
  if num_frames is None:
    raise ValueError("num_frames: required with frame_indices (the total "
                     "frame count N of the whole sequence, which the node's "
                     "per-frame rules depend on)")
  total = check_int(num_frames, "num_frames", 1, MAX_FRAMES)
  items = None
  if not isinstance(frame_indices, (str, bytes)):
    try:
      items = list(frame_indices)
    except TypeError:
      pass
  if items is None:
    raise TypeError(f"frame_indices: expected a sequence of frame numbers, "
                    f"got {type(frame_indices).__name__}")
  if not items:
    raise ValueError("frame_indices: expected at least one frame number, "
                     "got none")
  indices = np.asarray([check_int(i, f"frame_indices[{k}]", 0, total - 1)
                        for k, i in enumerate(items)], np.int64)
  held = _held_frames(frames, name)
  if held is not None and held != len(indices):
    raise ValueError(f"frame_indices: {len(indices)} frame numbers, but "
                     f"{name} holds {held} frames")
  return indices, total


def frame_block(item, name: str, like=None) -> np.ndarray:
  """One item of a stream of frames as a checked `[k, H, W, C]` numpy
  block: a frame `[H, W, C]` or a chunk `[k, H, W, C]`, of the frame shape
  and dtype of `like` (an earlier block) when given."""
  if not arrays.is_array(item):
    raise TypeError(f"{name}: expected a numpy, torch or JAX array "
                    f"frame [H, W, C] or chunk [k, H, W, C], got "
                    f"{type(item).__name__}")
  block = arrays.to_numpy(item, name)
  if block.ndim == 3:
    block = block[None]
  check_image(block, name)
  if like is not None and (block.shape[1:], block.dtype) != (
      like.shape[1:], like.dtype):
    raise ValueError(f"{name}: expected frames [H, W, C] = "
                     f"{list(like.shape[1:])} of {like.dtype} like the "
                     f"first, got {list(block.shape[1:])} of {block.dtype}")
  return block


# ----------------------------------------------------------------------------
# A node-style call.

@dataclasses.dataclass(frozen=True)
class Call:
  """A checked call, ready for `paste` or `sharded_paste`.

  Attributes:
    image: `[N, H, W, C]` float JAX array in [0, 1]; with `place=False`, the
      caller's array as given (any kind, uint8 included).
    owned: whether `image` is the library's own (it may be donated).
    wait: whether `image` or `ref` may share the caller's memory, so that
      the call must wait for the paste before returning.
    ref: `[N', H, W, C]` reference images like `image`, or None.
    packed: the SEGS, packed for the image (numpy leaves).
    as_uint8: the image came as uint8 and the result goes back as uint8.
  """

  image: Any
  owned: bool
  wait: bool
  ref: Any
  packed: types.PackedSegs
  as_uint8: bool


def prepare(image, segs, ref_image_opt, opts: Options, *,
            place: bool = True) -> Call:
  """Checks a node-style call's arrays and SEGS, then converts them.

  Args:
    image: `[N, H, W, C]` float in [0, 1] or uint8, numpy, torch or JAX.
    segs: torch-style SEGS, or a list of them (one per image).
    ref_image_opt: optional reference images.
    opts: checked options (`options`).
    place: convert the image and reference to JAX arrays here (False: the
      caller places them, e.g. shard by shard on a mesh).

  Raises:
    TypeError, ValueError: naming the argument (and SEG index) on bad input,
      before any array is converted.
  """
  shape = check_image(image, "image")
  if ref_image_opt is not None:
    check_ref_image(ref_image_opt, shape)
  read = read_segs(segs, shape, opts, with_crops=ref_image_opt is None)
  packed = packing.pack(read, shape, with_crops=ref_image_opt is None)
  as_uint8 = arrays.dtype_of(image) == np.uint8
  owned = wait = False
  ref = ref_image_opt
  if place:
    image, owned, wait = to_unit_float(image)
    if ref is not None:
      ref, _, wait_ref = to_unit_float(ref[:shape[0]] if ref.shape[0]
                                       > shape[0] else ref)
      wait = wait or wait_ref
  return Call(image, owned, wait, ref, packed, as_uint8)


def to_unit_float(x, own: bool = False) -> tuple[jax.Array, bool, bool]:
  """`x` as a float JAX array in [0, 1]: `(array, owned, wait)` as
  `arrays.to_device(x, own)` says (uint8 becomes a new float array of our
  own)."""
  x, owned, wait = arrays.to_device(x, own)
  if x.dtype == np.uint8:
    return arrays.unit_float(x), True, wait
  return x, owned, wait
