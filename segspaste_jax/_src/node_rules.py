"""The node's host-side rules: scale match and mask batches.

These run on the host with numpy, before packing, exactly as the node
applies them before its loops: `segs_scale_match` when the SEGS were
detected on an image of another size, and the rule for masks whose frame
count differs from the image's.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Any

import numpy as np

from segspaste_jax._src import resample

MAX_COORDINATE = 1 << 30  # crop regions stay far inside int32


@dataclasses.dataclass
class Seg:
  """One SEG as read and checked at the door (numpy arrays)."""
  crop: np.ndarray | None      # [F, h, w, C] float
  mask: np.ndarray             # [h, w] or [M, h, w] float
  region: tuple[int, int, int, int]
  bbox: tuple
  confidence: float
  label: str
  wrapper: Any


def check_coordinates(region, name: str, scaled_from=None) -> None:
  """Raises unless every coordinate is within +-`MAX_COORDINATE`."""
  # The core holds regions as int32 and offsets them by image-sized amounts.
  if max(abs(v) for v in region) > MAX_COORDINATE:
    origin = "" if scaled_from is None else f"{scaled_from} scales to "
    raise ValueError(f"{name}: expected coordinates within "
                     f"+-{MAX_COORDINATE}, got {origin}{region}")


def needs_scale_match(source_size, image_hw) -> bool:
  """The node rescales when `(H0, W0) != (H, W)` and neither is 0."""
  h0, w0 = source_size
  return (h0, w0) != tuple(image_hw) and h0 != 0 and w0 != 0


def scale_match(seg: Seg, where: str, rh: float, rw: float,
                node_axis_mixup: bool) -> Seg:
  """The node's `segs_scale_match` for one SEG, each axis by its own factor.

  `where` names the SEG in messages (`segs[1][3]`).

  Coordinates are truncated (`int()`) as the node does. The node scales
  `y1` by `rw` and `x2` by `rh`; `node_axis_mixup=True` reproduces that
  (identical whenever the scale is uniform). The mask is resized bilinearly
  and the crop as `resample.resize_crop` does, to the new region's size.
  """
  def scaled(box):
    x1, y1, x2, y2 = box
    if node_axis_mixup:
      return int(x1 * rw), int(y1 * rw), int(x2 * rh), int(y2 * rh)
    return int(x1 * rw), int(y1 * rh), int(x2 * rw), int(y2 * rh)

  region = scaled(seg.region)
  new_w, new_h = region[2] - region[0], region[3] - region[1]
  if new_w <= 0 or new_h <= 0:
    raise ValueError(f"{where}.crop_region: {seg.region} scales to "
                     f"{region}, an empty region (the node crashes here)")
  check_coordinates(region, f"{where}.crop_region", seg.region)
  mask = resample.resize_bilinear(seg.mask, new_h, new_w)
  crop = None if seg.crop is None else resample.resize_crop(seg.crop, new_h,
                                                            new_w)
  return dataclasses.replace(seg, crop=crop, mask=mask, region=region,
                             bbox=scaled(seg.bbox))


def combine_mask_batch(mask: np.ndarray) -> np.ndarray:
  """The node's rule for `M > 1` mask frames when `M != N`.

  Each frame to bytes by `uint8(m * 255)` (truncating, in the mask's own
  precision as the node does), bitwise OR, `/ 255`, then 1 where > 0.1.
  """
  combined = np.bitwise_or.reduce((mask * 255).astype(np.uint8), axis=0)
  return (combined.astype(np.float32) / np.float32(255.0) > 0.1).astype(
      np.float32)


def paste_mask(seg: Seg, where: str, frames: int) -> np.ndarray:
  """The mask the node pastes with: `[h, w]`, `[1, h, w]` or `[N, h, w]`.

  Warns (as the node prints) when `M > 1` frames are combined; the warning
  points at the line outside this package that called into it.
  """
  mask = seg.mask
  if mask.ndim == 3 and 1 < len(mask) != frames:
    warnings.warn(
        f"{where}.cropped_mask has {len(mask)} frames for an image "
        f"batch of {frames}: the frames are combined (bitwise OR, binarised), "
        "as the node does", stacklevel=_caller_stacklevel())
    return combine_mask_batch(mask)
  return mask


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller_stacklevel() -> int:
  """The `stacklevel` of the first frame outside this package, as seen from
  the function that calls this one."""
  frame, level = sys._getframe(1), 1  # pylint: disable=protected-access
  while frame is not None and os.path.abspath(
      frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
    frame, level = frame.f_back, level + 1
  return level
