"""Shared test helpers: seeded random SEGS, cases, regions, small utilities.

Every random draw depends on the seed alone, never on which optional
packages are installed (`test_helpers.py` proves it for torch).
"""

from __future__ import annotations

import dataclasses
import re
import resource

import numpy as np
import pytest

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
  """`x` as a torch tensor 40% of the time where torch is installed; the
  draw happens either way, so a seed gives the same case with and without
  torch (only the array type differs: `test_helpers.py`)."""
  as_torch = rng.random() < 0.4
  if torch is not None and x is not None and as_torch:
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


def random_case(seed: int, node_domain: bool = False) -> Case:
  """A random case of every shape the node meets.

  Args:
    seed: the case; the same seed gives the same case (and the same draws
      with or without `node_domain`).
    node_domain: keep the case inside what the node itself runs: origins
      inside the image (the node wraps negative ones around), crops with at
      least N frames where they are read (the node indexes frame i), and
      the node's feathering (no soft edges).
  """
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
  if node_domain:
    feather_mode = "node"

  def pasted_channels():  # RGB and RGBA mix (today's node's rules)
    return 7 - c if c > 1 and rng.random() < 0.3 else c

  segs = []
  for _ in range(int(rng.integers(0, 7))):
    rh, rw = (int(rng.integers(4, max(6, min(side, 120)))) for side in (h0, w0))
    # origins: mostly inside, sometimes overhanging any edge
    y1 = int(rng.integers(-rh // 2, h0 - rh // 2))
    x1 = int(rng.integers(-rw // 2, w0 - rw // 2))
    if rng.random() < 0.7 or node_domain:
      y1, x1 = max(y1, 0), max(x1, 0)
    region = (x1, y1, x1 + rw, y1 + rh)
    # crops usually match the region; sometimes not (the node resizes masks)
    ch, cw = (rh, rw) if rng.random() < 0.8 else (
        int(rng.integers(3, rh + 8)), int(rng.integers(3, rw + 8)))
    crop = None
    if rng.random() < 0.9:
      frames = n if rng.random() < 0.6 else (1 if rng.random() < 0.5 else n + 2)
      if node_domain and not use_ref:
        frames = max(frames, n)
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


def random_regions(rng, count: int, h: int, w: int, bucket: int,
                   empty: bool = True) -> np.ndarray:
  """`[count, 4]` int32 regions `(x1, y1, x2, y2)` on an `h x w` image,
  cycling through six kinds: inside, flush with a corner, crossing the
  top/left, crossing the bottom/right, anywhere (possibly wholly off the
  image), and (with `empty`) empty ones; sides up to `bucket + 5`, so some
  are larger than the bucket."""
  rows = []
  for k in range(count):
    kind = k % 6
    hh, ww = rng.integers(1, bucket + 6, size=2)
    if kind == 0:    # inside
      hh, ww = min(hh, h), min(ww, w)
      y1, x1 = rng.integers(0, h - hh + 1), rng.integers(0, w - ww + 1)
    elif kind == 1:  # touching: flush with a corner
      hh, ww = min(hh, h), min(ww, w)
      y1 = 0 if rng.random() < 0.5 else h - hh
      x1 = 0 if rng.random() < 0.5 else w - ww
    elif kind == 2:  # crossing the top/left
      y1, x1 = -rng.integers(1, hh + 1), -rng.integers(0, ww + 1)
    elif kind == 3:  # crossing the bottom/right
      y1, x1 = h - rng.integers(1, hh + 1), w - rng.integers(0, ww + 1)
    elif kind == 4:  # anywhere, possibly wholly outside
      y1, x1 = rng.integers(-bucket - 8, h + 8), rng.integers(-bucket - 8,
                                                               w + 8)
    else:            # empty (x2 <= x1 or y2 <= y1) or anywhere
      y1, x1 = rng.integers(-4, h), rng.integers(-4, w)
      if empty and rng.random() < 0.5:
        hh = rng.integers(-2, 1)
      elif empty:
        ww = rng.integers(-2, 1)
    rows.append((x1, y1, x1 + ww, y1 + hh))
  return np.asarray(rows, np.int32)


def random_segs(rng, size, *, n: int, count: int, sides: tuple[int, int],
                origins: tuple[int, int], channels: int = 3, label=None):
  """`count` SEGs with random crops `[n, h, w, C]` and 2-D masks on an image
  of `size = (H, W)`.

  Sides are drawn from `sides[0]..sides[1]` (inclusive) and the origin
  `(x1, y1)` from `[origins[0], W - origins[1])` x `[origins[0], H -
  origins[1])`, so a negative `origins[0]` overhangs the top and left
  edges. Labels are `label`, or the SEG's index as a string.
  """
  height, width = size
  low, margin = origins
  items = []
  for k in range(count):
    h, w = (int(v) for v in rng.integers(sides[0], sides[1] + 1, 2))
    x = int(rng.integers(low, width - margin))
    y = int(rng.integers(low, height - margin))
    items.append(seg(rng.random((n, h, w, channels), np.float32),
                     rng.random((h, w), np.float32), (x, y, x + w, y + h),
                     label=str(k) if label is None else label))
  return tuple(size), items


def quick_first(values, count: int) -> list:
  """`values` as pytest parameters, all but the first `count` marked slow:
  the quick subset (`-m "not slow"`) runs a few, the full suite all."""
  return [pytest.param(v, marks=() if k < count else pytest.mark.slow)
          for k, v in enumerate(values)]


def bits(a) -> np.ndarray:
  """An array's bits as unsigned integers of its item size (NaN == NaN)."""
  a = np.asarray(a)
  return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def rss_mib() -> float:
  """Resident set size now (not the peak), from /proc, else the peak."""
  try:
    with open("/proc/self/statm") as f:
      pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20
  except OSError:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def relative_reference(mask, feather, grow, outside="edge"):
  """The relative weights (`feather_mode="relative"`) of one `[h, w]` mask,
  float64, re-stated from `relative`'s definition. `outside`: what the blur
  reads past the mask, "edge" (its edge pixels) or "zero"."""
  from scipy import ndimage, special
  m = np.clip(np.asarray(mask, np.float64), 0, 1)
  h, w = m.shape
  area = m.sum()
  side = np.sqrt(max(area, 1.0))
  width = feather / 100 * side
  sigma = width / (2 * special.ndtri(0.9))  # the 10 %-90 % rise, in sigmas
  g = grow / 100 * side
  sigma1 = max(sigma, (abs(g) + 3 * sigma) / 4, 1e-3)
  edge = np.clip(10 * (m - 0.5) + 0.5, 0, 1)
  # the Gaussian's mass over each pixel's span, symmetric: computed on the
  # negative side (no cancellation) and mirrored
  reach = int(np.ceil(12 * sigma1)) + 2
  t = np.arange(-reach, 1)
  half = special.ndtr((t + 0.5) / sigma1) - special.ndtr((t - 0.5) / sigma1)
  kernel = np.concatenate([half, half[-2::-1]])
  mode = {"edge": "nearest", "zero": "constant"}[outside]
  b = ndimage.correlate1d(edge, kernel, axis=0, mode=mode, cval=0)
  b = ndimage.correlate1d(b, kernel, axis=1, mode=mode, cval=0)
  d = sigma1 * special.ndtri(np.clip(b, 1e-20, 1 - 1e-7))
  if feather > 0:
    out = special.ndtr((d + g) / sigma)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.minimum.reduce([yy, h - 1 - yy, xx, w - 1 - xx])
    s = np.clip(dist / max(width, 1.0), 0, 1)
    out = out * s * s * (3 - 2 * s)
  elif grow == 0:
    out = m
  else:
    out = (d + g > 0).astype(np.float64)
  return out if area > 0 else np.zeros_like(out)


def runtime_control_flow(text: str) -> list[str]:
  """The control flow in an exported module that waits on a value computed
  at run time: every `while` and `if`, and every `case` whose selector is
  not a constant or another such case. JAX lowers `lax.platform_dependent`
  (the resampling's choice of form) to cases on a constant platform
  index (a case of constants, whose result selects the branch), which the
  compiler resolves; nothing else in these programs makes a case."""
  found = re.findall(r"stablehlo\.(?:while|if)\b", text)
  lines = text.splitlines()
  for i, line in enumerate(lines):
    use = re.search(r'"stablehlo\.case"\((%[\w#]+)\)', line)
    if not use:
      continue
    # the selector's nearest definition above (SSA names are per function)
    pattern = re.compile(r"\s*" + re.escape(use.group(1)) + r" = (.*)")
    defs = (pattern.match(prev) for prev in reversed(lines[:i]))
    definition = next((d.group(1) for d in defs if d), "")
    if not definition.startswith(("stablehlo.constant", '"stablehlo.case"')):
      found.append(f"case on {definition[:60]!r}")
  return found
