"""RGB and RGBA as today's Impact Pack pastes them (docs/node.rst, "Today's
Impact Pack").

Against the float64 reference and against the node's loops re-stated in
torch with today's `tensor_paste` (tests/node_baseline.py), on seeded
random cases for every channel pair, crops and `ref_image_opt` alike; hand
values for each rule; the pre-2025 rule behind `rgba_mode="legacy"`; and
the pairs no rule defines, which raise.
"""

import os
import sys

import numpy as np
import pytest

import reference
from helpers import random_mask, seg
from segspaste_jax import (pack_segs, paste, segs_paste, stream_segs_paste,
                           unpack_segs)
from segspaste_jax._src import paste as paste_lib

TOLERANCE = 1e-5
PAIRS = [(3, 3), (4, 4), (4, 3), (3, 4)]


def _case(seed, c1, c2, *, ref=False, n=2, mixed=False):
  """An image of c1 channels, 3 SEGs with c2-channel crops (or, `mixed`,
  crops of 3 and 4 channels in one list), alpha channels anywhere in [0, 1]
  (0 and 1 included), regions inside and over the edges."""
  rng = np.random.default_rng(seed)
  h, w = 40, 52
  image = rng.random((n, h, w, c1)).astype(np.float32)
  image[..., -1][rng.random((n, h, w)) < 0.2] = 1.0  # opaque pixels too
  segs = []
  for k, region in enumerate([(3, 4, 23, 20), (30, 25, 60, 45),
                              (-5, 10, 15, 30)]):
    x1, y1, x2, y2 = region
    ch = 4 if mixed and k % 2 else c2 if not mixed else 3
    crop = rng.random((n, y2 - y1, x2 - x1, ch)).astype(np.float32)
    if ch == 4:
      crop[..., 3][rng.random(crop.shape[:3]) < 0.2] = 0.0
    mask = random_mask(rng, 0, y2 - y1, x2 - x1)
    segs.append(seg(crop, mask, region))
  ref_image = rng.random((n, h, w, c2)).astype(np.float32) if ref else None
  return image, ((h, w), segs), ref_image


@pytest.mark.parametrize("c1,c2", PAIRS)
@pytest.mark.parametrize("ref", [False, True])
def test_pairs_against_reference(c1, c2, ref):
  image, segs, ref_image = _case(10 * c1 + c2 + 100 * ref, c1, c2, ref=ref)
  feather = 5 if ref == (c1 == c2) else 0
  want = reference.segs_paste(image, segs, feather, 200, ref_image)
  got = np.asarray(segs_paste(image, segs, feather, 200, ref_image))
  np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
  assert np.abs(got - image).max() > 0.1  # something was pasted


@pytest.mark.parametrize("c1", [3, 4])
def test_rgb_and_rgba_crops_in_one_list(c1):
  image, segs, _ = _case(7 + c1, c1, None, mixed=True)
  want = reference.segs_paste(image, segs, 3, 255)
  got = np.asarray(segs_paste(image, segs, 3, 255))
  np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("c1,c2", PAIRS)
