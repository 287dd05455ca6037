"""Seeded random SEGS of every shape the node meets, for the tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from segspaste_jax import SEG

try:
  import torch
except ImportError:  # torch is optional: numpy-only SEGS then
  torch = None


@dataclasses.dataclass
class Case:
  image: np.ndarray
  segs: tuple
  feather: int
  alpha: int
  ref_image_opt: np.ndarray | None = None
  feather_mode: str = "node"

  def kwargs(self):
    return dict(feather=self.feather, alpha=self.alpha,
                ref_image_opt=self.ref_image_opt,
                feather_mode=self.feather_mode)


def seg(crop, mask, region, label="face"):
  """A SEG whose bbox is its crop region, confidence 0.5."""
  return SEG(crop, mask, 0.5, region, region, label)


def _maybe_torch(rng, x):
  if torch is not None and x is not None and rng.random() < 0.4:
    return torch.from_numpy(np.ascontiguousarray(x))
  return x


def random_mask(rng, frames, h, w):
  """Soft blobs plus noise, or plain noise, in [0, 1]; [h, w] if frames == 0."""
  shape = (max(frames, 1), h, w)
  if rng.random() < 0.5:
    return rng.random(shape if frames else (h, w)).astype(np.float32)
  yy, xx = np.mgrid[0:h, 0:w]
  out = []
  for _ in range(shape[0]):
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = rng.uniform(0.2, 0.7) * max(h, w)
    blob = np.clip(1.2 - np.hypot(yy - cy, xx - cx) / r, 0, 1)
    out.append(np.clip(blob + 0.1 * rng.standard_normal((h, w)), 0, 1))
  out = np.stack(out).astype(np.float32)
  return out if frames else out[0]


def random_case(seed: int) -> Case:
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 6))
  c = int(rng.choice([1, 3, 4]))
  scale = int(rng.choice([1, 1, 1, 2, 3]))
  # the image is a whole multiple of the source size when scale-matching
  h0, w0 = (int(rng.integers(max(16 // scale, 6), 200 // scale + 1))
            for _ in range(2))
  h, w = h0 * scale, w0 * scale
  image = rng.random((n, h, w, c)).astype(np.float32)
  feather = int(rng.choice([0, 1, 2, 3, 5, 8, 10, 20, 50, 100,
                            int(rng.integers(0, 101))]))
  alpha = int(rng.choice([0, 255, 255, int(rng.integers(0, 256))]))
  use_ref = rng.random() < 0.2
  feather_mode = "soft_edges" if rng.random() < 0.25 else "node"

  def pasted_channels():  # RGB and RGBA mix (today's node's rules)
    return 7 - c if c > 1 and rng.random() < 0.3 else c

  segs = []
  for _ in range(int(rng.integers(0, 7))):
    rh, rw = (int(rng.integers(4, max(6, min(side, 120)))) for side in (h0, w0))
    # origins: mostly inside, sometimes overhanging any edge
    y1 = int(rng.integers(-rh // 2, h0 - rh // 2))
    x1 = int(rng.integers(-rw // 2, w0 - rw // 2))
    if rng.random() < 0.7:
      y1, x1 = max(y1, 0), max(x1, 0)
    region = (x1, y1, x1 + rw, y1 + rh)
    # crops usually match the region; sometimes not (the node resizes masks)
    ch, cw = (rh, rw) if rng.random() < 0.8 else (
        int(rng.integers(3, rh + 8)), int(rng.integers(3, rw + 8)))
    crop = None
    if rng.random() < 0.9:
      frames = n if rng.random() < 0.6 else (1 if rng.random() < 0.5 else n + 2)
      crop = rng.random((frames, ch, cw, pasted_channels())).astype(
          np.float32)
    mh, mw = (ch, cw) if rng.random() < 0.8 else (
        int(rng.integers(3, rh + 8)), int(rng.integers(3, rw + 8)))
    kind = rng.choice(["2d", "2d", "per_frame", "single", "mismatch"])
    if kind == "2d":
      mask = random_mask(rng, 0, mh, mw)
    elif kind == "per_frame":
      mask = random_mask(rng, n, mh, mw)
    elif kind == "single":
      mask = random_mask(rng, 1, mh, mw)
    else:
      m = int(rng.integers(2, 5))
      mask = random_mask(rng, m if m != n else m + 1, mh, mw)
    bbox = (x1 + 1, y1 + 1, x1 + rw - 1, y1 + rh - 1)
    segs.append(SEG(_maybe_torch(rng, crop), _maybe_torch(rng, mask),
                    float(rng.random()), region, bbox, "face"))

  ref = rng.random((n, h, w, pasted_channels())).astype(
      np.float32) if use_ref else None
  return Case(image, ((h0, w0), segs), feather, alpha, ref, feather_mode)
