"""The data types: the Impact Pack's `SEG` record and the packed `PackedSegs`.

`PackedSegs` is the fixed-shape form of SEGS that the jitted core consumes:
a pytree of arrays, so it passes through `jax.jit`, `jax.vmap`,
`jax.device_put` and sharding untouched. Every segment is padded to one
square bucket of side `B`, and the segment count to `S`, so that different
layouts of the same bucket reuse one compiled program.

Host-only metadata that is not numeric (labels, ControlNet wrappers) rides in
the pytree's static part (`SegsMeta`); `paste` strips it before calling its
compiled kernel, so changing labels never triggers a recompile there.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, NamedTuple

import jax
import numpy as np

SEG = collections.namedtuple(
    "SEG",
    ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox",
     "label", "control_net_wrapper"],
    defaults=[None])
SEG.__doc__ = """The Impact Pack's SEG record, field for field.

Attributes:
  cropped_image: `None`, or `[F, h, w, C]` float (or uint8) pixels to paste.
  cropped_mask: `[h, w]` or `[M, h, w]` float mask in [0, 1].
  confidence: the detector's score (not used by the paste).
  crop_region: `(x1, y1, x2, y2)` ints, where the crop sits, end exclusive.
  bbox: `(x1, y1, x2, y2)`, the detection box (not used by the paste).
  label: str, the class name (not used by the paste).
  control_net_wrapper: any object or None (not used by the paste).
"""

# The channel counts of an IMAGE: grey, RGB, RGBA.
CHANNELS = (1, 3, 4)
# The names of the paste's modes (`feather.py` and `blend.py` say what they
# do; here so that the checks can name them without importing the compute).
# "node": the node's feathering; "soft_edges": the same times `edge_ramp`;
# "relative": a ramp sized to the mask (`segspaste_jax._src.relative`).
FEATHER_MODES = ("node", "soft_edges", "relative")
# "composite": today's node; "legacy": the node before 2025.
RGBA_MODES = ("composite", "legacy")
# "none": the node's picture; the others: `color.match_color`'s methods.
COLOR_MATCHES = ("none", "lowfreq", "rct", "mkl")


def compatible_channels(image_channels: int, pasted: int) -> bool:
  """Whether `pasted`-channel pixels may go into the image: the same
  count, or RGB and RGBA either way (today's node's rules)."""
  return image_channels == pasted or {image_channels, pasted} <= {3, 4}

# Crop regions stay within +-this, far inside int32: the core offsets them
# by image-sized amounts and takes differences of them.
MAX_COORDINATE = 1 << 30

# The fields every SEG must have (control_net_wrapper may be missing).
REQUIRED_FIELDS = SEG._fields[:-1]


@dataclasses.dataclass
class Seg:
  """One SEG as read and checked on the host (`read_segs.read_seg`): numpy
  arrays, crops as float in [0, 1]."""

  crop: np.ndarray | None      # [F, h, w, C] float
  mask: np.ndarray             # [h, w] or [M, h, w] float
  region: tuple[int, int, int, int]
  bbox: tuple
  confidence: float
  label: str
  wrapper: Any


class Opaque:
  """Holds an arbitrary object so that it hashes and compares by identity."""

  __slots__ = ("value",)

  def __init__(self, value: Any):
    self.value = value

  def __repr__(self) -> str:
    return f"Opaque({self.value!r})"


@dataclasses.dataclass(frozen=True)
class SegsMeta:
  """Static, non-numeric SEGS metadata kept for `unpack_segs`.

  Attributes:
    source_size: `(H0, W0)` of the SEGS after scale matching.
    labels: one label per real segment.
    wrappers: one `control_net_wrapper` per real segment, held by identity.
    per_image: for SEGS packed per image (a leading image axis on every
      array), each image's own `SegsMeta`; empty otherwise.
  """

  source_size: tuple[int, int] = (0, 0)
  labels: tuple[str, ...] = ()
  wrappers: tuple[Opaque, ...] = ()
  per_image: tuple[SegsMeta, ...] = ()

  @property
  def num_segments(self) -> int:
    """Real segments: of all images together, for a per-image pack."""
    return len(self.labels) + sum(m.num_segments for m in self.per_image)


class PackedSegs(NamedTuple):
  """SEGS padded to fixed shapes; `S` segment slots, bucket side `B`.

  `pack_segs` fills every array completely: padding (past each crop's and
  mask's own size, and the slots past the real segments) is zero. `paste`
  reads none of it, so arrays built another way may hold anything there.

  Attributes:
    crops: `[S, Fc, B, B, C]` float32 re-detailed crops in [0, 1]; `Fc` is 1
      (every crop has one frame, used for every image frame) or the largest
      crop frame count. `[S, 1, 1, 1, C]` when packed without crops.
    masks: `[S, Fm, B, B]` float32 masks in [0, 1] at their own size
      (feathering happens at that size, as in the node); `Fm` is 1 or N.
    regions: `[S, 4]` int32 crop regions `(x1, y1, x2, y2)`, end exclusive.
    crop_sizes: `[S, 2]` int32 `(h, w)` of each crop (0 where there is none).
    mask_sizes: `[S, 2]` int32 `(h, w)` of each mask (1 in padding slots).
    has_crop: `[S]` bool, whether the segment carries a `cropped_image`.
    valid: `[S]` bool, False for the padding slots.
    bboxes: `[S, 4]` float64 detection boxes (not used by `paste`).
    confidences: `[S]` float64 detector scores (not used by `paste`).
    crop_frames: `[S]` int32 frame count of each crop (0 where there is none).
    mask_frames: `[S]` int32 frame count of each mask as given (0 for 2-D).
    meta: static `SegsMeta`.
  """

  crops: Any
  masks: Any
  regions: Any
  crop_sizes: Any
  mask_sizes: Any
  has_crop: Any
  valid: Any
  bboxes: Any
  confidences: Any
  crop_frames: Any
  mask_frames: Any
  meta: SegsMeta = SegsMeta()

  @property
  def num_segments(self) -> int:
    """The number of real (non-padding) segments."""
    return self.meta.num_segments

  @property
  def per_image(self) -> bool:
    """Whether every array has a leading image axis (one SEGS per image,
    from `pack_segs` given a list of SEGS): `crops` `[N, S, 1, B, B, C]`,
    `masks` `[N, S, 1, B, B]`, `regions` `[N, S, 4]` and so on."""
    return self.masks.ndim == 5

  @property
  def bucket(self) -> tuple[int, int]:
    """``(S, B)``: the padded segment count and the bucket side."""
    return self.masks.shape[-4], self.masks.shape[-1]

  def strip_meta(self) -> PackedSegs:
    """Returns the same arrays with empty metadata (a stable pytree shape)."""
    return self._replace(meta=SegsMeta())


ARRAY_FIELDS = PackedSegs._fields[:-1]


def _flatten(p: PackedSegs):
  return tuple(getattr(p, f) for f in ARRAY_FIELDS), p.meta


def _flatten_with_keys(p: PackedSegs):
  children = tuple(
      (jax.tree_util.GetAttrKey(f), getattr(p, f)) for f in ARRAY_FIELDS)
  return children, p.meta


def _unflatten(meta: SegsMeta, children) -> PackedSegs:
  return PackedSegs(*children, meta=meta)


jax.tree_util.register_pytree_with_keys(
    PackedSegs, _flatten_with_keys, _unflatten, _flatten)
