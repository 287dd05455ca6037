"""`jax.grad` through `paste` against central finite differences, float64.

`paste` blends in `promote(image dtype, float32)`, so float64 inputs under
`jax.enable_x64` give float64 derivatives all the way through. The paste is
a polynomial in the image, the crops, the masks, the reference image and
alpha (the blur, the resize and the blend are linear in each), so central
differences are exact up to rounding, and random directional derivatives
check the whole gradient at once.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segspaste_jax import SEG, pack_segs, paste

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

N_DIRECTIONS = 3
EPS = 1e-5


@pytest.fixture
def x64():
  """64-bit JAX types inside the test only (a context: nothing leaks into
  other tests of the same worker)."""
  with jax.enable_x64(True):
    yield


def _packed(rng, n: int, ref: bool, c: int = 3, crop_c: int | None = None):
  """Two SEGs on a 12x14 image: one overhanging the top-left corner (its
  mask of another size than its crop: resized), one overhanging the
  bottom-right (per-frame masks). Crops of `crop_c` channels (the image's
  by default)."""
  h, w = 12, 14
  crop_c = c if crop_c is None else crop_c
  segs = [
      SEG(rng.random((n, 9, 10, crop_c)), rng.random((7, 8)), 0.9,
          (-3, -2, 7, 7), (0, 0, 5, 5), "a"),
      SEG(rng.random((1, 8, 9, crop_c)), rng.random((n, 8, 9)), 0.8,
          (9, 6, 18, 14), (9, 6, 13, 11), "b"),
  ]
  packed = pack_segs(((h, w), segs), (n, h, w, c), bucket_size=16,
                     max_segments=2, with_crops=not ref)
  return rng.random((n, h, w, c)), packed


def _directional_check(loss, args, rng, eps=EPS):
  """d/dt loss(args + t v) at 0: the gradient's dot with v, and the central
  difference, for every argument and a few random directions."""
  grads = jax.grad(loss, argnums=tuple(range(len(args))))(*args)
  for k, (x, g) in enumerate(zip(args, grads)):
    assert g.dtype == jnp.float64 and g.shape == jnp.shape(x)
    for _ in range(N_DIRECTIONS):
      v = rng.standard_normal(jnp.shape(x))
      shifted = lambda t, v=v, k=k: loss(*(a + t * v if i == k else a
                                           for i, a in enumerate(args)))
      numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
      analytic = jnp.vdot(g, v)
      np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8,
                                 err_msg=f"argument {k}")


@pytest.mark.parametrize("feather", [0, 2])
@pytest.mark.parametrize("n", [1, 2])
def test_grad_image_crops_masks_alpha(x64, feather, n):
  rng = np.random.default_rng(10 * n + feather)
  image, packed = _packed(rng, n, ref=False)
  weights = rng.standard_normal(image.shape)

  def loss(image, crops, masks, alpha):
    p = packed._replace(crops=crops, masks=masks)
    out = paste(image, p, feather=feather, alpha=alpha)
    assert out.dtype == jnp.float64
    return jnp.sum(weights * out + 0.5 * out ** 2)

  args = (jnp.asarray(image), jnp.asarray(packed.crops, jnp.float64),
          jnp.asarray(packed.masks, jnp.float64), jnp.float64(180.0))
  _directional_check(loss, args, rng)


@pytest.mark.parametrize("channels,mode", [((4, 4), "node"),
                                           ((4, 3), "soft_edges"),
                                           ((3, 4), "node"),
                                           ((3, 3), "soft_edges")])
def test_grad_channel_rules_and_soft_edges(x64, channels, mode):
  """Today's RGBA rules (alpha composited, crop alpha as opacity) and soft
  edges: still polynomials in every input, so central differences hold."""
  rng = np.random.default_rng(70 + channels[0] + channels[1])
  image, packed = _packed(rng, 2, ref=False, c=channels[0],
                          crop_c=channels[1])
  weights = rng.standard_normal(image.shape)

  def loss(image, crops, masks, alpha):
    p = packed._replace(crops=crops, masks=masks)
    out = paste(image, p, feather=2, alpha=alpha, feather_mode=mode)
    return jnp.sum(weights * out + 0.5 * out ** 2)

  args = (jnp.asarray(image), jnp.asarray(packed.crops, jnp.float64),
          jnp.asarray(packed.masks, jnp.float64), jnp.float64(180.0))
  # a larger step: the loss is a polynomial of low degree (differences stay
  # exact), and rounding in a loss of ~200 would swamp alpha's small slope
  _directional_check(loss, args, rng, eps=1e-3)


@pytest.mark.parametrize("feather", [0, 2])
def test_grad_with_ref_image(x64, feather):
  rng = np.random.default_rng(20 + feather)
  image, packed = _packed(rng, 2, ref=True)
  ref = rng.random(image.shape)
  weights = rng.standard_normal(image.shape)

  def loss(image, ref, masks, alpha):
    out = paste(image, packed._replace(masks=masks), feather=feather,
                alpha=alpha, ref_image=ref)
    return jnp.sum(weights * out + 0.5 * out ** 2)

  args = (jnp.asarray(image), jnp.asarray(ref),
          jnp.asarray(packed.masks, jnp.float64), jnp.float64(90.0))
  _directional_check(loss, args, rng)


def test_crop_pixels_off_the_image_get_no_gradient(x64):
  """The overhanging parts of a crop (and its bucket padding) do not land
  on the image, so nothing depends on them."""
  rng = np.random.default_rng(30)
  image, packed = _packed(rng, 1, ref=False)
  grad = jax.grad(lambda crops: jnp.sum(paste(
      jnp.asarray(image), packed._replace(crops=crops), feather=2) ** 2))(
          jnp.asarray(packed.crops, jnp.float64))
  grad = np.abs(np.asarray(grad))
  # SEG 0 sits at (-3, -2): its first 2 rows and 3 columns are off the image
  assert grad[0, :, :2].max() == 0 and grad[0, :, :, :3].max() == 0
  assert grad[0, :, 2:9, 3:10].min() > 0
  # SEG 1 at (9, 6) on a 12x14 image: rows 6.. and columns 5.. are off it
  assert grad[1, :, 6:].max() == 0 and grad[1, :, :, 5:].max() == 0
  assert grad[1, :, :6, :5].min() > 0


def test_x64_does_not_leak():
  with jax.enable_x64(True):
    assert jnp.asarray(np.zeros(1)).dtype == jnp.float64
  assert jnp.asarray(np.zeros(1)).dtype == jnp.float32


def test_grad_alpha_at_zero(x64):
  rng = np.random.default_rng(40)
  image, packed = _packed(rng, 1, ref=False)
  loss = lambda alpha: jnp.sum(paste(jnp.asarray(image), packed, feather=2,
                                     alpha=alpha) ** 2)
  numeric = (loss(EPS) - loss(-EPS)) / (2 * EPS)
  np.testing.assert_allclose(jax.grad(loss)(jnp.float64(0.0)), numeric,
                             rtol=1e-6)


def _zero_patch_masks(packed):
  """The packed masks with a 3x4 block of exact zeros inside SEG 0's mask
  and SEG 1's first row zero: pixels that paste nothing, whose mask can
  still be learned."""
  masks = np.array(packed.masks, np.float64)
  masks[0, :, 2:5, 3:7] = 0.0
  masks[1, :, 0, :] = 0.0
  return masks


def test_grad_where_the_mask_is_zero(x64):
  """At mask 0 the blend leaves the image as it is, but its derivative with
  respect to the mask is `alpha / 255 * (crop - image)`, not 0."""
  rng = np.random.default_rng(50)
  image, packed = _packed(rng, 2, ref=False)
  masks = _zero_patch_masks(packed)
  weights = rng.standard_normal(image.shape)

  def loss(image, crops, masks, alpha):
    out = paste(image, packed._replace(crops=crops, masks=masks), feather=0,
                alpha=alpha)
    return jnp.sum(weights * out)

  args = (jnp.asarray(image), jnp.asarray(packed.crops, jnp.float64),
          jnp.asarray(masks), jnp.float64(200.0))
  _directional_check(loss, args, rng)
  grad = np.asarray(jax.grad(loss, argnums=2)(*args))
  # SEG 1 (per-frame masks the crop's size, at x 9, y 6): mask pixel
  # (f, 0, c) lands on image pixel (f, 6, 9 + c), for c < 5
  want = 200.0 / 255 * np.sum(weights[:, 6, 9:14] * (
      packed.crops[1, 0, 0, :5] - image[:, 6, 9:14]), axis=-1)
  np.testing.assert_allclose(grad[1, :, 0, :5], want, rtol=1e-10)
  assert np.abs(grad[0, 0, 2:5, 3:7]).min() > 0


def test_grad_ignores_what_the_padding_holds(x64):
  """NaN and inf in the crops' and masks' padding reach neither the result
  nor any derivative."""
  rng = np.random.default_rng(60)
  image, packed = _packed(rng, 2, ref=False)
  crops = np.array(packed.crops, np.float64)
  masks = _zero_patch_masks(packed)
  dirty_crops, dirty_masks = crops.copy(), masks.copy()
  for i in range(2):
    ch, cw = packed.crop_sizes[i]
    mh, mw = packed.mask_sizes[i]
    dirty_crops[i, :, ch:] = np.nan
    dirty_crops[i, :, :, cw:] = np.inf
    dirty_masks[i, :, mh:] = np.nan
    dirty_masks[i, :, :, mw:] = -np.inf

  def loss(image, crops, masks, alpha):
    return jnp.sum(paste(image, packed._replace(crops=crops, masks=masks),
                         feather=2, alpha=alpha) ** 2)

  grad = jax.grad(loss, argnums=(0, 1, 2, 3))
  clean = grad(jnp.asarray(image), jnp.asarray(crops), jnp.asarray(masks),
               jnp.float64(150.0))
  dirty = grad(jnp.asarray(image), jnp.asarray(dirty_crops),
               jnp.asarray(dirty_masks), jnp.float64(150.0))
  for c, d in zip(clean, dirty):
    assert np.isfinite(np.asarray(d)).all()
    np.testing.assert_array_equal(np.asarray(d), np.asarray(c))
