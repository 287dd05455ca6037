"""The detailer round trip on the device: crop -> edit -> pack -> paste.

(a) crop_segs then paste, with full masks, feather 0 and alpha 255, gives
    the image back bit for bit, for regions inside, touching and crossing
    every border (the accelerator form, which `paste` takes inside `jit`;
    the host path below is the CPU form).
(b) crop_segs against numpy slicing is `tests/test_crop.py`.
(c) the whole round trip in one `jax.jit` (an affine colour edit of the
    crops in between) equals the host path, `segs_paste` on SEGS built with
    numpy from the same regions and masks.
(d) `jax.grad` of a loss through that jitted round trip, with respect to
    the edit's parameters and the image, matches central differences in
    float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_regions
from segspaste_jax import (SEG, crop_segs, make_packed_segs, paste,
                           segs_paste)

N, H, W, C = 2, 40, 48, 3
B = 32
S = 4
# Every test below runs the same shapes through `_roundtrip` (float32) or
# `_loss_and_grad` (float64): two compiled programs for the whole file,
# plus the host path's and the reference-image test's own.


def _edit(crops, params):
  """A per-channel affine colour transform: `gain * x + bias`."""
  return crops * params[0] + params[1]


def _device_roundtrip(image, regions, masks, params, feather, alpha,
                     source=None):
  """Crops `source` (default: `image`), edits, pastes into `image`."""
  cut = crop_segs(image if source is None else source, regions, B)
  packed = make_packed_segs(regions, masks, _edit(cut.crops, params),
                            crop_sizes=cut.sizes)
  return paste(image, packed, feather=feather, alpha=alpha)


# feather and alpha are traced: one program for every test
_roundtrip = jax.jit(_device_roundtrip)
_IDENTITY_EDIT = np.stack([np.ones(C), np.zeros(C)]).astype(np.float32)


def _border_regions(h: int, w: int) -> np.ndarray:
  """Regions flush with each edge, crossing each edge and each corner, and
  covering the whole image (larger than the bucket)."""
  return np.array([
      [0, 0, 10, 12], [w - 9, h - 7, w, h], [5, -6, 20, 8], [-7, 10, 9, 25],
      [w - 5, 3, w + 10, 18], [12, h - 4, 30, h + 9], [-4, -3, 8, 9],
      [w - 6, h - 5, w + 6, h + 7], [-10, -10, w + 10, h + 10],
      [0, 0, w, h], [-B - 3, 5, -3, 20], [w - 1, h - 1, w + 30, h + 30]],
      np.int32)


def _region_sets():
  """`[S, 4]` sets: the border cases, then random ones (seeded)."""
  border = _border_regions(H, W)
  sets = [border[i:i + S] for i in range(0, len(border), S)]
  for seed in range(4):
    sets.append(random_regions(np.random.default_rng(seed), S, H, W, B,
                               empty=seed % 2 == 1))
  return sets


def test_crop_then_paste_is_the_identity():
  """Full masks, feather 0, alpha 255, the identity edit: every pixel goes
  back where it came from, bit for bit, whatever the region."""
  rng = np.random.default_rng(0)
  full = np.ones((S, B, B), np.float32)
  for k, regions in enumerate(_region_sets()):
    image = rng.random((N, H, W, C), dtype=np.float32)
    out = _roundtrip(image, regions, full, _IDENTITY_EDIT, 0, 255.0)
    np.testing.assert_array_equal(out, image, err_msg=f"set {k}: {regions}")
    # and a visible edit does show wherever a region meets the image
    edited = _roundtrip(image, regions, full, 2 * _IDENTITY_EDIT, 0, 255.0)
    changed = np.any(np.asarray(edited) != image, axis=(0, 3))
    covered = np.zeros((H, W), bool)
    for x1, y1, x2, y2 in regions:
      x2, y2 = min(x2, x1 + B), min(y2, y1 + B)  # cut to the bucket
      covered[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
    np.testing.assert_array_equal(changed, covered & (image.max(axis=(0, 3))
                                                      > 0))


def test_crop_then_paste_with_any_mask_and_feather_changes_nothing():
  """Pasting an image's own pixels back blends `x` with `x`: the image up
  to rounding, for any mask, feather and alpha."""
  rng = np.random.default_rng(3)
  for regions in _region_sets()[:3]:
    image = rng.random((N, H, W, C), dtype=np.float32)
    masks = rng.random((S, B, B), dtype=np.float32)
    out = _roundtrip(image, regions, masks, _IDENTITY_EDIT, 5, 200.0)
    np.testing.assert_allclose(out, image, rtol=0, atol=3e-7)


def test_crops_pasted_equal_the_ref_image_path_inside_the_image():
  """For regions inside the image, pasting `crop_segs(ref)` is the node's
  `ref_image_opt` path, for any mask and feather."""
  rng = np.random.default_rng(4)
  regions = random_regions(rng, 60, H, W, B, empty=False)
  inside = ((regions[:, 0] >= 0) & (regions[:, 1] >= 0)
            & (regions[:, 2] <= W) & (regions[:, 3] <= H)
            & (regions[:, 2] - regions[:, 0] <= B)
            & (regions[:, 3] - regions[:, 1] <= B))
  regions = regions[inside][:S]
  assert len(regions) == S
  image, ref = (rng.random((N, H, W, C), dtype=np.float32) for _ in range(2))
  masks = rng.random((S, B, B), dtype=np.float32)
  via_crops = _roundtrip(image, regions, masks, _IDENTITY_EDIT, 3, 255.0,
                         ref)
  via_ref = jax.jit(lambda image, ref: paste(
      image, make_packed_segs(regions, masks), feather=3, alpha=255,
      ref_image=ref))(image, ref)
  np.testing.assert_allclose(via_crops, via_ref, rtol=0, atol=1e-6)
  assert float(jnp.max(jnp.abs(via_crops - image))) > 1e-2


# ----------------------------------------------------------------------------
# (c), (d): the jitted round trip with an edit, against the host path


def _host_segs(image, regions, masks, params):
  """SEGS built on the host, numpy only: crops cut by slicing the image
  padded far enough that no region leaves it, edited in float64."""
  image = np.asarray(image, np.float64)
  pad = 2 * B
  padded = np.pad(image, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
  segs = []
  for s, (x1, y1, x2, y2) in enumerate(np.asarray(regions)):
    h, w = y2 - y1, x2 - x1
    crop = padded[:, pad + y1:pad + y2, pad + x1:pad + x2]
    crop = crop * np.asarray(params[0], np.float64) + np.asarray(
        params[1], np.float64)
    mask = np.asarray(masks[s])[..., :h, :w]
    segs.append(SEG(crop.astype(np.float32), mask.astype(np.float32), 0.9,
                    (int(x1), int(y1), int(x2), int(y2)),
                    (int(x1), int(y1), int(x2), int(y2)), "part"))
  return (image.shape[1], image.shape[2]), segs


def _problem(seed: int):
  """An image, S regions that fit the bucket (inside, touching and crossing
  the borders, some wholly off the image), soft random masks `[S, B, B]`
  and an edit."""
  rng = np.random.default_rng(seed)
  regions = random_regions(rng, S, H, W, B, empty=False)
  regions[:, 2:] = np.minimum(regions[:, 2:], regions[:, :2] + B)
  image = rng.random((N, H, W, C), dtype=np.float32)
  masks = rng.random((S, B, B), dtype=np.float32)
  params = np.stack([rng.uniform(0.6, 1.4, C), rng.uniform(-0.2, 0.2, C)])
  return image, regions, masks, params.astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_jitted_roundtrip_matches_the_host_path(seed):
  image, regions, masks, params = _problem(seed)
  out = _roundtrip(image, regions, masks, params, 5, 230.0)
  host = segs_paste(image, _host_segs(image, regions, masks, params),
                    feather=5, alpha=230, bucket_size=B, max_segments=S)
  assert out.shape == (N, H, W, C) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, host, rtol=0, atol=1e-5)
  # the edit shows: the round trip is not the input
  assert float(jnp.max(jnp.abs(out - image))) > 1e-2


@pytest.fixture
def x64():
  """64-bit JAX types inside the test only (as tests/test_grad.py)."""
  with jax.enable_x64(True):
    yield


def _loss(params, image, regions, masks, weights, target):
  out = _device_roundtrip(image, regions, masks, params, 5, 200.0)
  return jnp.sum(weights * out) + 0.5 * jnp.sum((out - target) ** 2)


_loss_and_grad = jax.jit(jax.value_and_grad(_loss, argnums=(0, 1)))


@pytest.mark.parametrize("seed", [0, 2])
def test_grad_through_the_jitted_roundtrip(x64, seed):
  """The round trip is linear in the edit's parameters and polynomial in
  the image, so central differences are exact up to rounding."""
  image, regions, masks, params = _problem(seed)
  image, masks, params = (np.asarray(a, np.float64)
                          for a in (image, masks, params))
  rng = np.random.default_rng(seed + 10)
  fixed = (regions, masks, rng.standard_normal(image.shape),
           rng.random(image.shape))
  value, (d_params, d_image) = _loss_and_grad(params, image, *fixed)
  assert value.dtype == d_params.dtype == d_image.dtype == jnp.float64
  loss = lambda p, im: _loss_and_grad(p, im, *fixed)[0]  # same program
  eps = 1e-5
  for index in np.ndindex(params.shape):  # every parameter on its own
    step = np.zeros_like(params)
    step[index] = eps
    numeric = (loss(params + step, image) - loss(params - step, image)) / (
        2 * eps)
    np.testing.assert_allclose(d_params[index], numeric, rtol=1e-6,
                               atol=1e-8, err_msg=str(index))
  assert np.abs(np.asarray(d_params)).min() > 1e-3  # every one matters
  # the image (background and crop source at once): random directions
  for _ in range(2):
    v = rng.standard_normal(image.shape)
    numeric = (loss(params, image + eps * v) - loss(params, image - eps * v)
               ) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(d_image, v), numeric, rtol=1e-6,
                               atol=1e-8)
