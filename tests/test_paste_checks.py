"""`paste` and `sharded_paste` check shapes and dtypes when traced.

Each mistake a user can make with the jitted paste gives a `TypeError` or
`ValueError` naming the argument, before anything is compiled, inside a
caller's `jit` too, instead of wrong pixels or an XLA broadcasting error.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import seg
from segspaste_jax import pack_segs, paste, sharded_paste

N, H, W = 3, 20, 24


def _packed(frames=N, channels=3, crop_frames=1, mask_frames=0):
  rng = np.random.default_rng(0)
  crop = rng.random((crop_frames, 6, 7, channels), np.float32)
  mask = rng.random((mask_frames, 6, 7) if mask_frames else (6, 7),
                    np.float32)
  return pack_segs(((H, W), [seg(crop, mask, (2, 3, 9, 9))]),
                   (frames, H, W, channels))


def _image(n=N, c=3, dtype=np.float32):
  return np.zeros((n, H, W, c), dtype)


def test_uint8_image_refused_with_the_conversion():
  with pytest.raises(TypeError, match=r"image: expected a floating array "
                     r"\[N, H, W, C\] with values in \[0, 1\], got uint8; "
                     r"convert it with `image.astype\(jnp.float32\) / 255`"):
    paste(_image(dtype=np.uint8), _packed())
  with pytest.raises(TypeError, match=r"ref_image: .* got uint8; convert it "
                     r"with `ref_image.astype"):
    paste(_image(), _packed(), ref_image=_image(dtype=np.uint8))
  with pytest.raises(TypeError, match=r"image: expected a floating array "
                     r"\[N, H, W, C\], got dtype int32"):
    paste(_image(dtype=np.int32), _packed())


def test_ranks_and_kinds():
  with pytest.raises(ValueError, match=r"image: expected rank 4 \[N, H, W, "
                     r"C\], got shape \(20, 24, 3\)"):
    paste(_image()[0], _packed())
  with pytest.raises(TypeError, match=r"image: expected a floating array "
                     r"\[N, H, W, C\], got list"):
    paste([[0.0]], _packed())
  with pytest.raises(TypeError, match=r"packed: expected a PackedSegs"):
    paste(_image(), tuple(_packed()))
  with pytest.raises(ValueError, match=r"image: expected a non-empty .* C "
                     r"in \(1, 3, 4\), got shape \(3, 20, 24, 2\)"):
    paste(_image(c=2), _packed())


def test_frame_counts_agree():
  with pytest.raises(ValueError, match=r"packed.masks: has 3 frames .* for "
                     r"an image of 2; expected 1 or 2"):
    paste(_image(n=2), _packed(mask_frames=3))
  with pytest.raises(ValueError, match=r"packed.crops: has 3 frames .* for "
                     r"an image of 5; expected 1 or at least 5"):
    paste(_image(n=5), _packed(crop_frames=3))
  with pytest.raises(ValueError, match=r"ref_image: expected \[1 or 3, 20, "
                     r"24, C\] like the image \(3, 20, 24, 3\), got shape "
                     r"\(2, 20, 24, 3\)"):
    paste(_image(), _packed(), ref_image=_image(n=2))
  with pytest.raises(ValueError, match=r"ref_image: expected .* got shape "
                     r"\(3, 20, 23, 3\)"):
    paste(_image(), _packed(), ref_image=np.zeros((N, H, W - 1, 3),
                                                  np.float32))
  segs = [((H, W), [seg(None, np.ones((4, 4), np.float32), (0, 0, 4, 4))])]
  per_image = pack_segs(segs * 4, (4, H, W, 3))
  with pytest.raises(ValueError, match=r"packed: packed per image for 4 "
                     r"images, got an image of 3 frames"):
    paste(_image(), per_image)


def test_channels_that_blend():
  with pytest.raises(ValueError, match=r"packed.crops: cannot paste "
                     r"3-channel pixels into a 1-channel image"):
    paste(_image(c=1), _packed())
  with pytest.raises(ValueError, match=r"ref_image: cannot paste 1-channel "
                     r"pixels into a 3-channel image"):
    paste(_image(), _packed(), ref_image=_image(c=1))


def test_checked_inside_a_callers_jit_and_by_sharded_paste():
  packed = _packed(mask_frames=N)
  with pytest.raises(ValueError, match=r"packed.masks: has 3 frames"):
    jax.jit(lambda image: paste(image, packed))(jnp.zeros((2, H, W, 3)))
  with pytest.raises(TypeError, match=r"image: .* got uint8"):
    jax.jit(lambda image: paste(image, packed))(
        jnp.zeros((N, H, W, 3), jnp.uint8))
  with pytest.raises(ValueError, match=r"packed.masks: has 3 frames"):
    sharded_paste(_image(n=2), packed)
