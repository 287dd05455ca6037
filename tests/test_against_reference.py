"""segs_paste against the float64 reference on seeded random and edge cases."""

import numpy as np
import pytest

import helpers
from helpers import seg
import reference
from segspaste_jax import pack_segs, segs_paste
from segspaste_jax._src import paste as paste_lib

TOLERANCE = 1e-5
RANDOM_CASES = 72


def check(case, **kwargs):
  expected = reference.segs_paste(case.image, case.segs, **case.kwargs(),
                                  **kwargs)
  got = np.asarray(segs_paste(case.image, case.segs, **case.kwargs(),
                              **kwargs))
  assert got.shape == case.image.shape
  assert got.dtype == case.image.dtype
  np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
  return got, expected


@pytest.mark.parametrize("seed", helpers.quick_first(range(RANDOM_CASES), 6))
def test_random_case(seed):
  check(helpers.random_case(seed))


def test_random_cases_paste_something():
  """Guards the generator: most cases must change the image (by the
  reference alone: `test_random_case` compares the library with it)."""
  changed = 0
  for seed in range(30):
    case = helpers.random_case(seed)
    expected = reference.segs_paste(case.image, case.segs, **case.kwargs())
    changed += bool(np.abs(expected - case.image).max() > 1e-3)
  assert changed >= 15


@pytest.mark.slow
@pytest.mark.parametrize("form", ["cpu", "accelerator"])
def test_both_forms_on_cpu(form):
  """Each form of the program (the straight-line one for GPU and TPU, and
  the CPU one), run here on seeded random cases with and without a
  reference image, against the reference."""
  checked = 0
  for seed in range(8):
    case = helpers.random_case(1000 + seed)
    expected = reference.segs_paste(case.image, case.segs, **case.kwargs())
    packed = pack_segs(case.segs, case.image.shape,
                       with_crops=case.ref_image_opt is None)
    ref = case.ref_image_opt
    got = np.asarray(paste_lib._paste_jit(
        case.image, packed.strip_meta(), case.feather, case.alpha, ref,
        case.feather_mode == "soft_edges",
        **paste_lib.static_args(form, case.feather)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    checked += bool(np.abs(got - case.image).max() > 1e-3)
  assert checked >= 4


def _full(h, w, value=1.0):
  return np.full((h, w), value, np.float32)


@pytest.mark.slow
def test_full_mask_no_feather_copies_crop():
  image = np.zeros((2, 20, 30, 3), np.float32)
  crop = np.random.default_rng(0).random((2, 8, 6, 3)).astype(np.float32)
  got = np.array(segs_paste(image, ((20, 30), [seg(crop, _full(8, 6),
                                                     (4, 5, 10, 13))]), 0))
  np.testing.assert_array_equal(got[:, 5:13, 4:10], crop)
  got[:, 5:13, 4:10] = 0
  assert not got.any()


@pytest.mark.parametrize("region", [
    (-5, -4, 7, 8),     # top-left overhang
    (25, 15, 37, 27),   # bottom-right overhang
    (-3, 14, 9, 26),    # left and bottom
    (22, -6, 34, 6),    # right and top
    (-20, -20, -8, -8),  # wholly outside: a no-op
    (40, 30, 52, 42),   # wholly outside beyond the far edges
])
@pytest.mark.parametrize("use_ref", [False, True])
def test_edges(region, use_ref):
  rng = np.random.default_rng(1)
  image = rng.random((2, 20, 30, 3)).astype(np.float32)
  crop = rng.random((2, 12, 12, 3)).astype(np.float32)
  ref = rng.random((2, 20, 30, 3)).astype(np.float32) if use_ref else None
  mask = rng.random((12, 12)).astype(np.float32)
  segs = ((20, 30), [seg(crop, mask, region)])
  case = helpers.Case(image, segs, 3, 200, ref)
  got, _ = check(case)
  x1, y1, x2, y2 = region
  if x2 <= 0 or y2 <= 0 or x1 >= 30 or y1 >= 20:
    np.testing.assert_array_equal(got, image)


def test_later_segments_land_on_top():
  image = np.zeros((1, 16, 16, 1), np.float32)
  first = seg(np.full((1, 8, 8, 1), 0.25, np.float32), _full(8, 8),
              (0, 0, 8, 8))
  second = seg(np.full((1, 8, 8, 1), 0.75, np.float32), _full(8, 8),
               (4, 4, 12, 12))
  got = np.asarray(segs_paste(image, ((16, 16), [first, second]), 0))
  assert got[0, 5, 5, 0] == 0.75 and got[0, 1, 1, 0] == 0.25
  check(helpers.Case(image, ((16, 16), [first, second]), 0, 255))


@pytest.mark.parametrize("feather", helpers.quick_first(
    [3, 100, 0, 1, 2, 5, 10, 50], 2))
def test_kernel_clamp_sizes(feather):
  """Masks around every size where the node clamps or skips the kernel.

  One SEG per mask size, so each is feathered with its own clamped kernel
  inside one compiled program.
  """
  rng = np.random.default_rng(feather)
  sides = [3, 4, 5, 6, 7, 11, 12, 23, 101, 203]
  h, w = 210, 215
  image = rng.random((1, h, w, 1)).astype(np.float32)
  items = []
  for side in sides:
    crop = rng.random((1, side, side + 5, 1)).astype(np.float32)
    mask = rng.random((side, side + 5)).astype(np.float32)
    y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side - 5))
    items.append(seg(crop, mask, (x, y, x + side + 5, y + side)))
  check(helpers.Case(image, ((h, w), items), feather, 255))


