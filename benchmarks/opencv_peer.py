"""A plain OpenCV + numpy SEGSPaste: the CPU peer a capable user would write.

Benchmark-only: it exists so the benchmarks can time segspaste_jax against
the obvious hand-written CPU implementation, not only against the node.
opencv-python-headless is a benchmark-only dependency; nothing in
segspaste_jax imports this module.

It is written the way a user who knows numpy and OpenCV would write it for
speed, with nothing exotic:

- OpenCV runs on all of the machine's threads (`cv2.setNumThreads` with
  `os.cpu_count()`, set explicitly on import);
- each 2-D mask is blurred once (`cv2.GaussianBlur`), scaled by
  `alpha / 255` in place, and reused for every frame (the node blurs it
  again for every frame); a per-frame `[N, h, w]` mask is blurred once per
  frame;
- the blend is done in place on a view of the output,
  `region += m * (crop - region)`, through one scratch buffer per segment
  (numpy's `out=` arguments), so no other temporaries are made.

It matches the node (`SEGSPaste.doit`, docs/node.rst) on what the benchmark
workloads contain: for each frame, each SEG in order, the mask (2-D, or
frame i of a per-frame mask) feathered at sigma 10 with the node's kernel
size rule and `BORDER_REFLECT_101` (torchvision's "reflect" padding),
times `alpha / 255`, blends the crop into a copy of the image in float32,
the pasted extent clipped at the right and bottom edges as in the node's
`tensor_paste`. `region += m * (crop - region)` is the node's
`(1 - m) * region + m * crop` rearranged; OpenCV's blur and the rearranged
blend differ from the node only in float rounding (about 1e-6).
"""

from __future__ import annotations

import concurrent.futures
import os

import cv2
import numpy as np

SIGMA = 10.0  # the node's tensor_gaussian_blur_mask never changes it
THREADS = os.cpu_count() or 1
cv2.setNumThreads(THREADS)  # all threads (OpenCV's default, made explicit)


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
  """`[h, w]` mask blurred and times `alpha / 255`, as `[h, w, 1]` float32."""
  mask = np.asarray(mask, dtype=np.float32)
  k = _kernel_size(*mask.shape, feather)
  if k is not None:
    mask = cv2.GaussianBlur(mask, (k, k), SIGMA,
                            borderType=cv2.BORDER_REFLECT_101)
  else:
    mask = mask.copy()  # scaled in place below: never the caller's array
  mask *= np.float32(alpha / 255)
  return mask[:, :, None]


def peer_segs_paste(image: np.ndarray, segs, feather: int,
                    alpha: int = 255) -> np.ndarray:
  """Pastes every SEG's crop into every frame, the way the node does.

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
  n = out.shape[0]
  pastes = [(crop, masks, np.empty((h, w, out.shape[3]), np.float32), x1, y1,
             h, w)
            for crop, masks, x1, y1, h, w in _prepared(out.shape, segs,
                                                       feather, alpha)]

  for i in range(n):
    for crop, masks, scratch, x1, y1, h, w in pastes:
      region = out[i, y1:y1 + h, x1:x1 + w]  # a view: written in place
      np.subtract(crop[i], region, out=scratch)
      np.multiply(scratch, masks[i if len(masks) > 1 else 0], out=scratch)
      region += scratch
  return out


def _prepared(shape, segs, feather: int, alpha) -> list:
  """Each SEG that pastes anything, ready for both peers: `(crop, masks,
  x1, y1, h, w)` with the crop cut to its pasted `h x w` and its masks
  feathered once, `[1, h, w]` (used for every frame) or `[N, h, w]`.

  Raises:
    NotImplementedError: as `peer_segs_paste`.
  """
  n, height, width = shape[:3]
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
    if h <= 0 or w <= 0:
      continue  # wholly past the right or bottom edge: nothing to paste
    # every 2-D mask blurred once; a per-frame mask once per frame
    if mask.ndim == 2:
      masks = _feather(mask, feather, alpha)[None, :h, :w]
    else:
      masks = np.stack([_feather(m, feather, alpha)[:h, :w] for m in mask])
    pastes.append((crop[:, :h, :w], masks, x1, y1, h, w))
  return pastes


def _split(count: int, parts: int) -> list[slice]:
  """`count` items cut into at most `parts` contiguous slices."""
  parts = max(1, min(parts, count))
  bounds = [count * k // parts for k in range(parts + 1)]
  return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def peer_segs_paste_threaded(image: np.ndarray, segs, feather: int,
                             alpha: int = 255) -> np.ndarray:
  """`peer_segs_paste` with the frames spread over all threads.

  Same contract and values. Each thread copies its own frames (or rows, for
  a single frame) of the image and blends every segment into them with one
  numpy expression per segment over all its frames (a 2-D mask broadcast
  over them), in place, through one scratch buffer; numpy releases the GIL
  in these loops, so the threads run at once.
  """
  n, height = image.shape[:2]
  out = np.empty(image.shape, np.float32)
  pastes = _prepared(image.shape, segs, feather, alpha)

  def frames(part: slice) -> None:
    out[part] = image[part]
    for crop, masks, x1, y1, h, w in pastes:
      region = out[part, y1:y1 + h, x1:x1 + w]
      scratch = np.subtract(crop[part], region)
      np.multiply(scratch, masks if len(masks) == 1 else masks[part],
                  out=scratch)
      region += scratch

  def rows(part: slice) -> None:  # one frame: each thread its own rows
    out[:, part] = image[:, part]
    for crop, masks, x1, y1, h, w in pastes:
      lo, hi = max(part.start, y1), min(part.stop, y1 + h)
      if lo >= hi:
        continue
      region = out[:, lo:hi, x1:x1 + w]
      scratch = np.subtract(crop[:, lo - y1:hi - y1], region)
      np.multiply(scratch, masks[:, lo - y1:hi - y1], out=scratch)
      region += scratch

  work, count = (frames, n) if n > 1 else (rows, height)
  parts = _split(count, THREADS)
  if len(parts) == 1:
    work(parts[0])
  else:
    list(_POOL.map(work, parts))
  return out


_POOL = concurrent.futures.ThreadPoolExecutor(THREADS)