def test_pairs_against_todays_node_loops(c1, c2):
  pytest.importorskip("torch")
  sys.path.insert(0, os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  from node_baseline import node_segs_paste
  image, segs, ref_image = _case(20 + 10 * c1 + c2, c1, c2)
  # the node wraps negative origins around: keep the regions inside
  segs = (segs[0], segs[1][:2])
  for ref in (None, ref_image):
    want = node_segs_paste(image, segs, 4, 230, ref, rules="today").numpy()
    got = np.asarray(segs_paste(image, segs, 4, 230, ref))
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


def _one(c1, c2, image_value, crop_value):
  """A full mask, feather 0, alpha 255: every rule at m = 1."""
  image = np.full((1, 6, 6, c1), image_value, np.float32)
  crop = np.full((1, 4, 4, c2), crop_value, np.float32)
  segs = ((6, 6), [seg(crop, np.ones((4, 4), np.float32), (1, 1, 5, 5))])
  return image, segs


@pytest.mark.slow
def test_hand_values_of_each_rule():
  # 4 <- 4: colour replaced, alpha a1 + a2 (1 - a1) = 0.5 + 0.25 * 0.5
  image, segs = _one(4, 4, [0.2, 0.2, 0.2, 0.5], [0.9, 0.8, 0.7, 0.25])
  out = np.asarray(segs_paste(image, segs, 0))
  np.testing.assert_allclose(out[0, 2, 2], [0.9, 0.8, 0.7, 0.625], atol=1e-7)
  np.testing.assert_array_equal(out[0, 0], image[0, 0])
  # legacy 4 <- 4: alpha blended like colour
  out = np.asarray(segs_paste(image, segs, 0, rgba_mode="legacy"))
  np.testing.assert_allclose(out[0, 2, 2], [0.9, 0.8, 0.7, 0.25], atol=1e-7)
  # 4 <- 3: opaque where pasted
  image, segs = _one(4, 3, [0.2, 0.2, 0.2, 0.5], [0.9, 0.8, 0.7])
  out = np.asarray(segs_paste(image, segs, 0, 128))
  m = 128 / 255
  np.testing.assert_allclose(out[0, 2, 2], [0.2 + m * 0.7, 0.2 + m * 0.6,
                                            0.2 + m * 0.5, 0.5 * (1 - m) + m],
                             atol=1e-6)
  # 3 <- 4: the crop's alpha is its opacity; alpha 0 pastes nothing
  image, segs = _one(3, 4, [0.2, 0.4, 0.6], [1.0, 1.0, 1.0, 0.0])
  np.testing.assert_array_equal(np.asarray(segs_paste(image, segs, 0)), image)
  image, segs = _one(3, 4, [0.2, 0.4, 0.6], [1.0, 1.0, 1.0, 0.5])
  out = np.asarray(segs_paste(image, segs, 0))
  np.testing.assert_allclose(out[0, 2, 2], [0.6, 0.7, 0.8], atol=1e-7)


@pytest.mark.parametrize("c1,c2", [(4, 4), (4, 3), (3, 4)])
def test_legacy_mode_against_reference_and_seed_node(c1, c2):
  image, segs, _ = _case(40 + c1 + c2, c1, c2)
  want = reference.segs_paste(image, segs, 2, 255, rgba_mode="legacy")
  got = np.asarray(segs_paste(image, segs, 2, rgba_mode="legacy"))
  np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
  if c1 == c2:
    pytest.importorskip("torch")
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    from node_baseline import node_segs_paste
    segs = (segs[0], segs[1][:2])
    seed_node = node_segs_paste(image, segs, 2, 255, rules="seed").numpy()
    got = np.asarray(segs_paste(image, segs, 2, rgba_mode="legacy"))
    np.testing.assert_allclose(got, seed_node, rtol=0, atol=TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["cpu", "accelerator"])
def test_both_forms(form):
  for c1, c2 in PAIRS:
    image, segs, _ = _case(60 + c1 + c2, c1, c2)
    packed = pack_segs(segs, image.shape)
    got = np.asarray(paste_lib._paste_jit(
        image, packed.strip_meta(), 5, 255, None,
        **paste_lib.static_args(form, 5)))
    want = reference.segs_paste(image, segs, 5, 255)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


def test_grayscale_keeps_the_seed_blend():
  rng = np.random.default_rng(80)
  image = rng.random((2, 20, 20, 1)).astype(np.float32)
  crop = rng.random((2, 10, 10, 1)).astype(np.float32)
  segs = ((20, 20), [seg(crop, np.full((10, 10), 0.5, np.float32),
                         (5, 5, 15, 15))])
  got = np.asarray(segs_paste(image, segs, 0))
  want = image.copy()
  want[:, 5:15, 5:15] = 0.5 * image[:, 5:15, 5:15] + 0.5 * crop
  np.testing.assert_allclose(got, want, atol=1e-7)


@pytest.mark.parametrize("c1,c2", [(1, 3), (3, 1), (4, 1), (1, 4)])
def test_pairs_without_a_rule_raise(c1, c2):
  image = np.zeros((1, 20, 20, c1), np.float32)
  crop = np.zeros((1, 8, 8, c2), np.float32)
  segs = ((20, 20), [seg(np.zeros((1, 8, 8, c1), np.float32),
                         np.ones((8, 8), np.float32), (0, 0, 8, 8)),
                     seg(crop, np.ones((8, 8), np.float32), (2, 2, 10, 10))])
  with pytest.raises(ValueError, match=r"segs\[1\]\[1\]\.cropped_image: "
                     r"expected .* channels for a \d-channel image"):
    segs_paste(image, segs)
  with pytest.raises(ValueError, match=r"ref_image_opt: expected frames"):
    segs_paste(image, ((20, 20), segs[1][:1]), 5, 255,
               np.zeros((1, 20, 20, c2), np.float32))


def test_mode_arguments_are_checked():
  image, segs = _one(3, 3, 0.5, 0.5)
  with pytest.raises(ValueError, match="rgba_mode: expected one of"):
    segs_paste(image, segs, rgba_mode="over")
  with pytest.raises(ValueError, match="feather_mode: expected one of"):
    segs_paste(image, segs, feather_mode="soft")


def test_unpack_gives_rgb_crops_back_as_opaque_rgba():
  image, segs, _ = _case(90, 4, None, mixed=True)
  packed = pack_segs(segs, image.shape)
  assert packed.crops.shape[-1] == 4
  _, back = unpack_segs(packed)
  rgb = segs[1][0].cropped_image
  np.testing.assert_array_equal(back[0].cropped_image[..., :3], rgb)
  assert (back[0].cropped_image[..., 3] == 1).all()
  # and the round trip pastes the same picture
  np.testing.assert_array_equal(
      np.asarray(segs_paste(image, (segs[0], back), 3)),
      np.asarray(segs_paste(image, segs, 3)))


@pytest.mark.slow
def test_stream_takes_the_same_rules():  # the mesh: test_shard.py
  image, segs, ref = _case(95, 4, 3, ref=True, n=4)
  for ref_image in (None, ref):
    want = np.asarray(segs_paste(image, segs, 5, 255, ref_image))
    got = np.concatenate(list(stream_segs_paste(
        image, segs, 5, 255, ref_image, chunk=2, progress=False)))
    np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_paste_rgba_mode_is_static_and_checked():
  image, segs = _one(4, 4, [0.2, 0.2, 0.2, 0.5], [0.9, 0.8, 0.7, 0.25])
  packed = pack_segs(segs, image.shape)
  a = np.asarray(paste(image, packed, feather=0))
  b = np.asarray(paste(image, packed, feather=0, rgba_mode="legacy"))
  assert a[0, 2, 2, 3] != b[0, 2, 2, 3]
  with pytest.raises(ValueError, match="rgba_mode"):
    paste(image, packed, rgba_mode=None)