def test_mask_resized_to_crop_after_blur():
  """A mask of another size than its crop: blurred first, then resized."""
  rng = np.random.default_rng(2)
  image = rng.random((1, 40, 40, 3)).astype(np.float32)
  crop = rng.random((1, 20, 24, 3)).astype(np.float32)
  mask = rng.random((9, 31)).astype(np.float32)
  check(helpers.Case(image, ((40, 40), [seg(crop, mask, (5, 5, 29, 25))]),
                     4, 255))


def test_ref_image_overhang_squashes_mask_like_the_node():
  """With ref_image_opt the pasted pixels are clipped, so the mask is
  resized."""
  rng = np.random.default_rng(3)
  image = rng.random((1, 30, 30, 3)).astype(np.float32)
  ref = rng.random((1, 30, 30, 3)).astype(np.float32)
  mask = rng.random((12, 12)).astype(np.float32)
  segs = ((30, 30), [seg(None, mask, (24, 20, 36, 32))])
  check(helpers.Case(image, segs, 2, 255, ref))


@pytest.mark.slow
def test_mask_batch_rules():
  rng = np.random.default_rng(4)
  image = rng.random((3, 24, 24, 3)).astype(np.float32)
  crop = rng.random((3, 10, 10, 3)).astype(np.float32)
  for frames in (1, 2, 3, 5):
    mask = rng.random((frames, 10, 10)).astype(np.float32)
    segs = ((24, 24), [seg(crop, mask, (3, 4, 13, 14))])
    check(helpers.Case(image, segs, 1, 255))


@pytest.mark.slow
def test_single_frame_crop_broadcasts():
  rng = np.random.default_rng(5)
  image = rng.random((4, 16, 16, 3)).astype(np.float32)
  crop = rng.random((1, 8, 8, 3)).astype(np.float32)
  got, _ = check(helpers.Case(
      image, ((16, 16), [seg(crop, _full(8, 8), (2, 2, 10, 10))]), 0, 255))
  for i in range(4):
    np.testing.assert_array_equal(got[i, 2:10, 2:10], crop[0])


@pytest.mark.parametrize("factor", [2, 3])
@pytest.mark.parametrize("channels", helpers.quick_first([3, 1, 4], 1))
def test_scale_match(factor, channels):
  rng = np.random.default_rng(factor * 10 + channels)
  image = rng.random((2, 30 * factor, 40 * factor, channels)).astype(np.float32)
  crop = rng.random((2, 11, 13, channels)).astype(np.float32)
  mask = rng.random((11, 13)).astype(np.float32)
  segs = ((30, 40), [seg(crop, mask, (5, 7, 18, 18)),
                     seg(crop[:1], rng.random((3, 11, 13)).astype(np.float32),
                          (20, 10, 33, 21))])
  check(helpers.Case(image, segs, 5, 255))


@pytest.mark.slow
def test_non_uniform_scale_match_flag():
  """Each axis by its own factor by default; the node's mix-up on request."""
  rng = np.random.default_rng(6)
  image = rng.random((1, 60, 120, 3)).astype(np.float32)  # rh = 2, rw = 3
  crop = rng.random((1, 10, 10, 3)).astype(np.float32)
  segs = ((30, 40), [seg(crop, _full(10, 10), (5, 5, 15, 15))])
  case = helpers.Case(image, segs, 0, 255)
  ours, _ = check(case)
  node, _ = check(case, node_axis_mixup=True)
  assert not np.array_equal(ours, node)
  # per-axis: x1 = 15, y1 = 10, x2 = 45, y2 = 30; the crop fills that box
  assert np.abs(ours[0, 10:30, 15:45] - image[0, 10:30, 15:45]).max() > 0.1
  np.testing.assert_array_equal(ours[0, :10], image[0, :10])


@pytest.mark.parametrize("source,target", [
    ((1024, 1024), (1000, 1000)),  # 0.977: down by a non-integer factor
    ((512, 512), (768, 768)),      # 1.5
    ((300, 400), (450, 500)),      # non-uniform: 1.5 by 1.25
    ((97, 131), (60, 200)),        # non-uniform, one axis down, one up
])
@pytest.mark.slow
@pytest.mark.parametrize("channels", [1, 3])
def test_scale_match_non_integer_factors(source, target, channels):
  """Crop regions scale by truncation (`int()`), as the node's do: at these
  factors truncating and rounding disagree on some coordinate of every
  layout, so a rounding scale match fails here."""
  rng = np.random.default_rng(sum(source) + sum(target) + channels)
  (h0, w0), (h, w) = source, target
  image = rng.random((2, h, w, channels)).astype(np.float32)
  items, fractions = [], []
  for k in range(4):
    rh, rw = int(rng.integers(9, 40)), int(rng.integers(9, 40))
    y1, x1 = int(rng.integers(0, h0 - rh)), int(rng.integers(0, w0 - rw))
    region = (x1, y1, x1 + rw, y1 + rh)
    crop = rng.random((2 if k % 2 else 1, rh, rw, channels)).astype(np.float32)
    items.append(seg(crop, rng.random((rh, rw)).astype(np.float32), region))
    fractions += [(x1 * w / w0) % 1, (y1 * h / h0) % 1,
                  ((x1 + rw) * w / w0) % 1, ((y1 + rh) * h / h0) % 1]
  assert max(fractions) >= 0.5  # truncation and rounding differ somewhere
  case = helpers.Case(image, ((h0, w0), items), 3, 230)
  check(case)
  rh, rw = h / h0, w / w0
  if rh > rw:  # non-uniform, and the node's mix-up keeps x1 < x2, y1 < y2
    check(case, node_axis_mixup=True)
