"""A plain OpenCV + numpy SEGSPaste: the CPU peer a user could write by hand.

Benchmark-only: it exists so the benchmarks can time segspaste_jax against
the obvious thirty-line CPU implementation, not only against the node.
opencv-python-headless is a benchmark-only dependency; nothing in
segspaste_jax imports this module.

It matches the node (`SEGSPaste.doit`) on what the benchmark workloads
contain: for each frame, for each SEG in order, it takes the mask (2-D, or
frame i of a per-frame `[N, h, w]` mask), feathers it with
`cv2.GaussianBlur` at sigma 10 with the node's kernel size rule and
`BORDER_REFLECT_101` (torchvision's "reflect" padding), scales it by
`alpha / 255` and blends the crop into a copy of the image in float32, the
pasted extent clipped at the right and bottom edges as in the node's
`tensor_paste`. OpenCV's blur differs from torchvision's only in rounding
(about 1e-6).
"""

from __future__ import annotations

import cv2
import numpy as np

SIGMA = 10.0  # the node's tensor_gaussian_blur_mask never changes it


def _kernel_size(h: int, w: int, feather: int):
  """The node's blur kernel size for an `h x w` mask, or None for no blur."""
  if feather <= 0:
    return None
  k = 2 * feather + 1
  s = min(h, w)
  if s <= k:
    k = int(s / 2)
    if k % 2 == 0:
      k += 1
    if k < 3:
      return None
  return k


def _feather(mask: np.ndarray, feather: int, alpha: int) -> np.ndarray:
  """Blurred `[h, w]` mask times `alpha / 255`, as `[h, w, 1]` float32."""
  mask = np.ascontiguousarray(mask, dtype=np.float32)
  k = _kernel_size(*mask.shape, feather)
  if k is not None:
    mask = cv2.GaussianBlur(mask, (k, k), SIGMA,
                            borderType=cv2.BORDER_REFLECT_101)
  return (mask * (alpha / 255))[:, :, None]


def peer_segs_paste(image: np.ndarray, segs, feather: int,
                    alpha: int = 255) -> np.ndarray:
  """Pastes every SEG's crop into every frame, the way the node does.

  A 2-D mask is blurred once and the result reused for every frame (the node
  blurs it again per frame; a user writing this by hand would not). A
  per-frame `[N, h, w]` mask is blurred once per frame.

  Args:
    image: IMAGE `[N, H, W, C]` float32 (not modified).
    segs: `((H, W), [SEG, ...])` with numpy fields; each crop `[N, h, w, C]`
      the size of its mask, each crop_region's origin non-negative.
    feather: the node's feather (kernel size `2 * feather + 1`, sigma 10).
    alpha: 0..255, opacity of every pasted segment.

  Returns:
    New `[N, H, W, C]` float32 array.

  Raises:
    NotImplementedError: the SEGS need what the benchmarks never use: a
      scale match (SEGS size != image size), a mask batch other than N,
      a crop whose size differs from its mask's, or a negative origin.
  """
  out = np.array(image, dtype=np.float32)
  n, height, width = out.shape[:3]
  (seg_h, seg_w), seg_list = segs
  if (int(seg_h), int(seg_w)) != (height, width):
    raise NotImplementedError("SEGS size != image size (scale match)")
  pastes = []
  for seg in seg_list:
    if seg.cropped_image is None:
      continue  # the node skips a SEG with no pixels (no ref_image_opt here)
    crop = np.asarray(seg.cropped_image, dtype=np.float32)
    mask = np.asarray(seg.cropped_mask)
    if mask.ndim != 2 and not (mask.ndim == 3 and len(mask) == n):
      raise NotImplementedError(f"mask shape {mask.shape} for {n} frames")
    if crop.shape[1:3] != mask.shape[-2:]:
      raise NotImplementedError("crop size != mask size (mask resize)")
    x1, y1 = int(seg.crop_region[0]), int(seg.crop_region[1])
    if x1 < 0 or y1 < 0:
      raise NotImplementedError("negative crop_region origin")
    w = min(width, x1 + crop.shape[2]) - x1
    h = min(height, y1 + crop.shape[1]) - y1
    blurred = _feather(mask, feather, alpha) if mask.ndim == 2 else None
    pastes.append((crop, mask, blurred, x1, y1, h, w))

  for i in range(n):
    for crop, mask, blurred, x1, y1, h, w in pastes:
      if h <= 0 or w <= 0:
        continue
      m = blurred if blurred is not None else _feather(mask[i], feather,
                                                       alpha)
      m = m[:h, :w]
      region = out[i, y1:y1 + h, x1:x1 + w]
      region[...] = (1 - m) * region + m * crop[i, :h, :w]
  return out
