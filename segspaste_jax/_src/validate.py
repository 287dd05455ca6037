"""Host input checks: options, images, references and the SEGS' outer form.

Every host entry point checks through here: `segs_paste` (with or without a
mesh) and `pack_segs` (`segspaste_jax._src.api`), streaming (`stream`),
SEGS files (`segs_io`), the CLI and the ComfyUI nodes. Checks run before
anything reaches JAX and never modify their input; each raises `TypeError`
(the wrong kind of thing) or `ValueError` (the right kind with a bad shape or
value) whose message starts with the argument's name, and the SEG's index
where there is one (`segs[1][3].cropped_mask: ...`).

`Options` holds the options every entry point forwards, checked once.
Reading the SEGS themselves (each field, and the node's scale match) is
`read_segs`; the trace-time counterpart for arrays inside `jit` is
`trace_checks`. This module imports no compute module.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence

import jax
import numpy as np

from segspaste_jax._src import arrays, types

# Names from where they are defined, for the checks below and for the
# surfaces (CLI, ComfyUI nodes).
CHANNELS = types.CHANNELS
FEATHER_MODES = types.FEATHER_MODES
RGBA_MODES = types.RGBA_MODES
COLOR_MATCHES = types.COLOR_MATCHES
compatible_channels = types.compatible_channels

MAX_PADDED = 1 << 15  # bound on explicit bucket_size and max_segments
MAX_COORDINATE = types.MAX_COORDINATE
MAX_GROW = 100.0  # |grow| <= 100 per cent of sqrt(area)


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


def check_modes(feather_mode: str, rgba_mode: str) -> bool:
  """`feather_mode` and `rgba_mode` (see `paste`); whether edges are soft."""
  check_choice(feather_mode, "feather_mode", FEATHER_MODES)
  check_choice(rgba_mode, "rgba_mode", RGBA_MODES)
  return feather_mode == "soft_edges"


def check_grow(grow, feather_mode: str):
  """`grow` for `feather_mode`: a number in -100..100, and 0 unless the
  mode is "relative" (the node's ramp sits where it sits). A traced `grow`
  is not read (and is ignored outside "relative")."""
  if isinstance(grow, jax.core.Tracer):
    return grow
  if isinstance(grow, bool) or not isinstance(
      grow, (int, float, np.integer, np.floating)) and not (
          hasattr(grow, "shape") and grow.shape == ()
          and np.issubdtype(np.asarray(grow).dtype, np.number)):
    raise TypeError(f"grow: expected a number in -100..100, got {grow!r}")
  value = float(grow)
  if not (math.isfinite(value) and abs(value) <= MAX_GROW):
    raise ValueError(f"grow: expected a number in -100..100, got {value}")
  if value != 0 and feather_mode != "relative":
    raise ValueError(f"grow: only feather_mode='relative' moves the ramp; "
                     f"got grow={value} with feather_mode={feather_mode!r}")
  return grow


def check_alpha(alpha) -> float:
  """`alpha` in 0..255; integers as the node takes, real numbers accepted.
  Returned as given: its type is part of the compiled program's key."""
  check_number(alpha, "alpha", 0, 255)
  return alpha


@dataclasses.dataclass(frozen=True)
class Options:
  """The options every entry point forwards, checked (see `options`).

  Attributes:
    feather: int in 0..100 (a number in 0..100 for "relative").
    alpha: number in 0..255.
    feather_mode: one of `FEATHER_MODES`.
    grow: number in -100..100, 0 unless `feather_mode` is "relative".
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
  grow: float = 0.0
  color_match: str = "none"
  color_strength: float = 1.0

  def paste_kwargs(self) -> dict:
    """The keyword arguments `paste` and `sharded_paste` take from here."""
    return dict(feather=self.feather, alpha=self.alpha,
                feather_mode=self.feather_mode, rgba_mode=self.rgba_mode,
                grow=self.grow, color_match=self.color_match,
                color_strength=self.color_strength)


def check_number(value, name: str, low: float, high: float) -> float:
  """A real number in `[low, high]` (int or float, not bool)."""
  if isinstance(value, bool) or not isinstance(
      value, (int, float, np.integer, np.floating)):
    raise TypeError(f"{name}: expected a number in {low:g}..{high:g}, got "
                    f"{value!r}")
  if not (math.isfinite(value) and low <= value <= high):
    raise ValueError(f"{name}: expected a number in {low:g}..{high:g}, got "
                     f"{value}")
  return float(value)


def check_choice(value, name: str, allowed: tuple[str, ...]) -> str:
  """`value` if it is one of `allowed`, else a ValueError naming `name`."""
  if not isinstance(value, str) or value not in allowed:
    raise ValueError(f"{name}: expected one of {allowed}, got {value!r}")
  return value


def check_strength(strength, name: str = "strength") -> None:
  """A number (or array) in [0, 1], unless traced; else an error naming
  `name`."""
  if isinstance(strength, jax.core.Tracer):
    return
  try:
    value = np.asarray(strength)
  except (TypeError, ValueError):  # anything numpy cannot read
    value = None
  if (value is None or value.dtype == bool
      or not np.issubdtype(value.dtype, np.number)):
    raise TypeError(f"{name}: expected a number in [0, 1], got "
                    f"{strength!r}")
  if not (np.all(np.isfinite(value)) and np.all((value >= 0) & (value <= 1))):
    raise ValueError(f"{name}: expected a number in [0, 1], got {strength}")


def check_color(color_match: str, color_strength) -> None:
  """`color_match` (one of `COLOR_MATCHES`) and `color_strength` (a number
  in [0, 1], or traced), see `paste`."""
  check_choice(color_match, "color_match", COLOR_MATCHES)
  check_strength(color_strength, "color_strength")
  if not isinstance(color_strength, jax.core.Tracer) and np.ndim(
      color_strength) != 0:
    raise ValueError(f"color_strength: expected a number in [0, 1], got "
                     f"shape {np.shape(color_strength)}")


def options(feather=5, alpha=255, *, feather_mode: str = "node",
            rgba_mode: str = "composite", node_axis_mixup: bool = False,
            bucket_size: int | None = None,
            max_segments: int | None = None, grow=0.0,
            color_match: str = "none", color_strength=1.0) -> Options:
  """Checks the options of a call (see `segs_paste`) into an `Options`."""
  check_modes(feather_mode, rgba_mode)
  if feather_mode == "relative":  # per cent of sqrt(area): any number
    feather = check_number(feather, "feather", 0, 100)
  else:
    feather = check_int(feather, "feather", 0, 100)
  alpha = check_alpha(alpha)
  grow = float(check_grow(grow, feather_mode))
  check_color(color_match, color_strength)
  if bucket_size is not None:
    bucket_size = check_int(bucket_size, "bucket_size", 1, MAX_PADDED)
  if max_segments is not None:
    max_segments = check_int(max_segments, "max_segments", 0, MAX_PADDED)
  return Options(feather, alpha, feather_mode, rgba_mode,
                 bool(node_axis_mixup), bucket_size, max_segments, grow,
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

  One streaming pass in the common case: a sum is finite whenever every
  value is (NaN and +-inf propagate through it), and only a sum that is
  not (an overflow of large finite values, or a bad value) is settled by
  the largest and smallest values (NaN propagates through both reductions;
  +inf shows in the largest, -inf in the smallest).
  """
  if x.size == 0:
    return True
  # float16 sums overflow early: add in float32 at least; an overflow is
  # expected here and settled below, not worth a warning to the caller
  with np.errstate(over="ignore", invalid="ignore"):
    total = np.sum(x, dtype=np.promote_types(x.dtype, np.float32))
  if math.isfinite(float(total)):
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
