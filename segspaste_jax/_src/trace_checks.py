"""Checks while tracing: the arguments of the device-side functions.

`crop_segs`, `make_packed_segs` and the model-resolution resampling run
inside a caller's `jit`, where values are tracers: only shapes, dtypes and
static Python values can be checked, and only those are. Every check here
raises `TypeError` (the wrong kind of thing) or `ValueError` (a bad shape
or static value) whose message starts with the argument's name, and
returns the argument as a JAX array (or Python value) ready to use. Host
input (torch-style SEGS, numpy images) is checked at the other door,
`validate`.
"""

from __future__ import annotations

import operator

import jax.numpy as jnp
import numpy as np

from segspaste_jax._src import validate

# Coordinates are clipped to this range first (pack_segs allows +-2**30),
# so that no difference taken from them wraps around in int32.
COORD_LOW, COORD_HIGH = -(1 << 30), 1 << 30


def as_array(value, name: str, what: str):
  """`jnp.asarray(value)`, or a `TypeError` naming the argument."""
  try:
    return jnp.asarray(value)
  except TypeError:
    raise TypeError(f"{name}: expected {what}, got "
                    f"{type(value).__name__}") from None


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
  # clip in the input's own type (int64 under x64, uint8, ...) before
  # narrowing: the bounds are cut to what that type holds
  info = jnp.iinfo(a.dtype)
  low = np.asarray(max(COORD_LOW, int(info.min)), a.dtype)
  high = np.asarray(min(COORD_HIGH, int(info.max)), a.dtype)
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


def sizes(value, name: str, slots: int, low: int, bucket_side: int):
  """`[S, 2]` integer `(h, w)` per segment, int32 clipped to
  `[low, bucket_side]`."""
  a = as_array(value, name, "an integer array [S, 2]")
  if not jnp.issubdtype(a.dtype, jnp.integer):
    raise TypeError(f"{name}: expected an integer array [S, 2] of (h, w), "
                    f"got dtype {a.dtype}")
  if a.shape != (slots, 2):
    raise ValueError(f"{name}: expected shape ({slots}, 2) (h, w) per "
                     f"segment, got {a.shape}")
  return jnp.clip(a.astype(jnp.int32), low, bucket_side)


def flags(value, name: str, slots: int):
  """`[S]` bool per segment."""
  a = as_array(value, name, "a bool array [S]")
  if a.dtype != jnp.bool_:
    raise TypeError(f"{name}: expected a bool array [S], got dtype {a.dtype}")
  if a.shape != (slots,):
    raise ValueError(f"{name}: expected shape ({slots},), got {a.shape}")
  return a


def reals(value, name: str, shape: tuple):
  """A real array of exactly `shape`; integers become the default float
  type (float32, float64 under x64)."""
  a = as_array(value, name, f"a real array {list(shape)}")
  if not (jnp.issubdtype(a.dtype, jnp.floating)
          or jnp.issubdtype(a.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a real array {list(shape)}, got dtype "
                    f"{a.dtype}")
  if a.shape != shape:
    raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
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
  """`channels` as a Python int in `validate.CHANNELS`."""
  value = python_int(value, "channels")
  if value not in validate.CHANNELS:
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
  if a.shape[4] not in validate.CHANNELS:
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
