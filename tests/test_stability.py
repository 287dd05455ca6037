"""1,000 calls in one bucket: no recompiles and no memory growth."""

import time

import numpy as np
import pytest

from helpers import rss_mib
from segspaste_jax import SEG, segs_paste

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

N, H, W, C = 1, 96, 96, 3
FEATHER = 4
CALLS = 1000
WARM_UP = 100
SLACK_MIB = 50


def _layout(rng):
  """1-8 SEGs, sides 16-64, anywhere (overhanging edges too), 2-D or [1, h, w]
  masks, crops of their region's size or not: always the same bucket."""
  segs = []
  for _ in range(int(rng.integers(1, 9))):
    h, w = (int(v) for v in rng.integers(16, 65, 2))
    x1, y1 = int(rng.integers(-w // 2, W)), int(rng.integers(-h // 2, H))
    ch, cw = (h, w) if rng.random() < 0.7 else (
        int(rng.integers(16, 65)), int(rng.integers(16, 65)))
    crop = rng.random((N, ch, cw, C), np.float32)
    mask = rng.random((ch, cw) if rng.random() < 0.5 else (1, h, w),
                      np.float32)
    segs.append(SEG(crop, mask, 0.5, (x1, y1, x1 + w, y1 + h),
                    (x1, y1, x1 + w, y1 + h), "face"))
  return (H, W), segs


def test_thousand_calls_no_recompile_no_growth(compile_counter):
  rng = np.random.default_rng(0)
  image = rng.random((N, H, W, C), np.float32)
  segs_paste(image, _layout(rng), feather=FEATHER,
             max_segments=8).block_until_ready()  # one slot bucket for 1-8
  first_call_compiles = len(compile_counter)
  compile_counter.clear()  # from here on: not a single compile
  for _ in range(WARM_UP - 1):  # let allocators and caches settle
    segs_paste(image, _layout(rng), feather=FEATHER,
               max_segments=8).block_until_ready()
  rss_before = rss_mib()

  start = time.perf_counter()
  for _ in range(CALLS):
    out = segs_paste(image, _layout(rng), feather=FEATHER, max_segments=8,
                     alpha=int(rng.integers(0, 256)))
    out.block_until_ready()
  seconds = time.perf_counter() - start
  growth = rss_mib() - rss_before

  print(f"{CALLS} calls in {seconds:.1f} s ({1000 * seconds / CALLS:.1f} ms "
        f"each), RSS {rss_before:.0f} MiB + {growth:.1f} MiB, "
        f"{first_call_compiles} compile(s) in the first call")
  assert compile_counter == [], f"{len(compile_counter)} recompiles"
  assert growth < SLACK_MIB, f"RSS grew by {growth:.1f} MiB"
