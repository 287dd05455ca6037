"""The packed, fixed-shape form of SEGS that the jitted core consumes.

`PackedSegs` is a pytree of arrays: it passes through `jax.jit`, `jax.vmap`,
`jax.device_put` and sharding untouched. Every segment is padded to one
square bucket of side `B`, and the segment count to `S`, so that different
layouts of the same bucket reuse one compiled program.

Host-only metadata that is not numeric (labels, ControlNet wrappers) rides in
the pytree's static part (`SegsMeta`); `paste` strips it before calling its
compiled kernel, so changing labels never triggers a recompile there.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax


class _Opaque:
  """Holds an arbitrary object so that it hashes and compares by identity."""

  __slots__ = ("value",)

  def __init__(self, value: Any):
    self.value = value

  def __repr__(self) -> str:
    return f"_Opaque({self.value!r})"


@dataclasses.dataclass(frozen=True)
class SegsMeta:
  """Static, non-numeric SEGS metadata kept for `unpack_segs`.

  Attributes:
    source_size: `(H0, W0)` of the SEGS after scale matching.
    labels: one label per real segment.
    wrappers: one `control_net_wrapper` per real segment, held by identity.
  """

  source_size: tuple[int, int] = (0, 0)
  labels: tuple[str, ...] = ()
  wrappers: tuple[_Opaque, ...] = ()

  @property
  def num_segments(self) -> int:
    return len(self.labels)


class PackedSegs(NamedTuple):
  """SEGS padded to fixed shapes; `S` segments, bucket side `B`.

  Attributes:
    crops: `[S, Fc, B, B, C]` float32 re-detailed crops, zero-padded; `Fc` is 1
      (every crop has one frame, broadcast over the image's frames) or the
      largest crop frame count.
    masks: `[S, Fm, B, B]` float32 masks in [0, 1], zero-padded, at their own
      size (feathering happens at that size, as in the node); `Fm` is 1 or N.
    regions: `[S, 4]` int32 crop regions `(x1, y1, x2, y2)`, end exclusive.
    crop_sizes: `[S, 2]` int32 `(h, w)` of each crop (0 where there is none).
    mask_sizes: `[S, 2]` int32 `(h, w)` of each mask.
    has_crop: `[S]` bool, whether the segment carries a `cropped_image`.
    valid: `[S]` bool, False for the padding segments.
    bboxes: `[S, 4]` int32 detection boxes (not used by `paste`).
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
  def bucket(self) -> tuple[int, int]:
    """`(S, B)`: the padded segment count and the bucket side."""
    return self.masks.shape[0], self.masks.shape[-1]

  def strip_meta(self) -> "PackedSegs":
    """Returns the same arrays with empty metadata (a stable pytree shape)."""
    return self._replace(meta=SegsMeta())


_ARRAY_FIELDS = PackedSegs._fields[:-1]


def _flatten(p: PackedSegs):
  return tuple(getattr(p, f) for f in _ARRAY_FIELDS), p.meta


def _flatten_with_keys(p: PackedSegs):
  children = tuple(
      (jax.tree_util.GetAttrKey(f), getattr(p, f)) for f in _ARRAY_FIELDS)
  return children, p.meta


def _unflatten(meta: SegsMeta, children) -> PackedSegs:
  return PackedSegs(*children, meta=meta)


jax.tree_util.register_pytree_with_keys(
    PackedSegs, _flatten_with_keys, _unflatten, _flatten)
