"""Host-side resampling for scale matching, as the node does it.

Masks and crops with fewer than 3 channels are resized with torch's bilinear
`F.interpolate(align_corners=False)`, reproduced here in numpy with torch's
float32 arithmetic (the node quantises resized masks when it combines mask
batches, so the rounding of the resize matters). Crops with 3 or 4 channels
go through Pillow's LANCZOS on 8-bit images, exactly as the node does.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_LANCZOS = Image.Resampling.LANCZOS


def _bilinear_taps(n_in: int, n_out: int, dtype):
  """Source indices and weights for torch's bilinear, align_corners=False."""
  scale = dtype.type(n_in) / dtype.type(n_out)
  i = np.arange(n_out, dtype=dtype)
  src = scale * (i + dtype.type(0.5)) - dtype.type(0.5)
  src = np.maximum(src, dtype.type(0))
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  lam1 = np.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
  i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
  return i0, i1, (dtype.type(1) - lam1), lam1


def resize_bilinear(x: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes the last two axes of `x` to `(height, width)`, torch-style.

  Args:
    x: `[..., h, w]` float array.
    height: output height, >= 1.
    width: output width, >= 1.

  Returns:
    `[..., height, width]`, float64 if `x` is float64, else float32.
  """
  dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
  x = np.asarray(x, dtype)
  h, w = x.shape[-2:]
  r0, r1, rl0, rl1 = _bilinear_taps(h, height, dtype)
  c0, c1, cl0, cl1 = _bilinear_taps(w, width, dtype)
  top = x[..., r0, :]
  bottom = x[..., r1, :]
  top = top[..., c0] * cl0 + top[..., c1] * cl1
  bottom = bottom[..., c0] * cl0 + bottom[..., c1] * cl1
  return top * rl0[:, None] + bottom * rl1[:, None]


def resize_crop(crop: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes `[F, h, w, C]` crops as the node's `tensor_resize` does.

  C >= 3: each frame to 8 bits (`uint8(clip(255 * x, 0, 255))`, truncating),
  Pillow LANCZOS (RGBA resampled premultiplied, as Pillow does), back to
  float32 `/ 255`. C < 3: bilinear without quantisation.

  Returns:
    `[F, height, width, C]` float32.
  """
  if crop.shape[-1] < 3:
    moved = np.moveaxis(crop, -1, 1)  # [F, C, h, w]
    return np.moveaxis(resize_bilinear(moved, height, width), 1, -1).astype(
        np.float32)
  # 255 * x in the crop's own precision, as the node computes it in numpy.
  dtype = np.dtype(np.float64 if crop.dtype == np.float64 else np.float32)
  frames = []
  for frame in crop:  # host-side, once per pack; Pillow works frame by frame
    as_bytes = np.clip(dtype.type(255.0) * frame.astype(dtype), 0, 255)
    pil = Image.fromarray(as_bytes.astype(np.uint8))
    frames.append(np.asarray(pil.resize((width, height), resample=_LANCZOS)))
  return np.stack(frames).astype(np.float32) / np.float32(255.0)
