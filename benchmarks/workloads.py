"""Synthetic SEGSPaste workloads with fixed seeds.

Every workload is an IMAGE `[N, H, W, 3]` (numpy float32 in [0, 1]) and a
torch-style SEGS `((H, W), [SEG, ...])` whose fields are numpy arrays, the way
detectors and detailers hand them to the node. The crops are random pixels and
the masks soft elliptical blobs with a little noise, so the feathering and the
blend both do real work.
"""

from __future__ import annotations

import collections

import numpy as np

SEG = collections.namedtuple(
    "SEG",
    [
        "cropped_image",
        "cropped_mask",
        "confidence",
        "crop_region",
        "bbox",
        "label",
        "control_net_wrapper",
    ],
    defaults=[None],
)

# name -> (feather, description)
WORKLOADS = {
    "W1": (5, "1 frame 1024x1024, 4 segments of 192-320 px, 2-D masks, "
              "feather 5"),
    "W2": (5, "16 frames 1024x1024, 8 segments of 192-320 px, 2-D masks, "
              "feather 5"),
    "W3": (10, "64 frames 512x512, 4 segments of 96-192 px, per-frame 3-D "
               "masks, feather 10"),
    "W4": (50, "1 frame 2048x2048, 2 segments of 640-768 px, 2-D masks, "
               "feather 50"),
}

# name -> (frames, height, width, segments, (min, max side), per-frame masks)
_LAYOUTS = {
    "W1": (1, 1024, 1024, 4, (192, 320), False),
    "W2": (16, 1024, 1024, 8, (192, 320), False),
    "W3": (64, 512, 512, 4, (96, 192), True),
    "W4": (1, 2048, 2048, 2, (640, 768), False),
}


def soft_blob(rng: np.random.Generator, h: int, w: int,
              shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
  """A soft elliptical mask with a little noise, float32 in [0, 1].

  Args:
    rng: random generator for the blob's shape and the noise.
    h: mask height.
    w: mask width.
    shift: `(dy, dx)` offset of the blob's centre, in fractions of the size.

  Returns:
    Array `[h, w]` float32: about 1 inside the ellipse, falling smoothly to 0
    towards the crop's border.
  """
  cy = 0.5 + rng.uniform(-0.08, 0.08) + shift[0]
  cx = 0.5 + rng.uniform(-0.08, 0.08) + shift[1]
  ry = rng.uniform(0.30, 0.42)
  rx = rng.uniform(0.30, 0.42)
  yy = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
  xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5) / w
  r2 = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
  blob = np.clip(1.6 - r2, 0.0, 1.0)
  noise = rng.uniform(-0.05, 0.05, size=(h, w)).astype(np.float32)
  return np.clip(blob + noise, 0.0, 1.0).astype(np.float32)


def make_segs(rng: np.random.Generator, frames: int, height: int, width: int,
              segments: int, side_range: tuple[int, int],
              per_frame_masks: bool, channels: int = 3):
  """Random SEGS for an image of the given size.

  Args:
    rng: random generator.
    frames: N, the number of frames (each crop carries N frames).
    height: image height H.
    width: image width W.
    segments: number of SEGs.
    side_range: inclusive range that each crop's height and width are drawn
      from, independently.
    per_frame_masks: 3-D masks `[N, h, w]` (video) if True, else 2-D `[h, w]`.
    channels: C of the crops.

  Returns:
    `((height, width), [SEG, ...])` with numpy float32 arrays; every
    crop_region lies inside the image and every bbox inside its crop_region.
  """
  lo, hi = side_range
  seg_list = []
  for _ in range(segments):
    h = int(rng.integers(lo, hi + 1))
    w = int(rng.integers(lo, hi + 1))
    x1 = int(rng.integers(0, width - w + 1))
    y1 = int(rng.integers(0, height - h + 1))
    crop_region = (x1, y1, x1 + w, y1 + h)
    bx1 = x1 + int(rng.integers(0, w // 4 + 1))
    by1 = y1 + int(rng.integers(0, h // 4 + 1))
    bx2 = x1 + w - int(rng.integers(0, w // 4 + 1))
    by2 = y1 + h - int(rng.integers(0, h // 4 + 1))
    bbox = (bx1, by1, bx2, by2)
    cropped_image = rng.random((frames, h, w, channels), dtype=np.float32)
    if per_frame_masks:
      mask = np.stack([
          soft_blob(rng, h, w, shift=(0.03 * np.sin(0.2 * t),
                                      0.03 * np.cos(0.2 * t)))
          for t in range(frames)
      ])
    else:
      mask = soft_blob(rng, h, w)
    seg_list.append(SEG(cropped_image, mask, 0.9, crop_region, bbox, "face"))
  return (height, width), seg_list


def make_workload(name: str, seed: int = 0):
  """Builds one of the named benchmark workloads.

  Args:
    name: a key of `WORKLOADS` ("W1" .. "W4").
    seed: random seed; the same seed gives the same arrays.

  Returns:
    `(image, segs)`: image numpy float32 `[N, H, W, 3]` in [0, 1] and segs
    `((H, W), [SEG, ...])`. The feather to use is `WORKLOADS[name][0]`, alpha
    is 255.
  """
  if name not in _LAYOUTS:
    raise KeyError(f"unknown workload {name!r}; known: {sorted(_LAYOUTS)}")
  frames, height, width, segments, side_range, per_frame = _LAYOUTS[name]
  rng = np.random.default_rng(seed)
  image = rng.random((frames, height, width, 3), dtype=np.float32)
  segs = make_segs(rng, frames, height, width, segments, side_range, per_frame)
  return image, segs
