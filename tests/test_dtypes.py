"""Image dtypes: float32, bfloat16, float16 and uint8 in, the same dtype out.

The contract: float images are in [0, 1], blended in float32 and cast back
to their own dtype; uint8 images (and uint8 crops and reference images) are
in [0, 255], taken as `x / 255` in float32 and, for a uint8 image, handed
back as `round(x * 255)` clipped to [0, 255].
"""

import jax.numpy as jnp
import numpy as np
import pytest

import reference
from segspaste_jax import SEG, segs_paste

try:
  import torch
except ImportError:
  torch = None

N, H, W, C = 2, 30, 34, 3
BF16 = jnp.bfloat16
# one rounding to the dtype per segment that covers a pixel (two at most)
TOLERANCE = {np.float32: 1e-5, np.float16: 1e-3, BF16: 1e-2}


def _segs(rng, channels=C, crop_dtype=np.float32):
  """Two overlapping SEGs and one overhanging the right edge."""
  segs = []
  for k, (x1, y1, h, w) in enumerate([(2, 3, 14, 16), (10, 8, 15, 12),
                                      (26, 12, 10, 13)]):
    crop = rng.random((N, h, w, channels), np.float32)
    if crop_dtype == np.uint8:
      crop = (crop * 255).round().astype(np.uint8)
    segs.append(SEG(crop, rng.random((h, w), np.float32), 0.5,
                    (x1, y1, x1 + w, y1 + h), (x1, y1, x1 + w, y1 + h),
                    str(k)))
  return (H, W), segs


def _image(rng, dtype):
  image = rng.random((N, H, W, C), np.float32)
  if dtype == np.uint8:
    return (image * 255).round().astype(np.uint8)
  return image.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16])
def test_float_dtypes_match_reference(dtype):
  rng = np.random.default_rng(0)
  image, segs = _image(rng, dtype), _segs(rng)
  out = segs_paste(image, segs, feather=3, alpha=230)
  assert out.dtype == dtype and out.shape == image.shape
  want = reference.segs_paste(image.astype(np.float64), segs, feather=3,
                              alpha=230)
  np.testing.assert_allclose(np.asarray(out, np.float64), want, rtol=0,
                             atol=TOLERANCE[dtype])


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float16, BF16])
def test_low_precision_blends_in_float32(dtype):
  """With one segment per pixel, the result is the float32 paste of the
  same values rounded once to the image's dtype."""
  rng = np.random.default_rng(1)
  image = _image(rng, dtype)
  size, segs = _segs(rng)
  segs = (size, [segs[0], segs[2]])  # disjoint
  out = segs_paste(image, segs, feather=2, alpha=200)
  in_f32 = segs_paste(image.astype(np.float32), segs, feather=2, alpha=200)
  np.testing.assert_array_equal(np.asarray(out),
                                np.asarray(in_f32).astype(dtype))


def test_uint8_image():
  rng = np.random.default_rng(2)
  image, segs = _image(rng, np.uint8), _segs(rng)
  out = segs_paste(image, segs, feather=3, alpha=230)
  assert out.dtype == np.uint8 and out.shape == image.shape
  as_float = image.astype(np.float32) / 255
  # exactly the float32 paste of x / 255, rounded and clipped
  want = segs_paste(as_float, segs, feather=3, alpha=230)
  np.testing.assert_array_equal(
      np.asarray(out), np.clip(np.round(np.asarray(want) * 255), 0, 255))
  # within one level of the float64 reference
  ref64 = reference.segs_paste(as_float.astype(np.float64), segs, feather=3,
                               alpha=230)
  assert np.abs(np.asarray(out, np.int32) - ref64 * 255).max() <= 1
  # and within one level of each other as numpy, torch and JAX input
  inputs = [jnp.asarray(image)] + ([torch.from_numpy(image)] if torch else [])
  for other in inputs:
    np.testing.assert_array_equal(
        np.asarray(segs_paste(other, segs, feather=3, alpha=230)), out)


@pytest.mark.slow
def test_uint8_crops_and_ref():
  rng = np.random.default_rng(3)
  image = _image(rng, np.float32)
  size, segs = _segs(rng, crop_dtype=np.uint8)
  as_float = (size, [s._replace(cropped_image=s.cropped_image.astype(
      np.float32) / 255) for s in segs])
  np.testing.assert_array_equal(
      np.asarray(segs_paste(image, (size, segs))),
      np.asarray(segs_paste(image, as_float)))
  ref = _image(rng, np.uint8)
  np.testing.assert_array_equal(
      np.asarray(segs_paste(image, (size, segs), ref_image_opt=ref)),
      np.asarray(segs_paste(image, as_float,
                            ref_image_opt=ref.astype(np.float32) / 255)))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.uint8, np.float16, BF16, np.float32])
def test_round_trip(dtype):
  """Nothing pasted (alpha 0, or no SEGs): the image comes back bit for bit,
  and pixels outside every SEG keep their bits when something is pasted."""
  rng = np.random.default_rng(4)
  image, segs = _image(rng, dtype), _segs(rng)
  for out in (segs_paste(image, segs, alpha=0), segs_paste(image, ((H, W),
                                                                  []))):
    assert out.dtype == dtype
    np.testing.assert_array_equal(np.asarray(out), image)
  out = np.asarray(segs_paste(image, segs, feather=0))
  np.testing.assert_array_equal(out[:, :3], image[:, :3])  # above every SEG
  np.testing.assert_array_equal(out[:, :, :2], image[:, :, :2])


@pytest.mark.slow
def test_uint8_round_trip_through_float():
  """uint8 -> x / 255 (float32) -> round(x * 255) is the identity."""
  levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  out = segs_paste(levels, ((16, 16), []))
  np.testing.assert_array_equal(np.asarray(out), levels)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, bool])
def test_other_integer_images_rejected(dtype):
  with pytest.raises(TypeError, match="image"):
    segs_paste(np.zeros((1, 8, 8, 3), dtype), ((8, 8), []))
