"""Torch-style SEGS in and out: validation, scale match, packing.

This is the door between ComfyUI's data and the jitted core. Everything
here runs on the host with numpy: it checks what the node would crash or
silently misbehave on, applies the node's host-side rules (scale match, mask
batch rules) and pads the segments into a `PackedSegs` of bucketed shapes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import math
import operator
import os
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from segspaste_jax import resample, workspace
from segspaste_jax.segs import PackedSegs, SegsMeta, _Opaque

SEG = collections.namedtuple(
    "SEG",
    ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox",
     "label", "control_net_wrapper"],
    defaults=[None])
SEG.__doc__ = "The Impact Pack's SEG record, field for field."

_REQUIRED_FIELDS = ("cropped_image", "cropped_mask", "confidence",
                    "crop_region", "bbox", "label")
CHANNELS = (1, 3, 4)
MIN_BUCKET = 128   # one bucket covers every crop side up to 128
BUCKET_STEP = 64
MIN_SEGMENTS = 8
# Masks may overshoot [0, 1] by float rounding (e.g. after an upstream
# bilinear resize); anything further out is an error.
MASK_TOLERANCE = 1e-3
MAX_COORDINATE = 1 << 30  # crop regions stay far inside int32
MAX_PADDED = 1 << 15  # bound on explicit bucket_size and max_segments


# ----------------------------------------------------------------------------
# Arrays and scalars at the door.

def _is_torch(x) -> bool:
  return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def to_numpy(x, name: str) -> np.ndarray:
  """Views numpy, torch or JAX arrays as numpy without modifying them.

  Raises:
    TypeError: `x` is not an array.
  """
  if isinstance(x, np.ndarray):
    return x
  if _is_torch(x):
    x = x.detach().cpu()
    if str(x.dtype) == "torch.bfloat16":
      x = x.float()
    return x.numpy()
  if hasattr(x, "__array__") and hasattr(x, "shape") and hasattr(x, "dtype"):
    return np.asarray(x)
  raise TypeError(f"{name}: expected a numpy, torch or JAX array, "
                  f"got {type(x).__name__}")


def _is_float_dtype(dtype) -> bool:
  return np.issubdtype(dtype, np.floating) or str(dtype) == "bfloat16"


def aligned_zeros(shape, dtype, align: int = 64, zero: bool = True
                  ) -> np.ndarray:
  """Zeros (or, with `zero=False`, junk) starting on an `align`-byte boundary.

  XLA's CPU client takes such host buffers without copying them (through
  DLPack); numpy's own allocations are only 16-byte aligned.
  """
  dtype = np.dtype(dtype)
  size = math.prod(shape) * dtype.itemsize
  raw = (np.zeros if zero else np.empty)(size + align, np.uint8)
  offset = (-raw.ctypes.data) % align
  return raw[offset:offset + size].view(dtype).reshape(shape)


def xla_shares(x: np.ndarray) -> bool:
  """Whether `jax.device_put` can use host array `x` without copying it.

  On the CPU backend XLA shares C-contiguous, 64-byte aligned host memory;
  other backends copy to the device anyway.
  """
  return jax.default_backend() != "cpu" or (
      x.flags.c_contiguous and x.ctypes.data % 64 == 0)


def for_xla(x, pooled: bool = False):
  """`x` as a jitted function takes it without a copy where possible.

  JAX arrays pass as they are; anything else becomes numpy that XLA's CPU
  client shares instead of copying (C-contiguous, 64-byte aligned: `x`
  itself, a torch CPU tensor viewed as numpy, or else a copy of it made by
  numpy into an aligned buffer, from the reused pool with `pooled=True`).
  A jitted call shares such an argument through its own C++ path, which
  costs far less per array than `jax.device_put` does from Python (about
  0.05 against 0.5-0.8 ms for a `PackedSegs`); XLA only reads it.
  """
  if isinstance(x, jax.Array):
    return x
  x = to_numpy(x, "array")
  if xla_shares(x):
    return x
  copy = (workspace.host_empty(x.shape, x.dtype) if pooled
          else aligned_zeros(x.shape, x.dtype, zero=False))
  parallel_copy(copy, x)
  return copy


def to_jax(x, pooled: bool = False):
  """A JAX array of `x` (numpy, torch or JAX), without a copy where possible.

  `jax.device_put` of `for_xla(x, pooled)`: on the CPU backend it shares
  C-contiguous, 64-byte aligned host memory with XLA instead of copying it
  (never written to: nothing in this library donates its inputs).
  (Not DLPack: XLA buffers imported through it sometimes abort the
  interpreter at exit with JAX 0.10.)
  """
  x = for_xla(x, pooled)
  return x if isinstance(x, jax.Array) else jax.device_put(x)


_COPY_THREADS = min(4, os.cpu_count() or 1)
# Below this, one thread copies faster than the pool (its hand-offs cost more
# than they save: 12 MB in 0.84 against 1.08 ms; 24 MB 2.9 against 2.1 ms).
_COPY_MIN_BYTES = 16 << 20
_TASK_BYTES = 2 << 20  # packing tasks: about this much destination each
_copy_pool = None


def _run_parallel(tasks, nbytes: int | None = None):
  """Runs the callables `tasks` on a few threads; returns their results.

  numpy releases the GIL while copying and reducing, so host-side packing
  scales with the cores (and the first touch of fresh pages with it).
  Tasks that move fewer than `_COPY_MIN_BYTES` in all (`nbytes`, when
  known) run here, in order: handing them to the pool costs more than it
  saves (W1's packing, 4 MB: 1.5 ms on the pool, 0.7 ms here).
  """
  global _copy_pool
  small = nbytes is not None and nbytes < _COPY_MIN_BYTES
  if len(tasks) < 2 or _COPY_THREADS < 2 or small:
    return [task() for task in tasks]
  if _copy_pool is None:
    _copy_pool = concurrent.futures.ThreadPoolExecutor(
        _COPY_THREADS, thread_name_prefix="segspaste_copy")
  # list(): wait for every task (and raise what any of them raised)
  return list(_copy_pool.map(lambda task: task(), tasks))


def parallel_copy(dst: np.ndarray, src: np.ndarray) -> None:
  """`np.copyto(dst, src)`, split over a few threads for big arrays.

  A 200 MB batch copied into a fresh aligned buffer took 93 ms on one
  thread and 19 ms on two here; in 2 MB pieces, 17 ms (`chunked_copy`).
  """
  if dst.nbytes < _COPY_MIN_BYTES or _COPY_THREADS < 2 or dst.ndim == 0:
    chunked_copy(dst, src)
    return
  if _flat_pair(dst, src):
    bounds = np.linspace(0, dst.size, _COPY_THREADS + 1).astype(int)
    _run_parallel([lambda lo=lo, hi=hi: chunked_copy(dst, src, lo, hi)
                   for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo])
    return
  axis = 0 if dst.shape[0] >= _COPY_THREADS or dst.ndim == 1 else 1
  bounds = np.linspace(0, dst.shape[axis], _COPY_THREADS + 1).astype(int)
  parts = [(slice(None),) * axis + (slice(lo, hi),)
           for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
  _run_parallel([lambda part=part: np.copyto(dst[part], src[part])
                 for part in parts])


def _flat_pair(dst, src) -> bool:
  return (dst.shape == src.shape and dst.dtype == src.dtype
          and dst.flags.c_contiguous and src.flags.c_contiguous)


def chunked_copy(dst: np.ndarray, src: np.ndarray, lo: int = 0,
                 hi: int | None = None) -> None:
  """Copies elements `lo:hi` (flat order; all by default) of `src` into
  `dst` on this thread, in pieces of about 2 MB.

  glibc copies a block of many MB with non-temporal stores, which here ran
  at half the speed of the same bytes in 2 MB pieces when `dst` and `src`
  sit differently against 64-byte lines (numpy's own memory is 16-byte
  aligned, XLA's 64): 50 against 24 ms for 200 MB.
  """
  if not _flat_pair(dst, src):
    np.copyto(dst, src)
    return
  flat_dst, flat_src = dst.reshape(-1), src.reshape(-1)
  hi = flat_dst.size if hi is None else hi
  step = max(1, _TASK_BYTES // dst.itemsize)
  for start in range(lo, hi, step):
    stop = min(start + step, hi)
    np.copyto(flat_dst[start:stop], flat_src[start:stop])


def _fill_rows(dst, src, r0: int, r1: int, check: bool, zero: bool) -> bool:
  """Rows `r0:r1` of `dst [F, B, B, ...]` from `src [F or 1, h, w, ...]`.

  Copies what `src` has there, zeroes the padding (if `zero`), and returns
  whether the copied values are finite (True without looking unless
  `check`).
  """
  h, w = src.shape[1:3]
  ok = True
  top = min(r1, h)
  if top > r0:
    part = src[:, r0:top]
    np.copyto(dst[:, r0:top, :w], part)
    if zero:
      dst[:, r0:top, w:] = 0
    if check:
      ok = all_finite(part)
  if zero and r1 > max(r0, h):
    dst[:, max(r0, h):r1] = 0
  return ok


def _pad_tasks(dst, src, check: bool, zero: bool):
  """Tasks filling `dst [F, B, B, ...]` from `src`, each about 2 MB."""
  frames, rows = dst.shape[:2]
  frame_bytes = dst[0].nbytes
  if not zero:  # only the copied part counts
    rows = min(rows, src.shape[1])
    frame_bytes = src[0].nbytes
  if frame_bytes >= _TASK_BYTES:  # big frames: split each by rows
    pieces = min(rows, -(-frame_bytes // _TASK_BYTES))
    bounds = np.linspace(0, rows, pieces + 1).astype(int)
    return [lambda f=f, lo=lo, hi=hi: _fill_rows(
        dst[f:f + 1], src[f:f + 1] if len(src) > 1 else src, lo, hi, check,
        zero) for f in range(frames) for lo, hi in itertools.pairwise(bounds)]
  step = max(1, _TASK_BYTES // max(frame_bytes, 1))
  return [lambda f=f: _fill_rows(
      dst[f:f + step], src[f:f + step] if len(src) > 1 else src, 0, rows,
      check, zero) for f in range(0, frames, step)]


def check_float_array(x: np.ndarray, name: str) -> None:
  if not _is_float_dtype(x.dtype):
    raise TypeError(f"{name}: expected a floating-point array, got dtype "
                    f"{x.dtype}")


def all_finite(x: np.ndarray) -> bool:
  """Whether every value of a float array is finite, in two quick passes.

  NaN propagates through both reductions; +inf shows in the largest value
  and -inf in the smallest. (The two take about 60% of the time of one
  sum, and half that of `isfinite(x).all()`: numpy streams both at about
  three times a sum's speed.)
  """
  if x.size == 0:
    return True
  return math.isfinite(float(x.max())) and math.isfinite(float(x.min()))


def check_finite(x: np.ndarray, name: str) -> None:
  if not all_finite(x):
    raise ValueError(f"{name}: contains NaN or infinite values")


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


def check_image(image, name: str = "image"):
  """Checks an IMAGE batch (float, or uint8); returns it as a numpy or JAX
  array (no copy)."""
  if not (hasattr(image, "shape") and hasattr(image, "dtype")):
    raise TypeError(f"{name}: expected a numpy, torch or JAX array "
                    f"[N, H, W, C], got {type(image).__name__}")
  if _is_torch(image):
    image = to_numpy(image, name)
  check_image_shape(image.shape, name)
  if image.dtype != np.uint8:
    check_float_array(image, name)
  return image


def to_unit_float(x):
  """uint8 pixels in [0, 255] as float32 in [0, 1]; anything else unchanged."""
  if x.dtype != np.uint8:
    return x
  if isinstance(x, jax.Array):
    return x.astype(jnp.float32) / 255
  return np.asarray(x, np.float32) / np.float32(255)


@jax.jit
def from_unit_float(x):
  """Float pixels in [0, 1] as uint8: `round(x * 255)` clipped to [0, 255]."""
  return jnp.clip(jnp.round(x.astype(jnp.float32) * 255), 0, 255).astype(
      jnp.uint8)


# ----------------------------------------------------------------------------
# One SEG, read and checked.

@dataclasses.dataclass
class _Seg:
  crop: np.ndarray | None      # [F, h, w, C]
  mask: np.ndarray             # [h, w] or [M, h, w]
  region: tuple[int, int, int, int]
  bbox: tuple
  confidence: float
  label: str
  wrapper: Any


def _ints(value, name: str, count: int = 4) -> tuple[int, ...]:
  try:
    # tolist: a 2-D or 0-d array is not 4 integers, and bools stay bools
    items = list(to_numpy(value, name).tolist()) if hasattr(
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
    items = list(to_numpy(value, name).reshape(-1)) if hasattr(
        value, "shape") else list(value)
  except TypeError:
    raise TypeError(f"{name}: expected 4 numbers, got {value!r}") from None
  if len(items) != 4 or not all(
      isinstance(v, (int, float, np.integer, np.floating))
      and not isinstance(v, (bool, np.bool_)) for v in items):
    raise TypeError(f"{name}: expected 4 numbers (x1, y1, x2, y2), "
                    f"got {value!r}")
  return tuple(v.item() if hasattr(v, "item") else v for v in items)


def _check_coordinates(region, name: str, scaled_from=None) -> None:
  # The core holds regions as int32 and offsets them by image-sized amounts.
  if max(abs(v) for v in region) > MAX_COORDINATE:
    origin = "" if scaled_from is None else f"{scaled_from} scales to "
    raise ValueError(f"{name}: expected coordinates within "
                     f"+-{MAX_COORDINATE}, got {origin}{region}")


def _read_seg(seg, index: int, channels: int, frames: int,
              with_crops: bool, check_crop_values: bool = True) -> _Seg:
  """Reads and checks one SEG.

  `check_crop_values=False` leaves the crop's finiteness to the caller
  (`pack_segs` checks it while copying the crop, in the same pass).
  """
  where = f"segs[1][{index}]"
  missing = [f for f in _REQUIRED_FIELDS if not hasattr(seg, f)]
  if missing:
    raise TypeError(f"{where}: expected a SEG with fields {_REQUIRED_FIELDS}, "
                    f"missing {missing} on {type(seg).__name__}")

  name = f"{where}.cropped_mask"
  if seg.cropped_mask is None:
    raise TypeError(f"{name}: expected a [h, w] or [M, h, w] float array, got None")
  mask = to_numpy(seg.cropped_mask, name)
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

  crop = None
  name = f"{where}.cropped_image"
  if with_crops and seg.cropped_image is not None:
    crop = to_unit_float(to_numpy(seg.cropped_image, name))
    check_float_array(crop, name)
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
    if check_crop_values:
      check_finite(crop, name)

  region = _ints(seg.crop_region, f"{where}.crop_region")
  x1, y1, x2, y2 = region
  if x2 <= x1 or y2 <= y1:
    raise ValueError(f"{where}.crop_region: expected x1 < x2 and y1 < y2, "
                     f"got {region}")
  _check_coordinates(region, f"{where}.crop_region")
  bbox = _numbers(seg.bbox, f"{where}.bbox")
  try:
    confidence = float(seg.confidence)
  except (TypeError, ValueError):
    raise TypeError(f"{where}.confidence: expected a number, got "
                    f"{seg.confidence!r}") from None
  return _Seg(crop, mask, region, bbox, confidence, seg.label,
              getattr(seg, "control_net_wrapper", None))


def _read_segs(segs) -> tuple[tuple[int, int], Sequence]:
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


# ----------------------------------------------------------------------------
# The node's host-side rules.

def _scale_match(seg: _Seg, index: int, rh: float, rw: float,
                 node_axis_mixup: bool) -> _Seg:
  """The node's `segs_scale_match` for one SEG, each axis by its own factor.

  The node scales `y1` by `rw` and `x2` by `rh`; `node_axis_mixup=True`
  reproduces that (identical whenever the scale is uniform).
  """
  def scaled(box):
    x1, y1, x2, y2 = box
    if node_axis_mixup:
      return int(x1 * rw), int(y1 * rw), int(x2 * rh), int(y2 * rh)
    return int(x1 * rw), int(y1 * rh), int(x2 * rw), int(y2 * rh)

  region = scaled(seg.region)
  new_w, new_h = region[2] - region[0], region[3] - region[1]
  if new_w <= 0 or new_h <= 0:
    raise ValueError(f"segs[1][{index}].crop_region: {seg.region} scales to "
                     f"{region}, an empty region (the node crashes here)")
  _check_coordinates(region, f"segs[1][{index}].crop_region", seg.region)
  mask = resample.resize_bilinear(seg.mask, new_h, new_w)
  crop = None if seg.crop is None else resample.resize_crop(seg.crop, new_h,
                                                            new_w)
  return dataclasses.replace(seg, crop=crop, mask=mask, region=region,
                             bbox=scaled(seg.bbox))


def _combine_mask_batch(mask: np.ndarray) -> np.ndarray:
  """The node's rule for `M > 1` mask frames when `M != N`.

  Each frame to bytes by `uint8(m * 255)` (truncating, in the mask's own
  precision as the node does), bitwise OR, `/ 255`, then 1 where > 0.1.
  """
  combined = np.bitwise_or.reduce((mask * 255).astype(np.uint8), axis=0)
  return (combined.astype(np.float32) / np.float32(255.0) > 0.1).astype(
      np.float32)


def _paste_mask(seg: _Seg, index: int, frames: int) -> np.ndarray:
  """The mask the node pastes with: `[h, w]`, `[1, h, w]` or `[N, h, w]`."""
  mask = seg.mask
  if mask.ndim == 3 and 1 < len(mask) != frames:
    warnings.warn(
        f"segs[1][{index}].cropped_mask has {len(mask)} frames for an image "
        f"batch of {frames}: the frames are combined (bitwise OR, binarised), "
        "as the node does", stacklevel=4)
    return _combine_mask_batch(mask)
  return mask


def _round_up(value: int, step: int) -> int:
  return -(-value // step) * step


def default_bucket_size(side: int) -> int:
  """Bucket side for a largest crop/mask side: >= 128, a multiple of 64."""
  return max(MIN_BUCKET, _round_up(side, BUCKET_STEP))


def default_max_segments(count: int) -> int:
  """Padded segment count: a power of two, at least 8."""
  return max(MIN_SEGMENTS, 1 << max(count - 1, 0).bit_length())


# ----------------------------------------------------------------------------
# Packing and unpacking.

def pack_segs(segs, image_shape, *, bucket_size: int | None = None,
              max_segments: int | None = None, with_crops: bool = True,
              node_axis_mixup: bool = False,
              zero_padding: bool = True) -> PackedSegs:
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
    zero_padding: False leaves the padding of crops and masks unwritten
      (whatever the fresh memory holds): faster to pack, and `paste`
      ignores it; `segs_paste` packs this way.

  Returns:
    A `PackedSegs` whose arrays are numpy, ready for `jax.device_put`.

  Raises:
    TypeError, ValueError: with the argument, the SEG index and what was
      expected, wherever the node would crash or silently misbehave.
  """
  n, h, w, c = check_image_shape(image_shape, "image_shape")
  if bucket_size is not None:
    bucket_size = check_int(bucket_size, "bucket_size", 1, MAX_PADDED)
  if max_segments is not None:
    max_segments = check_int(max_segments, "max_segments", 0, MAX_PADDED)
  (h0, w0), items = _read_segs(segs)
  # Without a scale match, crops are checked for NaN and inf while they are
  # packed (one pass over them, not two); a scale match resizes them first,
  # so they are checked before.
  rescaled = (h0, w0) != (h, w) and h0 != 0 and w0 != 0
  read = [_read_seg(s, i, c, n, with_crops, check_crop_values=rescaled)
          for i, s in enumerate(items)]

  if rescaled:
    rh, rw = h / h0, w / w0
    read = [_scale_match(s, i, rh, rw, node_axis_mixup)
            for i, s in enumerate(read)]
    h0, w0 = h, w
  masks = [_paste_mask(s, i, n) for i, s in enumerate(read)]

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
  # Not zeroed here: the tasks below write every element that is read (and,
  # with zero_padding, the padding too), on a few threads.
  # Without zero padding (segs_paste's own packing), from the reused pool.
  empty = (workspace.host_empty if not zero_padding else
           lambda shape, dtype: aligned_zeros(shape, dtype, zero=False))
  crops = empty((slots, fc, bucket, bucket, c) if with_crops else
                (slots, 1, 1, 1, c), np.float32)
  packed_masks = empty((slots, fm, bucket, bucket), np.float32)
  regions = np.zeros((slots, 4), np.int32)
  crop_sizes = np.zeros((slots, 2), np.int32)
  mask_sizes = np.ones((slots, 2), np.int32)
  has_crop = np.zeros((slots,), bool)
  valid = np.zeros((slots,), bool)
  bboxes = np.zeros((slots, 4), np.float64)
  confidences = np.zeros((slots,), np.float64)
  mask_frames = np.zeros((slots,), np.int32)
  crop_tasks, other_tasks = [], []
  for i, (s, m) in enumerate(zip(read, masks)):
    if s.crop is not None:
      # frames past the crop's own (when it has 1: that one serves all)
      crop_tasks.append((i, _pad_tasks(crops[i, :len(s.crop)] if len(s.crop)
                                       > 1 else crops[i], s.crop,
                                       check=not rescaled, zero=zero_padding)))
      if zero_padding and 1 < len(s.crop) < fc:
        crops[i, len(s.crop):] = 0
      crop_sizes[i] = s.crop.shape[1:3]
      has_crop[i] = True
    elif with_crops and zero_padding:
      crops[i] = 0
    other_tasks += _pad_tasks(packed_masks[i], m if m.ndim == 3 else m[None],
                              check=False, zero=zero_padding)
    mask_sizes[i] = m.shape[-2:]
    mask_frames[i] = len(m) if m.ndim == 3 else 0
    regions[i] = s.region
    valid[i] = True
    bboxes[i] = s.bbox
    confidences[i] = s.confidence
  if zero_padding:
    crops[count:] = 0
    packed_masks[count:] = 0
  flat = [t for _, tasks in crop_tasks for t in tasks] + other_tasks
  moved = (crops.nbytes + packed_masks.nbytes if zero_padding else
           sum(m.nbytes + (0 if s.crop is None else s.crop.nbytes)
               for s, m in zip(read, masks)))
  results = iter(_run_parallel(flat, moved))
  for i, tasks in crop_tasks:
    finite = [next(results) for _ in tasks]  # all of them: keep in step
    if not all(finite):
      raise ValueError(f"segs[1][{i}].cropped_image: contains NaN or "
                       "infinite values")

  meta = SegsMeta(source_size=(h0, w0),
                  labels=tuple(s.label for s in read),
                  wrappers=tuple(_Opaque(s.wrapper) for s in read))
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
  arrays = {f: np.asarray(getattr(packed, f)) for f in PackedSegs._fields[:-1]}
  meta = packed.meta
  segs = []
  for i in range(meta.num_segments):
    crop = None
    if arrays["has_crop"][i]:
      fh, fw = arrays["crop_sizes"][i]
      crop = arrays["crops"][i, :arrays["crop_frames"][i], :fh, :fw].copy()
    mh, mw = arrays["mask_sizes"][i]
    frames = arrays["mask_frames"][i]
    mask = arrays["masks"][i, :max(frames, 1), :mh, :mw].copy()
    if frames == 0:
      mask = mask[0]
    segs.append(SEG(
        cropped_image=crop,
        cropped_mask=mask,
        confidence=float(arrays["confidences"][i]),
        crop_region=tuple(int(v) for v in arrays["regions"][i]),
        bbox=tuple(_number(v) for v in arrays["bboxes"][i]),
        label=meta.labels[i],
        control_net_wrapper=meta.wrappers[i].value))
  return tuple(meta.source_size), segs
