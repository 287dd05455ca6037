"""The node's host-side rules: scale match and mask batches.

These run on the host with numpy, before packing, exactly as the node
applies them before its loops: `segs_scale_match` when the SEGS were
detected on an image of another size, and the rule for masks whose frame
count differs from the image's.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from segspaste_jax._src import resample, warn
from segspaste_jax._src.types import Seg


def needs_scale_match(source_size, image_hw) -> bool:
  """The node rescales when `(H0, W0) != (H, W)` and neither is 0."""
  h0, w0 = source_size
  return (h0, w0) != tuple(image_hw) and h0 != 0 and w0 != 0


def scale_box(box, rh: float, rw: float, node_axis_mixup: bool) -> tuple:
  """A box `(x1, y1, x2, y2)` scaled as the node's `segs_scale_match` does.

  Coordinates are truncated (`int()`) as the node does. The node scales
  `y1` by `rw` and `x2` by `rh`; `node_axis_mixup=True` reproduces that
  (identical whenever the scale is uniform); otherwise each axis is scaled
  by its own factor.
  """
  x1, y1, x2, y2 = box
  if node_axis_mixup:
    return int(x1 * rw), int(y1 * rw), int(x2 * rh), int(y2 * rh)
  return int(x1 * rw), int(y1 * rh), int(x2 * rw), int(y2 * rh)


def scale_match(seg: Seg, rh: float, rw: float, node_axis_mixup: bool) -> Seg:
  """The node's `segs_scale_match` for one SEG (whose scaled region must
  not be empty): the region and bbox scaled by `scale_box`, the mask
  resized bilinearly and the crop as `resample.resize_crop` does, to the new
  region's size."""
  region = scale_box(seg.region, rh, rw, node_axis_mixup)
  new_w, new_h = region[2] - region[0], region[3] - region[1]
  mask = resample.resize_bilinear(seg.mask, new_h, new_w)
  crop = None if seg.crop is None else resample.resize_crop(seg.crop, new_h,
                                                            new_w)
  return dataclasses.replace(seg, crop=crop, mask=mask, region=region,
                             bbox=scale_box(seg.bbox, rh, rw,
                                            node_axis_mixup))


def combine_mask_batch(mask: np.ndarray) -> np.ndarray:
  """The node's rule for `M > 1` mask frames when `M != N`.

  Each frame to bytes by `uint8(m * 255)` (truncating, in the mask's own
  precision as the node does), bitwise OR, `/ 255`, then 1 where > 0.1.
  """
  combined = np.bitwise_or.reduce((mask * 255).astype(np.uint8), axis=0)
  return (combined.astype(np.float32) / np.float32(255.0) > 0.1).astype(
      np.float32)


def paste_mask(mask: np.ndarray, where: str, frames: int) -> np.ndarray:
  """The mask the node pastes with: `[h, w]`, `[1, h, w]` or `[N, h, w]`.

  Warns (as the node prints) when `M > 1` frames are combined; `where`
  names the SEG, and the warning points at the caller (`warn`).
  """
  if mask.ndim == 3 and 1 < len(mask) != frames:
    warn.warn(
        f"{where}.cropped_mask has {len(mask)} frames for an image "
        f"batch of {frames}: the frames are combined (bitwise OR, binarised), "
        "as the node does")
    return combine_mask_batch(mask)
  return mask

