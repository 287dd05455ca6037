"""Checks while tracing: the arguments of the device-side functions.

`paste`, `crop_segs`, `make_packed_segs` and the model-resolution
resampling run inside a caller's `jit`, where values are tracers: only
shapes, dtypes and static Python values can be checked, and only those
are. Every check here raises `TypeError` (the wrong kind of thing) or
`ValueError` (a bad shape or static value) whose message starts with the
argument's name, and returns the argument as a JAX array (or Python value)
ready to use, or None where it only checks. Host input (torch-style SEGS,
numpy images) is checked at the other door, `validate`.
"""

from __future__ import annotations

import operator

import jax.numpy as jnp
import numpy as np

from segspaste_jax._src import arrays, blend, filters
from segspaste_jax._src.types import CHANNELS, MAX_COORDINATE, PackedSegs


def as_array(value, name: str, what: str):
  """`jnp.asarray(value)`, or a `TypeError` naming the argument."""
  try:
    return jnp.asarray(value)
  except TypeError:
    raise TypeError(f"{name}: expected {what}, got "
                    f"{type(value).__name__}") from None


def real(a, name: str):
  """`a` if its dtype is floating or integer, else a `TypeError` naming
  the argument."""
  if not (jnp.issubdtype(a.dtype, jnp.floating)
          or jnp.issubdtype(a.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a floating or integer array, got "
                    f"dtype {a.dtype}")
  return a


def python_int(value, name: str, why: str = "") -> int:
  """`value` as a Python int, for arguments that fix shapes (static), or a
  `TypeError` "`name`: expected a Python int`why`, got ..."."""
  message = f"{name}: expected a Python int{why}, got {value!r}"
  if isinstance(value, (bool, np.bool_)):
    raise TypeError(message)
  try:
    return operator.index(value)
  except TypeError:  # floats, and traced values (TracerIntegerConversionError)
    raise TypeError(message) from None


def bucket(bucket_size) -> int:
  """`bucket_size` as a Python int >= 1 (it fixes shapes: static)."""
  bucket_size = python_int(bucket_size, "bucket_size",
                           " (static: it fixes the crops' shape)")
  if bucket_size < 1:
    raise ValueError(f"bucket_size: expected >= 1, got {bucket_size}")
  return bucket_size


def regions(value, name: str = "regions", per_frame: bool = False):
  """`[S, 4]` integer regions as an int32 array (clipped to +-2**30).

  With `per_frame`, `[S, N, 4]` (one region per segment per frame) is
  accepted too.
  """
  a = as_array(value, name, "an integer array [S, 4]")
  if not jnp.issubdtype(a.dtype, jnp.integer):
    raise TypeError(f"{name}: expected an integer array of crop regions "
                    f"(x1, y1, x2, y2), got dtype {a.dtype}")
  ranks = (2, 3) if per_frame else (2,)
  if a.ndim not in ranks or a.shape[-1] != 4:
    shapes = "[S, 4] or [S, N, 4]" if per_frame else "[S, 4]"
    raise ValueError(f"{name}: expected shape {shapes} (x1, y1, x2, y2), got "
                     f"{a.shape}")
  # clipped to +-MAX_COORDINATE first (the host path's bound), so that no
  # difference taken from them wraps around in int32; in the input's own
  # type (int64 under x64, uint8, ...) before narrowing: the bounds are cut
  # to what that type holds
  info = jnp.iinfo(a.dtype)
  low = np.asarray(max(-MAX_COORDINATE, int(info.min)), a.dtype)
  high = np.asarray(min(MAX_COORDINATE, int(info.max)), a.dtype)
  return jnp.clip(a, low, high).astype(jnp.int32)


def image(value, name: str = "image"):
  """`[N, H, W, C]` floating or integer image."""
  a = as_array(value, name, "an array [N, H, W, C]")
  if a.ndim != 4:
    raise ValueError(f"{name}: expected [N, H, W, C], got shape {a.shape}")
  if not (jnp.issubdtype(a.dtype, jnp.floating)
          or jnp.issubdtype(a.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a floating or integer array, got "
                    f"dtype {a.dtype}")
  return a


def float_array(value, name: str, shapes: str):
  """A floating array (values in [0, 1] by contract); `shapes` names the
  expected shapes in the messages."""
  a = as_array(value, name, f"a floating array {shapes}")
  if not jnp.issubdtype(a.dtype, jnp.floating):
    raise TypeError(f"{name}: expected a floating array {shapes} with values "
                    f"in [0, 1], got dtype {a.dtype}"
                    + (" (convert uint8 with x / 255)"
                       if a.dtype == jnp.uint8 else ""))
  return a


def _per_segment_shape(a, name: str, slots: int, rest: tuple,
                       frames: int | None, what: str):
  """Checks `a.shape` is `(slots,) + rest`, or with `frames` also
  `(slots, frames) + rest`."""
  if a.shape == (slots,) + rest:
    return
  if frames is not None:
    if a.shape != (slots, frames) + rest:
      raise ValueError(f"{name}: expected shape {(slots,) + rest} or "
                       f"{(slots, frames) + rest} (per frame) {what}, got "
                       f"{a.shape}")
    return
  raise ValueError(f"{name}: expected shape {(slots,) + rest}{what}, got "
                   f"{a.shape}")


def sizes(value, name: str, slots: int, low: int, bucket_side: int,
          frames: int | None = None):
  """`[S, 2]` integer `(h, w)` per segment (or `[S, N, 2]` per frame, with
  `frames`), int32 clipped to `[low, bucket_side]`."""
  a = as_array(value, name, "an integer array [S, 2]")
  if not jnp.issubdtype(a.dtype, jnp.integer):
    raise TypeError(f"{name}: expected an integer array [S, 2] of (h, w), "
                    f"got dtype {a.dtype}")
  _per_segment_shape(a, name, slots, (2,), frames, " (h, w) per segment")
  return jnp.clip(a.astype(jnp.int32), low, bucket_side)


def flags(value, name: str, slots: int, frames: int | None = None):
  """`[S]` bool per segment (or `[S, N]` per frame, with `frames`)."""
  a = as_array(value, name, "a bool array [S]")
  if a.dtype != jnp.bool_:
    raise TypeError(f"{name}: expected a bool array [S], got dtype {a.dtype}")
  _per_segment_shape(a, name, slots, (), frames, "")
  return a


def reals(value, name: str, shape: tuple, frames: int | None = None):
  """A real array of exactly `shape` (or with `frames` inserted after its
  first axis); integers become the default float type (float32, float64
  under x64)."""
  a = as_array(value, name, f"a real array {list(shape)}")
  if not (jnp.issubdtype(a.dtype, jnp.floating)
          or jnp.issubdtype(a.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a real array {list(shape)}, got dtype "
                    f"{a.dtype}")
  _per_segment_shape(a, name, shape[0], shape[1:], frames, "")
  return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(
      jnp.result_type(float))


def masks(value, regions_shape: tuple, name: str = "masks"):
  """`[S, B, B]` or `[S, Fm, B, B]` floating masks, `S` the segments of
  regions of shape `regions_shape`.

  Returns:
    `(masks [S, Fm, B, B], B, Fm as given: 0 for [S, B, B])`.
  """
  a = float_array(value, name, "[S, B, B] or [S, Fm, B, B]")
  if a.ndim not in (3, 4) or a.shape[-1] != a.shape[-2]:
    raise ValueError(f"{name}: expected [S, B, B] or [S, Fm, B, B] with a "
                     f"square bucket B x B, got shape {a.shape}")
  slots = regions_shape[0]
  if a.shape[0] != slots:
    raise ValueError(f"{name}: expected {slots} segments like regions "
                     f"{regions_shape}, got shape {a.shape}")
  if min(a.shape[1:]) < 1:
    raise ValueError(f"{name}: expected non-empty frames and bucket, got "
                     f"shape {a.shape}")
  given_frames = 0 if a.ndim == 3 else a.shape[1]
  return (a[:, None] if a.ndim == 3 else a), a.shape[-1], given_frames


def channels(value) -> int:
  """`channels` as a Python int in `CHANNELS`."""
  value = python_int(value, "channels")
  if value not in CHANNELS:
    raise ValueError(f"channels: expected 1, 3 or 4, got {value}")
  return value


def crops(value, slots: int, bucket_side: int, channel_count: int | None,
          name: str = "crops"):
  """`[S, Fc, B, B, C]` floating crops matching the masks' `S` and `B`
  (and `channels`, when given)."""
  a = float_array(value, name, "[S, Fc, B, B, C]")
  expected = (f"[{slots}, Fc, {bucket_side}, {bucket_side}, C] (S and B of "
              "masks)")
  if (a.ndim != 5 or a.shape[0] != slots
      or a.shape[2:4] != (bucket_side, bucket_side)):
    raise ValueError(f"{name}: expected {expected}, got shape {a.shape}")
  if a.shape[1] < 1:
    raise ValueError(f"{name}: expected at least one frame, got shape "
                     f"{a.shape}")
  if a.shape[4] not in CHANNELS:
    raise ValueError(f"{name}: expected 1, 3 or 4 channels, got shape "
                     f"{a.shape}")
  if channel_count is not None and channel_count != a.shape[4]:
    raise ValueError(f"channels: {channel_count} differs from the crops' "
                     f"{a.shape[4]} channels")
  return a


def source_size(value) -> tuple[int, int]:
  """Static `(H0, W0)` as two Python ints."""
  try:
    h0, w0 = (operator.index(v) for v in value)
  except (TypeError, ValueError):
    raise TypeError("source_size: expected two Python ints (H0, W0), got "
                    f"{value!r}") from None
  return h0, w0


def labels(value, slots: int) -> tuple[str, ...]:
  """Static labels for the leading slots: at most `slots` str."""
  if value is None:
    return ("",) * slots
  if isinstance(value, str) or not all(isinstance(v, str) for v in value):
    raise TypeError(f"labels: expected a sequence of str, got {value!r}")
  value = tuple(value)
  if len(value) > slots:
    raise ValueError(f"labels: {len(value)} labels for {slots} slots")
  return value


def choice(value, name: str, options: tuple[str, ...]) -> str:
  """One of the static strings `options`."""
  if not isinstance(value, str) or value not in options:
    raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}"
                     f", got {value!r}")
  return value


def method(value, masks: bool) -> str:
  """A resampling filter of `filters.METHODS`; None: "linear" for masks,
  "lanczos3" for pixels."""
  if value is None:
    return "linear" if masks else "lanczos3"
  return choice(value, "method", filters.METHODS)


def model_size(value, bucket_side: int) -> tuple[int, int]:
  """Static `(h, w)` of the model's resolution, two Python ints >= 1."""
  if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(
      value) != 2:
    raise TypeError(f"size: expected two Python ints (h, w) (static: they "
                    f"fix the crops' shape), got {value!r}")
  h, w = (python_int(v, "size", " (h, w) (static: they fix the crops' "
                     "shape)") for v in value)
  if h < 1 or w < 1:
    raise ValueError(f"size: expected (h, w) >= 1, got {(h, w)}")
  # `model_size.make_transform` rounds and `filters` counts tap offsets
  # in int32: 4 * B * side (and the window starts' few more sides) must fit
  side = max(h, w)
  if 4 * bucket_side * side + 16 * max(bucket_side, side) >= 1 << 31:
    raise ValueError(f"size: {(h, w)} with bucket_size {bucket_side} is "
                     "too large (4 * B * max(h, w) must stay below 2**31)")
  return h, w


def resample_input(value, name: str, sizes_shape: tuple, side: tuple):
  """Pixels `[S, F, *side, C]` or masks `[S, F, *side]` for a transform
  whose `sizes` have shape `sizes_shape` (`[S, 2]`, or `[S, N, 2]`: then `F`
  is `N` or 1).

  Returns:
    `(array, is_masks)`.
  """
  a = as_array(value, name, "an array [S, F, h, w, C] or [S, F, h, w]")
  if not (jnp.issubdtype(a.dtype, jnp.floating)
          or jnp.issubdtype(a.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a floating or integer array, got "
                    f"dtype {a.dtype}")
  slots = sizes_shape[0]
  frames = (1, sizes_shape[1]) if len(sizes_shape) == 3 else None
  expected = (f"[{slots}, F, {side[0]}, {side[1]}, C] (pixels) or [{slots}, "
              f"F, {side[0]}, {side[1]}] (masks)")
  if frames is not None:
    expected += f" with F 1 or {frames[1]}"
  if (a.ndim not in (4, 5) or a.shape[0] != slots or a.shape[2:4] != side
      or min(a.shape) < 1
      or (frames is not None and a.shape[1] not in frames)):
    raise ValueError(f"{name}: expected {expected} to match the transform, "
                     f"got shape {a.shape}")
  if a.ndim == 4 and not jnp.issubdtype(a.dtype, jnp.floating):
    # a mask is a weight in [0, 1]: an integer one is ambiguous (0/1, or
    # 0..255), and clipping it would turn 128 of 255 into 1
    raise TypeError(f"{name}: masks [S, F, h, w] must be floating, in [0, "
                    f"1], got dtype {a.dtype} (convert 8-bit masks with "
                    "x / 255, 0/1 masks with x.astype(float))")
  return a, a.ndim == 4


# ----------------------------------------------------------------------------
# `paste` and `sharded_paste`: shapes and dtypes only (free at run time).

# uint8 is refused rather than converted: `paste` returns the image's dtype
# and blends in it, inside the caller's jit; the conversion (and rounding
# back) is the caller's choice, or `segs_paste`'s, which takes uint8.
_TO_FLOAT = ("convert it with `{name}.astype(jnp.float32) / 255`{back}, or "
             "call segs_paste, which takes uint8 and gives uint8 back")


def _shape_dtype(value, name: str, what: str):
  """`(shape, dtype)` of an array or tracer, read without converting it."""
  try:  # numpy, JAX (tracers too) and torch dtypes, bfloat16 included
    return tuple(value.shape), jnp.dtype(arrays.dtype_of(value))
  except (AttributeError, TypeError):
    raise TypeError(f"{name}: expected {what}, got "
                    f"{type(value).__name__}") from None


def _frames_image(value, name: str, allow_uint8: bool):
  """`[N, H, W, C]` of a floating (or, allowed, uint8) array, C in
  `CHANNELS`, N, H, W >= 1; its shape."""
  what = "a floating array [N, H, W, C]"
  shape, dtype = _shape_dtype(value, name, what)
  if len(shape) != 4:
    raise ValueError(f"{name}: expected rank 4 [N, H, W, C], got shape "
                     f"{shape}")
  if dtype == np.uint8 and not allow_uint8:
    back = (" and the result back with `jnp.round(out * 255).astype("
            "jnp.uint8)`" if name == "image" else "")
    raise TypeError(f"{name}: expected {what} with values in [0, 1], got "
                    f"uint8; {_TO_FLOAT.format(name=name, back=back)}")
  if not (jnp.issubdtype(dtype, jnp.floating) or (
      allow_uint8 and dtype == np.uint8)):
    raise TypeError(f"{name}: expected {what}, got dtype {dtype}")
  if shape[3] not in CHANNELS or min(shape[:3]) < 1:
    raise ValueError(f"{name}: expected a non-empty [N, H, W, C] with C in "
                     f"{CHANNELS}, got shape {shape}")
  return shape


def paste_args(image, packed, ref_image, *, allow_uint8: bool = False
               ) -> None:
  """Checks the arrays of `paste` (and `sharded_paste`) against each other.

  Only shapes and dtypes are read, so the checks cost nothing inside a
  caller's `jit`: the image `[N, H, W, C]` floating (uint8 refused with the
  conversion to use, unless `allow_uint8`); `packed` a `PackedSegs` whose
  masks have 1 or N frames and crops 1 or at least N (one leading image
  axis of N for a per-image pack), with one slot count; `ref_image` of the
  image's H and W and 1 or N frames; pasted channels that blend into the
  image's (`blend.compatible_channels`).

  Raises:
    TypeError, ValueError: naming the argument (`image`, `packed.masks`,
      `packed.crops`, `ref_image`) and what was expected.
  """
  n, h, w, c = _frames_image(image, "image", allow_uint8)
  if not isinstance(packed, PackedSegs):
    raise TypeError(f"packed: expected a PackedSegs (pack_segs, "
                    f"make_packed_segs), got {type(packed).__name__}")
  masks, _ = _shape_dtype(packed.masks, "packed.masks", "an array")
  crops, _ = _shape_dtype(packed.crops, "packed.crops", "an array")
  lead = len(masks) - 4
  if lead not in (0, 1) or len(crops) != 5 + lead:
    raise ValueError(f"packed: expected masks [S, Fm, B, B] and crops [S, Fc,"
                     f" B, B, C] (or both with a leading image axis), got "
                     f"shapes {masks} and {crops}")
  if lead and (masks[0] != n or crops[0] != n):
    raise ValueError(f"packed: packed per image for {masks[0]} images, got "
                     f"an image of {n} frames (shape {(n, h, w, c)})")
  if crops[lead] != masks[lead]:
    raise ValueError(f"packed.crops: expected {masks[lead]} slots like "
                     f"packed.masks {masks}, got shape {crops}")
  if masks[lead + 1] not in (1, n):
    raise ValueError(f"packed.masks: has {masks[lead + 1]} frames (shape "
                     f"{masks}) for an image of {n}; expected 1 or {n}: "
                     "pack the SEGS for this image's frames")
  if 1 < crops[lead + 1] < n:
    raise ValueError(f"packed.crops: has {crops[lead + 1]} frames (shape "
                     f"{crops}) for an image of {n}; expected 1 or at least "
                     f"{n}: pack the SEGS for this image's frames")
  pasted, source = crops[-1], "packed.crops"
  if ref_image is not None:
    ref = _frames_image(ref_image, "ref_image", allow_uint8)
    if ref[1:3] != (h, w) or ref[0] not in (1, n):
      raise ValueError(f"ref_image: expected [1 or {n}, {h}, {w}, C] like "
                       f"the image {(n, h, w, c)}, got shape {ref}")
    pasted, source = ref[3], "ref_image"
  if not blend.compatible_channels(c, pasted):
    raise ValueError(f"{source}: cannot paste {pasted}-channel pixels into "
                     f"a {c}-channel image (same count, or RGB and RGBA "
                     "either way)")
