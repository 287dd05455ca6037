"""Slots marked invalid paste nothing, whatever they hold, in both forms.

`make_packed_segs(valid=...)` marks slots to skip. Here those slots carry a
real mask, a real region inside the image, a crop with `has_crop` True and
its size: everything a slot needs to paste, except `valid`. Both forms of
the program (the CPU scan and the accelerator's straight-line code), with
crops and with a reference image, must give what the float64 reference
gives for the valid slots alone.
"""

import numpy as np
import pytest

import reference
from helpers import seg
from segspaste_jax import make_packed_segs
from segspaste_jax._src import paste as paste_lib

N, H, W, C = 2, 40, 48, 3
B, S = 24, 6
VALID = np.array([True, False, True, False, False, True])
FEATHER, ALPHA = 3, 230


def _layout(seed):
  rng = np.random.default_rng(seed)
  image = rng.random((N, H, W, C)).astype(np.float32)
  ref_image = rng.random((N, H, W, C)).astype(np.float32)
  sides = rng.integers(8, B + 1, size=(S, 2))
  ys = rng.integers(0, H - sides[:, 0] + 1)
  xs = rng.integers(0, W - sides[:, 1] + 1)
  regions = np.stack([xs, ys, xs + sides[:, 1], ys + sides[:, 0]],
                     axis=1).astype(np.int32)
  masks = rng.uniform(0.3, 1.0, (S, B, B)).astype(np.float32)
  crops = rng.random((S, N, B, B, C)).astype(np.float32)
  return image, ref_image, regions, masks, crops


def _valid_segs(regions, masks, crops):
  items = []
  for s in np.flatnonzero(VALID):
    x1, y1, x2, y2 = regions[s]
    h, w = y2 - y1, x2 - x1
    crop = None if crops is None else crops[s, :, :h, :w]
    items.append(seg(crop, masks[s, :h, :w], tuple(int(v) for v in
                                                   regions[s])))
  return (H, W), items


def _paste(form, image, packed, ref_image=None):
  return np.asarray(paste_lib._paste_jit(
      image, packed.strip_meta(), FEATHER, ALPHA, ref_image, False,
      **paste_lib.static_args(form, FEATHER)))


@pytest.mark.parametrize("form", ["cpu", "accelerator"])
@pytest.mark.parametrize("seed", range(3))
def test_invalid_slots_with_crops_paste_nothing(form, seed):
  image, _, regions, masks, crops = _layout(seed)
  packed = make_packed_segs(regions, masks, crops, valid=VALID,
                            has_crop=np.ones(S, bool))
  assert bool(np.asarray(packed.has_crop).all())
  assert (np.asarray(packed.crop_sizes) > 0).all()  # real crops everywhere
  want = reference.segs_paste(image, _valid_segs(regions, masks, crops),
                              FEATHER, ALPHA)
  np.testing.assert_allclose(_paste(form, image, packed), want, rtol=0,
                             atol=1e-5)


@pytest.mark.parametrize("form", ["cpu", "accelerator"])
@pytest.mark.parametrize("seed", range(3))
def test_invalid_slots_with_a_reference_image_paste_nothing(form, seed):
  image, ref_image, regions, masks, _ = _layout(seed)
  packed = make_packed_segs(regions, masks, valid=VALID)
  want = reference.segs_paste(image, _valid_segs(regions, masks, None),
                              FEATHER, ALPHA, ref_image_opt=ref_image)
  np.testing.assert_allclose(_paste(form, image, packed, ref_image), want,
                             rtol=0, atol=1e-5)


def test_the_layout_pastes_everywhere_when_all_slots_are_valid():
  """The invalid slots' regions are not hidden under valid ones: marked
  valid, they change pixels the valid slots leave alone."""
  image, _, regions, masks, crops = _layout(0)
  only_valid = _paste("accelerator", image, make_packed_segs(
      regions, masks, crops, valid=VALID, has_crop=np.ones(S, bool)))
  every = _paste("accelerator", image, make_packed_segs(regions, masks,
                                                        crops))
  for s in np.flatnonzero(~VALID):
    x1, y1, x2, y2 = regions[s]
    assert not np.array_equal(every[:, y1:y2, x1:x2],
                              only_valid[:, y1:y2, x1:x2]), s
