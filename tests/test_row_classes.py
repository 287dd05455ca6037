"""Windows in row classes (`paste._window_heights`): the same pixels.

`paste` writes a segment whose crop is much shorter than the bucket through
a shorter window, when the batch's windows are big enough for that to pay
(`_ROW_CLASS_MIN_BYTES`); the small images of the other tests stay under
that size. Here it is forced on, and the results must equal both the float64
reference and, bit for bit, the single bucket-sized window.
"""

import importlib

import jax
import numpy as np
import pytest

import cases
from cases import seg
import reference
from segspaste_jax import segs_paste
from segspaste_jax.feather import platform_of

paste_module = importlib.import_module("segspaste_jax.paste")

TOLERANCE = 1e-5


@pytest.fixture
def row_classes(monkeypatch):
  """Calls `fn()` with row classes off and on; returns both results."""

  def run(fn):
    results = []
    for threshold in (1 << 62, 0):  # off, then on for every batch size
      monkeypatch.setattr(paste_module, "_ROW_CLASS_MIN_BYTES", threshold)
      jax.clear_caches()  # the threshold is read when tracing
      results.append(np.asarray(fn()))
    return results

  yield run
  jax.clear_caches()


def test_window_heights():
  heights = paste_module._window_heights
  assert heights(320, 64 << 20) == (200, 240, 280, 320)
  assert heights(100, 64 << 20) == (64, 80, 88, 100)
  assert heights(320, (4 << 20) - 1) == (320,)
  for win_h in range(1, 400, 7):
    got = heights(win_h, 1 << 30)
    assert list(got) == sorted(set(got))
    assert got[-1] == win_h and all(g % 8 == 0 for g in got[:-1])


def _check(case, row_classes):
  expected = reference.segs_paste(case.image, case.segs, **case.kwargs())
  off, on = row_classes(
      lambda: segs_paste(case.image, case.segs, **case.kwargs()))
  np.testing.assert_array_equal(on, off)
  np.testing.assert_allclose(on, expected, rtol=0, atol=TOLERANCE)
  return on


@pytest.mark.parametrize("seed", range(4, 128, 8))
def test_random_cases(seed, row_classes):
  _check(cases.random_case(seed), row_classes)


@pytest.mark.parametrize("region", [
    (30, 10, 42, 18),     # 8 rows: the shortest window (80 rows)
    (30, 20, 42, 110),    # 90 rows: the 96-row window
    (50, 30, 62, 130),    # 100 rows: the 112-row window
    (70, 40, 82, 120),    # 80 rows: the 80-row window, full
    (90, 40, 102, 121),   # 81 rows: the 96-row window
    (30, 120, 42, 128),   # the shortest window just fits above the bottom
    (30, 190, 42, 198),   # at the bottom: the bucket-sized window, moved up
    (240, 10, 252, 18),   # at the right edge: the same, moved left
    (-5, -4, 7, 6),       # top-left overhang
    (250, 195, 270, 205),  # bottom-right overhang
])
@pytest.mark.parametrize("use_ref", [False, True])
def test_window_placement(region, use_ref, row_classes):
  """Crops of every height class, inside and at the edges."""
  rng = np.random.default_rng(7)
  image = rng.random((2, 200, 260, 3)).astype(np.float32)
  x1, y1, x2, y2 = region
  crop = rng.random((2, y2 - y1, x2 - x1, 3)).astype(np.float32)
  mask = rng.random((y2 - y1, x2 - x1)).astype(np.float32)
  # a 120-row segment: bucket 128, windows of 80, 96, 112 and 128 rows
  tall = rng.random((2, 120, 10, 3)).astype(np.float32)
  segs = ((200, 260), [seg(tall, rng.random((120, 10)).astype(np.float32),
                            (10, 5, 20, 125)),
                       seg(crop, mask, region)])
  assert paste_module._window_heights(128, 1 << 30) == (80, 96, 112, 128)
  ref = rng.random((2, 200, 260, 3)).astype(np.float32) if use_ref else None
  got = _check(cases.Case(image, segs, 3, 200, ref), row_classes)
  assert np.abs(got - image).max() > 1e-3


def _columns(rng, placements):
  """SEGS for a 2-frame 200x260 image: a 12-pixel-wide crop of `h` rows at
  `(x, y)` for each `(h, x, y)`, with a 2-D mask."""
  return ((200, 260), [
      seg(rng.random((2, h, 12, 3)).astype(np.float32),
          rng.random((h, 12)).astype(np.float32), (x, y, x + 12, y + h))
      for h, x, y in placements])


def test_grad_and_vmap(row_classes):
  """The row-class branches under `jax.grad` and `jax.vmap`."""
  from segspaste_jax import pack_segs, paste
  rng = np.random.default_rng(11)
  images = rng.random((2, 2, 200, 260, 3)).astype(np.float32)
  segs = _columns(rng, ((120, 10, 5), (8, 30, 10), (90, 30, 20),
                        (8, 240, 190)))
  packed = pack_segs(segs, images.shape[1:])

  def loss(alpha):
    return paste(images[0], packed, feather=3, alpha=alpha).sum()

  grads = row_classes(lambda: jax.grad(loss)(200.0))
  assert np.isfinite(grads[0]) and grads[0] != 0
  np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)
  batched = row_classes(lambda: jax.vmap(
      lambda im: paste(im, packed, feather=3))(images))
  # (XLA fuses the batched program differently: a last-bit difference)
  np.testing.assert_allclose(batched[1], batched[0], rtol=0, atol=1e-6)
  assert np.abs(batched[1] - images).max() > 1e-3


def test_platform_known_or_not(monkeypatch):
  """Where the image's platform is known before tracing, one window path is
  traced; inside the caller's `jit` both are, and XLA picks at lowering.
  All three give the same pixels."""
  from segspaste_jax import pack_segs, paste
  monkeypatch.setattr(paste_module, "_ROW_CLASS_MIN_BYTES", 0)
  jax.clear_caches()
  rng = np.random.default_rng(12)
  image = rng.random((2, 200, 260, 3)).astype(np.float32)
  segs = _columns(rng, ((120, 10, 5), (8, 30, 10), (8, 240, 190)))
  packed = pack_segs(segs, image.shape).strip_meta()
  assert platform_of(image) == "cpu"
  assert platform_of(jax.numpy.asarray(image)) == "cpu"
  seen = []
  jax.jit(lambda im: seen.append(platform_of(im)) or im)(image)
  assert seen == [None]

  def run(platform):
    return np.asarray(paste_module._paste_jit(
        image, packed, feather=3, alpha=200, ref_image=None,
        platform=platform))

  cpu, other, unknown = run("cpu"), run("other"), run(None)
  np.testing.assert_array_equal(cpu, other)
  np.testing.assert_array_equal(cpu, unknown)
  np.testing.assert_array_equal(cpu, np.asarray(paste(image, packed,
                                                      feather=3, alpha=200)))
  # the CPU program has the row-class branches, the other one does not
  conds = lambda p: paste_module._paste_jit.lower(
      image, packed, feather=3, alpha=200, ref_image=None,
      platform=p).as_text().count("case")
  assert conds("cpu") > conds("other")
  jax.clear_caches()
