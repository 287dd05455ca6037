"""Random crop regions for the crop and round-trip tests."""

import numpy as np


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
