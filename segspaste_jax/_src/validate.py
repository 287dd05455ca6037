"""Checks at the door: scalars, image batches, reference images.

Every check raises `TypeError` (the wrong kind of thing) or `ValueError`
(the right kind with a bad shape or value) whose message starts with the
argument's name. None of them modifies its input or reaches JAX, except
`check_finite` on an array that already lives in JAX (or torch on a device),
which reduces it where it is and reads one bool back.
"""

from __future__ import annotations

import math
import operator

import numpy as np

from segspaste_jax._src import arrays

CHANNELS = (1, 3, 4)
FEATHER_MODES = ("node", "soft_edges")
RGBA_MODES = ("composite", "legacy")


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
  """Raises where a float array (host, torch or JAX) holds NaN or inf."""
  if isinstance(x, np.ndarray):
    finite = all_finite(x)
  else:
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    finite = bool(jnp.isfinite(x).all()) if not arrays.is_torch(x) else bool(
        x.isfinite().all())
  if not finite:
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


def compatible_channels(image_channels: int, pasted: int) -> bool:
  """Whether `pasted`-channel pixels may go into the image: the same
  count, or RGB and RGBA either way (today's node's rules)."""
  return image_channels == pasted or {image_channels, pasted} <= {3, 4}


def pasted_channels(image_channels: int) -> str:
  """The channel counts an image takes, for messages: "1", "3 or 4"."""
  return "3 or 4" if image_channels in (3, 4) else str(image_channels)


def check_modes(feather_mode: str, rgba_mode: str) -> bool:
  """`feather_mode` and `rgba_mode` (see `paste`); whether edges are soft."""
  if not isinstance(feather_mode, str) or feather_mode not in FEATHER_MODES:
    raise ValueError(f"feather_mode: expected one of {FEATHER_MODES}, got "
                     f"{feather_mode!r}")
  if not isinstance(rgba_mode, str) or rgba_mode not in RGBA_MODES:
    raise ValueError(f"rgba_mode: expected one of {RGBA_MODES}, got "
                     f"{rgba_mode!r}")
  return feather_mode == "soft_edges"


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
