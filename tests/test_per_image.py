"""A different SEGS for every image of a batch, in one program.

`segs_paste(images, [segs_0, ..., segs_N-1])` must equal N separate calls
(and the float64 reference run image by image), whatever each image's SEGS
hold: different counts, sizes, channels, mask batches, regions over the
edges; `pack_segs` returns the batched pytree `paste` takes directly.
"""

import jax
import numpy as np
import pytest

import reference
import helpers
from helpers import random_mask, seg
from segspaste_jax import pack_segs, paste, segs_paste, unpack_segs
from segspaste_jax._src import paste as paste_lib

H, W = 48, 56


def _batch(seed, n=4, c=3):
  rng = np.random.default_rng(seed)
  images = rng.random((n, H, W, c)).astype(np.float32)
  segs = []
  for _ in range(n):
    items = []
    for _ in range(int(rng.integers(0, 5))):
      h, w = int(rng.integers(4, 30)), int(rng.integers(4, 30))
      y, x = int(rng.integers(-h // 2, H - 2)), int(rng.integers(-w // 2,
                                                                 W - 2))
      channels = c if c == 1 or rng.random() < 0.6 else 7 - c
      crop = (rng.random((int(rng.choice([1, 1, 3])), h, w, channels))
              .astype(np.float32) if rng.random() < 0.9 else None)
      frames = int(rng.choice([0, 0, 1, 3]))  # 3: combined, as the node does
      items.append(seg(crop, random_mask(rng, frames, h, w), (x, y, x + w,
                                                               y + h)))
    segs.append(((H, W), items))
  return images, segs


@pytest.mark.parametrize("seed", helpers.quick_first(range(3), 1))
def test_equals_separate_calls_and_reference(seed):
  images, segs = _batch(seed, c=(3, 4, 1)[seed % 3])
  feather = (0, 3, 8)[seed % 3]
  got = np.asarray(segs_paste(images, segs, feather, 230))
  for k in range(len(images)):
    alone = np.asarray(segs_paste(images[k:k + 1], segs[k], feather, 230))
    np.testing.assert_allclose(got[k:k + 1], alone, rtol=0, atol=1e-6)
    want = reference.segs_paste(images[k:k + 1], segs[k], feather, 230)
    np.testing.assert_allclose(got[k:k + 1], want, rtol=0, atol=1e-5)
  assert np.abs(got - images).max() > 0.05


@pytest.mark.parametrize("form", ["cpu", "accelerator"])
def test_pack_segs_gives_a_batched_pytree(form):
  images, segs = _batch(10)
  packed = pack_segs(segs, images.shape)
  assert packed.per_image and packed.masks.ndim == 5
  s, b = packed.bucket
  assert packed.crops.shape[:2] == (4, s) and packed.regions.shape == (4, s, 4)
  assert packed.num_segments == sum(len(x[1]) for x in segs)
  got = np.asarray(paste_lib._paste_jit(images, packed.strip_meta(), 5, 255,
                                        None,
                                        **paste_lib.static_args(form, 5)))
  want = np.concatenate([reference.segs_paste(images[k:k + 1], segs[k], 5)
                         for k in range(4)])
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  # and under the caller's own jit
  jitted = jax.jit(lambda i, p: paste(i, p, feather=5))(images, packed)
  np.testing.assert_allclose(np.asarray(jitted), want, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_ref_image_and_modes():
  images, segs = _batch(20)
  ref = np.random.default_rng(21).random(images.shape).astype(np.float32)
  for ref_image in (ref, ref[:1]):
    got = np.asarray(segs_paste(images, segs, 6, 255, ref_image,
                                feather_mode="soft_edges"))
    for k in range(4):
      r = ref_image[k:k + 1] if len(ref_image) > 1 else ref_image
      want = reference.segs_paste(images[k:k + 1], segs[k], 6, 255, r,
                                  feather_mode="soft_edges")
      np.testing.assert_allclose(got[k:k + 1], want, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["cpu", "accelerator"])
def test_reference_frames_in_images_taller_than_the_bucket(form):
  """Windows that start below row 0 of their image: each image's window is
  cut from its own reference frame, or from the one shared frame at the
  image's own rows."""
  rng = np.random.default_rng(30)
  n, h, w = 3, 200, 72  # bucket 128: windows start anywhere in 0..72
  images = rng.random((n, h, w, 3)).astype(np.float32)
  refs = rng.random((n, h, w, 3)).astype(np.float32)
  segs = []
  for _ in range(n):
    items = []
    for y in rng.integers(-10, h - 10, 3):
      side = int(rng.integers(10, 40))
      x = int(rng.integers(-5, w - 5))
      items.append(seg(None, random_mask(rng, 0, side, side),
                       (x, int(y), x + side, int(y) + side)))
    segs.append(((h, w), items))
  packed = pack_segs(segs, images.shape, with_crops=False)
  assert packed.bucket[1] < h
  for ref in (refs, refs[:1]):
    got = np.asarray(paste_lib._paste_jit(images, packed.strip_meta(), 4,
                                          255, ref,
                                          **paste_lib.static_args(form, 4)))
    for k in range(n):
      r = ref[k:k + 1] if len(ref) > 1 else ref
      want = reference.segs_paste(images[k:k + 1], segs[k], 4, 255, r)
      np.testing.assert_allclose(got[k:k + 1], want, rtol=0, atol=1e-5)


def test_unpack_gives_the_list_back():
  images, segs = _batch(40)
  back = unpack_segs(pack_segs(segs, images.shape))
  assert isinstance(back, list) and len(back) == 4
  for (size, items), (size_b, items_b) in zip(segs, back):
    assert tuple(size_b) == size and len(items_b) == len(items)
    for a, b in zip(items, items_b):
      assert b.crop_region == a.crop_region
      if a.cropped_image is not None:
        c = a.cropped_image.shape[-1]
        np.testing.assert_array_equal(b.cropped_image[..., :c],
                                      a.cropped_image[:1])
  np.testing.assert_array_equal(np.asarray(segs_paste(images, back, 3)),
                                np.asarray(segs_paste(images, segs, 3)))


def test_errors_name_the_image():
  images, segs = _batch(50)
  with pytest.raises(ValueError, match=r"segs: a list of 3 SEGS for 4 images"):
    segs_paste(images, segs[:3])
  bad = list(segs)
  items = list(bad[2][1]) + [seg(None, np.full((4, 4), 2.0, np.float32),
                                 (0, 0, 4, 4))]
  bad[2] = (bad[2][0], items)
  with pytest.raises(ValueError, match=rf"segs\[2\]\[1\]\[{len(items) - 1}\]"
                     r"\.cropped_mask: expected values in \[0, 1\]"):
    segs_paste(images, bad)
