"""Colour matching: `match_color` and the paste's `color_match`.

Every method is compared against a reference written here from its
formula: rct with scikit-image's CIELAB (float64), mkl with numpy's `eig`
(float64), lowfreq with a dense normalised Gaussian convolution and with
FaceFusion's multi-scale low-frequency step re-run with OpenCV. Then the
properties: colours moved by a known global map come back, lowfreq keeps
fine detail, zero weights and strength 0 leave the crop alone, flat and
grey crops stay finite (values and gradients), one program serves every
strength, and `color_match="none"` is today's paste bit for bit.
"""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage import color as skcolor

from helpers import seg
from segspaste_jax import match_color, pack_segs, paste, segs_paste
from segspaste_jax._src import cpu as cpu_lib
from segspaste_jax._src import paste as paste_lib

METHODS = ("lowfreq", "rct", "mkl")
# The contract's guards (see segspaste_jax._src.color): a floor of 0.1 on
# the Lab standard deviations (rct), a ridge of 1e-4 on the covariances
# (mkl), and lowfreq's default sigma, a sixteenth of sqrt(h * w).
RCT_EPS, MKL_RIDGE = 0.1, 1e-4


def _smooth_field(rng, shape, scale=0.15):
  """`[..., h, w, 3]`: a random low-order colour field (planes and a slow
  sine), amplitude about `scale`."""
  *lead, h, w, c = shape
  yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
  a = rng.uniform(-1, 1, tuple(lead) + (1, 1, c, 4))
  return scale * (a[..., 0] + a[..., 1] * yy[..., None] + a[..., 2]
                  * xx[..., None] + 0.5 * a[..., 3]
                  * np.sin(np.pi * (yy + xx))[..., None])


def _texture(rng, shape, lo=0.25, hi=0.75):
  """Mid-range colours with some structure and noise, float64."""
  base = 0.5 * (lo + hi) + _smooth_field(rng, shape, 0.1)
  return np.clip(base + rng.uniform(-0.12, 0.12, shape), lo, hi)


def _weighted(x, w):
  """Weighted mean and (co)variance over pixels, float64: `[..., k]`,
  `[..., k, k]`."""
  w = w[..., None] / w.sum(axis=(-2, -1))[..., None, None, None]
  mean = (w * x).sum(axis=(-3, -2))
  c = x - mean[..., None, None, :]
  cov = np.einsum("...hwi,...hwj->...ij", w * c, c)
  return mean, cov


def _rct_reference(x, r, w):
  lx, lr = skcolor.rgb2lab(x), skcolor.rgb2lab(r)
  mx, cx = _weighted(lx, w)
  mr, cr = _weighted(lr, w)
  sx = np.sqrt(np.diagonal(cx, axis1=-2, axis2=-1) + RCT_EPS ** 2)
  sr = np.sqrt(np.diagonal(cr, axis1=-2, axis2=-1) + RCT_EPS ** 2)
  lab = ((lx - mx[..., None, None, :]) * (sr / sx)[..., None, None, :]
         + mr[..., None, None, :])
  lab = np.clip(lab, [0, -127, -127], [100, 127, 127])
  return skcolor.lab2rgb(lab)


def _sqrtm(a):
  lam, v = np.linalg.eig(a)  # symmetric: real eigenpairs
  return (v * np.sqrt(lam.real)) @ np.linalg.inv(v)


def _mkl_reference(x, r, w):
  out = np.empty_like(x)
  for i in np.ndindex(x.shape[:-3]):
    mx, a = _weighted(x[i], w[i])
    mr, b = _weighted(r[i], w[i])
    a, b = a + MKL_RIDGE * np.eye(3), b + MKL_RIDGE * np.eye(3)
    a_half = _sqrtm(a)
    a_inv_half = np.linalg.inv(a_half)
    t = a_inv_half @ _sqrtm(a_half @ b @ a_half) @ a_inv_half
    out[i] = (x[i] - mx) @ t + mr
  return np.clip(out, 0, 1)


def _lowfreq_reference(x, r, w, sigma):
  """Dense normalised convolution, float64: `x + G(w (r - x)) / G(w)`."""
  h, wd = x.shape[-3:-1]
  g = lambda n: np.exp(-0.5 * ((np.arange(n)[:, None] - np.arange(n)) / sigma)
                       ** 2)
  blur = lambda a: np.einsum("ij,...jlc,ml->...imc", g(h), a, g(wd),
                             optimize=True)
  num = blur(w[..., None] * (r - x))
  den = blur(w[..., None])
  return np.clip(x + num / den, 0, 1)


def _facefusion_lowfreq(source, target):
  """FaceFusion's multi-scale step, float: `target` takes the low
  frequencies of `source` (area down to a few sizes, cubic up), re-run
  with OpenCV from its description."""
  h, w = target.shape[:2]

  def equalize(src, size):
    small = lambda a: cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
    diff = cv2.resize(small(src) - small(target), (w, h),
                      interpolation=cv2.INTER_CUBIC)
    return np.clip(target + diff, 0, 1)

  for size in np.linspace(16, h, 3, endpoint=False):
    source = equalize(source, max(2, int(size) // 2 * 2))
  return equalize(source, h)


# ----------------------------------------------------------------------------
# Against the references.

def test_rct_against_scikit_image():
  rng = np.random.default_rng(0)
  x = _texture(rng, (2, 3, 20, 24, 3))
  r = _texture(rng, (2, 3, 20, 24, 3), 0.1, 0.9)
  w = rng.random((2, 3, 20, 24))
  strength = 0.7
  want = np.clip(x + strength * (_rct_reference(x, r, w) - x), 0, 1)
  got = match_color(x.astype(np.float32), r.astype(np.float32), method="rct",
                    weights=w.astype(np.float32), strength=strength)
  assert got.shape == x.shape and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-4)


def test_mkl_against_numpy_eig():
  rng = np.random.default_rng(1)
  x = _texture(rng, (3, 18, 22, 3))
  r = _texture(rng, (3, 18, 22, 3), 0.1, 0.9)
  w = rng.random((3, 18, 22))
  got = match_color(x.astype(np.float32), r.astype(np.float32), method="mkl",
                    weights=w.astype(np.float32))
  np.testing.assert_allclose(np.asarray(got), _mkl_reference(x, r, w),
                             atol=2e-4)


def test_lowfreq_against_dense_gaussian():
  # The blur runs on a coarse grid (area cells, bilinear back): within
  # 1/255 of the dense normalised convolution on smooth differences.
  rng = np.random.default_rng(2)
  shape = (2, 160, 144, 3)
  r = _texture(rng, shape)
  x = np.clip(r + _smooth_field(rng, shape), 0, 1)
  x = np.clip(x + rng.uniform(-0.05, 0.05, shape), 0, 1)
  w = np.ones(shape[:-1])
  w[0, :40] = 0  # a region with no weight: filled from its neighbours
  sigma = np.sqrt(160 * 144) / 16
  got = np.asarray(match_color(x.astype(np.float32), r.astype(np.float32),
                               weights=w.astype(np.float32)))
  want = _lowfreq_reference(x, r, w, sigma)
  assert np.abs(got - want).max() < 1 / 255


def test_lowfreq_against_facefusion_opencv():
  # FaceFusion's cells of h/16 (area down, cubic up) act as a Gaussian of
  # about h/32: with that sigma both transfer a smooth tone change alike,
  # within 2/255 on average and 8/255 anywhere.
  rng = np.random.default_rng(3)
  h = 128
  target = _texture(rng, (h, h, 3)).astype(np.float32)
  source = np.clip(target + _smooth_field(rng, (h, h, 3), 0.2), 0, 1)
  source = source.astype(np.float32)
  want = _facefusion_lowfreq(source, target)
  got = np.asarray(match_color(target, source, sigma=h / 32))
  assert np.abs(got - want).mean() < 2 / 255
  assert np.abs(got - want).max() < 8 / 255
  assert np.abs(target - want).mean() > 10 / 255  # it did move


# ----------------------------------------------------------------------------
# Properties.

def test_rct_undoes_a_cielab_affine_map():
  rng = np.random.default_rng(4)
  r = _texture(rng, (2, 24, 24, 3), 0.3, 0.7)
  lab = skcolor.rgb2lab(r)
  gain, shift = np.array([0.8, 1.2, 0.9]), np.array([6.0, -4.0, 5.0])
  moved = lab * gain + shift
  x = skcolor.lab2rgb(moved)
  assert np.abs(skcolor.rgb2lab(x) - moved).max() < 1e-6  # in gamut
  got = np.asarray(match_color(x.astype(np.float32), r.astype(np.float32),
                               method="rct"))
  np.testing.assert_allclose(got, r, atol=1e-3)
  assert np.abs(x - r).max() > 0.05


def test_mkl_undoes_a_symmetric_mix():
  rng = np.random.default_rng(5)
  r = _texture(rng, (2, 24, 24, 3), 0.3, 0.7)
  m = np.array([[1.1, 0.2, -0.1], [0.2, 0.8, 0.15], [-0.1, 0.15, 1.2]])
  mean = r.mean(axis=(-3, -2), keepdims=True)
  x = (r - mean) @ m + mean + np.array([0.05, -0.04, 0.03])
  assert 0 <= x.min() and x.max() <= 1
  got = np.asarray(match_color(x.astype(np.float32), r.astype(np.float32),
                               method="mkl"))
  # the ridge (1e-4 against variances of about 1e-2) bends it a little
  np.testing.assert_allclose(got, r, atol=4e-3)
  assert np.abs(x - r).max() > 0.05


def test_lowfreq_undoes_a_smooth_field_and_keeps_fine_detail():
  rng = np.random.default_rng(6)
  h = 96
  r = _texture(rng, (h, h, 3), 0.3, 0.7)
  x = np.clip(r + _smooth_field(rng, (h, h, 3), 0.1), 0, 1)
  got = np.asarray(match_color(x.astype(np.float32), r.astype(np.float32)))
  inner = (slice(12, -12), slice(12, -12))
  assert np.abs(got - r)[inner].mean() < 2 / 255
  assert np.abs(x - r)[inner].mean() > 6 / 255
  # 2-px detail in the crop only: none of it leaks into the change
  checker = 0.1 * ((np.indices((h, h)).sum(0) // 1) % 2 - 0.5)[..., None]
  detailed = np.clip(x + checker, 0, 1)
  got = np.asarray(match_color(detailed.astype(np.float32),
                               r.astype(np.float32)))
  change = got - detailed
  # the checkerboard's share of the change: its correlation with it
  leak = np.abs((change * np.sign(checker)).mean())
  assert leak < 1e-3, leak


@pytest.mark.parametrize("method", METHODS)
def test_weights_pick_the_pixels(method):
  # pixels of weight 0 in the reference never matter
  rng = np.random.default_rng(7)
  x = _texture(rng, (20, 20, 3)).astype(np.float32)
  r = _texture(rng, (20, 20, 3), 0.1, 0.9).astype(np.float32)
  w = np.zeros((20, 20), np.float32)
  w[4:16, 3:17] = rng.random((12, 14))
  other = r.copy()
  other[w == 0] = rng.random((int((w == 0).sum()), 3))
  a = match_color(x, r, method=method, weights=w)
  b = match_color(x, other, method=method, weights=w)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  assert np.abs(np.asarray(a) - x).max() > 0.01


@pytest.mark.parametrize("method", METHODS)
def test_edge_cases_stay_finite_and_still(method):
  rng = np.random.default_rng(8)
  x = _texture(rng, (4, 12, 10, 4)).astype(np.float32)
  r = _texture(rng, (4, 12, 10, 4), 0.1, 0.9).astype(np.float32)
  x[1] = 0.5                                   # flat
  x[2, ..., :3] = x[2, ..., :1]                # grey
  x[3] = 0.0                                   # black
  r[3] = 1.0                                   # onto white
  w = rng.random((4, 12, 10)).astype(np.float32)
  got = np.asarray(match_color(x, r, method=method, weights=w))
  assert np.isfinite(got).all() and got.min() >= 0 and got.max() <= 1
  np.testing.assert_array_equal(got[..., 3], x[..., 3])  # alpha untouched
  # zero weights, and strength 0: the crop unchanged, bit for bit
  np.testing.assert_array_equal(
      np.asarray(match_color(x, r, method=method, weights=0 * w)), x)
  np.testing.assert_array_equal(
      np.asarray(match_color(x, r, method=method, strength=0.0)), x)
  # tiny: one pixel
  one = np.asarray(match_color(x[:, :1, :1], r[:, :1, :1], method=method))
  assert np.isfinite(one).all()


def test_grey_channel_is_matched_as_rgb_grey():
  rng = np.random.default_rng(9)
  g = _texture(rng, (2, 16, 16, 1)).astype(np.float32)
  rg = _texture(rng, (2, 16, 16, 1), 0.1, 0.9).astype(np.float32)
  for method in METHODS:
    rgb = match_color(np.repeat(g, 3, -1), np.repeat(rg, 3, -1),
                      method=method)
    got = match_color(g, rg, method=method)
    np.testing.assert_allclose(np.asarray(got),
                               np.asarray(rgb).mean(-1, keepdims=True),
                               atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_finite_and_right(method):
  rng = np.random.default_rng(10)
  x = _texture(rng, (3, 10, 12, 3))
  x[1] = 0.5
  x[2] = x[2, ..., :1]  # grey: repeated eigenvalues
  r = _texture(rng, (3, 10, 12, 3), 0.1, 0.9)
  w = rng.random((3, 10, 12))
  probe = rng.standard_normal(x.shape)

  def loss(x, r, w, s):
    return jnp.sum(jnp.asarray(probe, x.dtype)
                   * match_color(x, r, method=method, weights=w, strength=s))

  grads = jax.grad(loss, argnums=(0, 1, 2, 3))(
      *(jnp.asarray(a, jnp.float32) for a in (x, r, w)), 0.8)
  assert all(np.isfinite(np.asarray(g)).all() for g in grads)
  with jax.enable_x64(True):
    args = [jnp.asarray(a, jnp.float64) for a in (x[:1], r[:1], w[:1])]
    d = [jnp.asarray(rng.standard_normal(a.shape)) for a in args]
    eps = 1e-6
    grads = jax.grad(loss, argnums=(0, 1, 2))(*args, 0.8)
    for k in range(3):
      plus = list(args)
      minus = list(args)
      plus[k], minus[k] = args[k] + eps * d[k], args[k] - eps * d[k]
      numeric = (loss(*plus, 0.8) - loss(*minus, 0.8)) / (2 * eps)
      np.testing.assert_allclose(float(jnp.sum(grads[k] * d[k])),
                                 float(numeric), rtol=1e-5, atol=1e-7)


def test_one_program_for_every_strength_and_sigma(compile_counter):
  rng = np.random.default_rng(11)
  x = _texture(rng, (2, 16, 16, 3)).astype(np.float32)
  r = _texture(rng, (2, 16, 16, 3)).astype(np.float32)
  match_color(x, r, strength=0.1, sigma=2.0)  # compile
  before = len(compile_counter)
  for s, sigma in ((0.0, 1.0), (0.5, 3.5), (1.0, 8.0)):
    match_color(x, r, strength=s, sigma=sigma).block_until_ready()
  assert len(compile_counter) == before


def test_bad_inputs_name_the_argument():
  x = np.full((8, 8, 3), 0.5, np.float32)
  cases = [
      (dict(method="hist"), ValueError, "method"),
      (dict(strength=1.5), ValueError, "strength"),
      (dict(strength=-0.1), ValueError, "strength"),
      (dict(strength="1"), TypeError, "strength"),
      (dict(sigma=0.0), ValueError, "sigma"),
      (dict(weights=np.ones((8, 7), np.float32)), ValueError, "weights"),
      (dict(weights=np.ones((8, 8), np.int32)), TypeError, "weights"),
  ]
  for kwargs, error, name in cases:
    with pytest.raises(error, match=name):
      match_color(x, x, **kwargs)
  with pytest.raises(ValueError, match="reference"):
    match_color(x, x[:4])
  with pytest.raises(ValueError, match="crops"):
    match_color(np.zeros((8, 8, 2), np.float32), np.zeros((8, 8, 2),
                                                          np.float32))
  with pytest.raises(TypeError, match="crops"):
    match_color(np.zeros((8, 8, 3), np.uint8), x)


# ----------------------------------------------------------------------------
# In the paste.

H, W = 64, 80


def _scene(rng, frames=2):
  image = np.stack([_texture(rng, (H, W, 3), 0.2, 0.8) for _ in
                    range(frames)]).astype(np.float32)
  yy, xx = np.mgrid[0:40, 0:36]
  mask = np.clip(1.6 - ((yy - 20) / 15) ** 2 - ((xx - 18) / 13) ** 2, 0,
                 1).astype(np.float32)
  region = (20, 10, 56, 50)  # x1, y1, x2, y2
  return image, mask, region


def _recoloured(method, crop, rng):
  """`crop` moved by a map that `method` undoes."""
  if method == "rct":
    lab = skcolor.rgb2lab(crop.astype(np.float64))
    return skcolor.lab2rgb(lab * [0.85, 1.15, 1.1] + [7, -5, 6])
  if method == "mkl":
    m = np.array([[1.1, 0.15, 0.0], [0.15, 0.9, 0.1], [0.0, 0.1, 1.1]])
    mean = crop.mean(axis=(-3, -2), keepdims=True)
    return np.clip((crop - mean) @ m + mean + 0.06, 0, 1)
  return np.clip(crop + _smooth_field(rng, crop.shape, 0.12), 0, 1)


@pytest.mark.parametrize("method", METHODS)
def test_segs_paste_brings_a_recoloured_crop_back(method):
  # a crop cut from the frames, recoloured, pasted back with colour
  # matching: each frame's crop returns to that frame's own colours
  rng = np.random.default_rng(12)
  image, mask, (x1, y1, x2, y2) = _scene(rng)
  image[1] = np.clip(image[1] * [1.1, 0.9, 1.0], 0, 1)  # another tone
  crop = image[:, y1:y2, x1:x2]
  moved = _recoloured(method, crop, rng).astype(np.float32)
  # what the crop brought along beyond its mask's reach weighs nothing
  far = ndimage.distance_transform_edt(mask == 0) > 6
  moved[:, far] = [0.0, 1.0, 0.0]
  segs = ((H, W), [seg(moved, mask, (x1, y1, x2, y2))])
  plain = np.asarray(segs_paste(image, segs, 5))
  got = np.asarray(segs_paste(image, segs, 5, color_match=method))
  inside = (slice(None), slice(y1 + 8, y2 - 8), slice(x1 + 8, x2 - 8))
  err, before = (np.abs(a - image)[inside].mean() for a in (got, plain))
  assert err < 0.2 * before and err < 3 / 255, (err, before)
  half = np.asarray(segs_paste(image, segs, 5, color_match=method,
                               color_strength=0.5))
  assert err < np.abs(half - image)[inside].mean() < before


def test_ref_image_is_matched_to_the_image(method="mkl"):
  rng = np.random.default_rng(13)
  image, mask, region = _scene(rng, frames=1)
  ref = _recoloured(method, image, rng).astype(np.float32)
  segs = ((H, W), [seg(None, mask, region)])
  got = np.asarray(segs_paste(image, segs, 5, ref_image_opt=ref,
                              color_match=method))
  plain = np.asarray(segs_paste(image, segs, 5, ref_image_opt=ref))
  x1, y1, x2, y2 = region
  inside = (slice(None), slice(y1 + 8, y2 - 8), slice(x1 + 8, x2 - 8))
  assert (np.abs(got - image)[inside].mean()
          < 0.25 * np.abs(plain - image)[inside].mean())


def test_none_is_todays_program_bit_for_bit(compile_counter):
  rng = np.random.default_rng(14)
  image, mask, region = _scene(rng)
  crop = _texture(rng, (2, 40, 36, 3)).astype(np.float32)
  segs = ((H, W), [seg(crop, mask, region)])
  default = np.asarray(segs_paste(image, segs, 7, 200))
  before = len(compile_counter)
  for strength in (1.0, 0.3):
    same = np.asarray(segs_paste(image, segs, 7, 200, color_match="none",
                                 color_strength=strength))
    np.testing.assert_array_equal(same, default)
  assert len(compile_counter) == before  # the very same program
  packed = pack_segs(segs, image.shape)
  lower = lambda **kw: paste_lib._paste_jit.lower(
      image, packed.strip_meta(), 7, 200, None, False,
      **paste_lib.static_args("accelerator", 7),
      **paste_lib.check_color(**kw)).as_text()
  assert lower(color_match="none", color_strength=0.5) == lower(
      color_match="none", color_strength=1.0)


def test_both_forms_agree_and_one_program_serves_every_strength(
    compile_counter):
  rng = np.random.default_rng(15)
  image, mask, region = _scene(rng)
  crop = _texture(rng, (2, 40, 36, 4)).astype(np.float32)  # RGBA crop
  segs = ((H, W), [seg(crop, mask, region),
                   seg(crop[:, :20, :24], mask[:20, :24], (60, 50, 84, 70))])
  packed = pack_segs(segs, image.shape).strip_meta()
  run = paste_lib._paste_jit
  # mkl takes the CPU form's path of rct (the map applied in the colour
  # step's branch), lowfreq the other (applied in the blend)
  for method in ("lowfreq", "mkl"):
    outs = {}
    for form in (paste_lib.ACCELERATOR, cpu_lib.Form.for_feather(5)):
      before = len(compile_counter)
      for s in (0.25, 1.0):
        outs[form, s] = np.asarray(run(image, packed, 5, 255, None, False,
                                       form=form, color_match=method,
                                       color_strength=s))
      assert len(compile_counter) - before == 1, (method, form)
    for s in (0.25, 1.0):
      np.testing.assert_allclose(outs[paste_lib.ACCELERATOR, s],
                                 outs[cpu_lib.Form.for_feather(5), s],
                                 atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_float32_stays_float32_under_x64(method):
  # crops over 64 px take lowfreq's coarse grid; every constant is cast
  rng = np.random.default_rng(18)
  x = _texture(rng, (1, 150, 140, 3)).astype(np.float32)
  r = _texture(rng, (1, 150, 140, 3), 0.1, 0.9).astype(np.float32)
  with jax.enable_x64(True):
    got = match_color(x, r, method=method)
    assert got.dtype == jnp.float32, got.dtype
    wide = match_color(x.astype(np.float64), r.astype(np.float64),
                       method=method)
    assert wide.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), np.asarray(wide), atol=2e-4)


def _forms_agree(image, packed, method, reference):
  """Checks that the accelerator and CPU forms paste the same with colour
  matching, with the pasted pixels from the crops or cut from `reference`
  (every frame, or its first alone); `[(ref, CPU form's paste)]`."""
  out = []
  for ref in (None, reference, reference[:1]):
    a, b = (np.asarray(paste_lib._paste_jit(
        image, packed, 5, 255, ref, False, form=form, color_match=method,
        color_strength=0.8))
            for form in (paste_lib.ACCELERATOR, cpu_lib.Form.for_feather(5)))
    np.testing.assert_allclose(a, b, atol=1e-5)
    out.append((ref, b))
  return out


@pytest.mark.parametrize("method", METHODS)
def test_both_forms_agree_off_the_corner(method):
  # The CPU form fits the colour statistics in branches of their own; a
  # crop hanging over the image's edges (its window shifted) and a mask of
  # another size than its crop (resized) take the general branch, the
  # plain segment the corner one. The accelerator form has no branches.
  rng = np.random.default_rng(17)
  image, mask, region = _scene(rng)
  crop = _texture(rng, (2, 40, 36, 3)).astype(np.float32)
  small = np.ascontiguousarray(mask[::2, ::2])
  segs = ((H, W), [seg(crop, mask, (-6, -4, 30, 36)),
                   seg(crop, small, (W - 30, H - 36, W + 6, H + 4)),
                   seg(_recoloured(method, crop, rng).astype(np.float32),
                       mask, region)])
  packed = pack_segs(segs, image.shape).strip_meta()
  # the pasted pixels from the crops, or cut from a reference image of
  # every frame or of one (the CPU form cuts them before the colour step)
  reference = _texture(rng, image.shape, 0.2, 0.8).astype(np.float32)
  for ref, out in _forms_agree(image, packed, method, reference):
    plain = np.asarray(paste_lib._paste_jit(
        image, packed, 5, 255, ref, False, form=paste_lib.ACCELERATOR))
    for a, b in ((16, 12), (48, 68)):  # both edge segments were matched
      assert not np.allclose(out[:, a, b], plain[:, a, b], atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_both_forms_agree_with_windows_inside_a_larger_image(method):
  # An image larger than the bucket: every segment's window lies at its
  # own place (at the corner, shifted over an edge), with the pasted
  # pixels from the crops or cut from a reference image of every frame
  # or of one.
  rng = np.random.default_rng(19)
  h, w = 96, 150
  image = np.stack([_texture(rng, (h, w, 3), 0.2, 0.8)
                    for _ in range(2)]).astype(np.float32)
  yy, xx = np.mgrid[0:30, 0:26]
  mask = np.clip(1.4 - ((yy - 15) / 11) ** 2 - ((xx - 13) / 10) ** 2, 0,
                 1).astype(np.float32)
  crop = _texture(rng, (2, 30, 26, 3)).astype(np.float32)
  regions = [(40, 20, 66, 50), (-5, 70, 21, 100), (130, -8, 156, 22),
             (90, 60, 116, 90)]
  segs = ((h, w), [seg(_recoloured(method, crop, rng).astype(np.float32),
                       mask, r) for r in regions])
  packed = pack_segs(segs, image.shape, bucket_size=32).strip_meta()
  _forms_agree(image, packed, method,
               _texture(rng, image.shape, 0.1, 0.9).astype(np.float32))


@pytest.mark.parametrize("method", METHODS)
def test_accelerator_program_stays_straight_line(method):
  rng = np.random.default_rng(16)
  image, mask, region = _scene(rng)
  segs = ((H, W), [seg(image[:, 10:50, 20:56], mask, region)])
  packed = pack_segs(segs, image.shape).strip_meta()
  spec = lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype)
  fn = lambda im, p, s: paste(im, p, color_match=method, color_strength=s)
  text = jax.export.export(jax.jit(fn), platforms=["cuda"])(
      spec(image), jax.tree_util.tree_map(spec, packed),
      jax.ShapeDtypeStruct((), jnp.float32)).mlir_module()
  for op in ("stablehlo.while", "stablehlo.case", "stablehlo.if"):
    assert op not in text, op


def test_paste_bad_color_arguments():
  rng = np.random.default_rng(17)
  image, mask, region = _scene(rng, frames=1)
  segs = ((H, W), [seg(image[:, 10:50, 20:56], mask, region)])
  for kwargs, error, name in [
      (dict(color_match="hist"), ValueError, "color_match"),
      (dict(color_match=None), ValueError, "color_match"),
      (dict(color_match="rct", color_strength=1.5), ValueError,
       "color_strength"),
      (dict(color_strength=True), TypeError, "color_strength"),
      (dict(color_match="rct", color_strength=[0.5, 0.5]), ValueError,
       "color_strength")]:
    with pytest.raises(error, match=name):
      segs_paste(image, segs, **kwargs)


def test_one_segs_per_image_matches_each_image_alone():
  # the CPU form stacks the images along their rows: each window is still
  # matched to its own image
  rng = np.random.default_rng(18)
  image, mask, (x1, y1, x2, y2) = _scene(rng)
  crops = [np.clip(image[k:k + 1, y1:y2, x1:x2] * 1.2 + 0.05, 0, 1)
           for k in range(2)]
  segs = [((H, W), [seg(crops[k], mask, (x1, y1, x2, y2))]) for k in range(2)]
  both = np.asarray(segs_paste(image, segs, 5, color_match="mkl"))
  each = [np.asarray(segs_paste(image[k:k + 1], segs[k], 5,
                                color_match="mkl")) for k in range(2)]
  np.testing.assert_allclose(both, np.concatenate(each), atol=1e-6)


def test_comfy_node_and_cli_take_the_color_options():
  torch = pytest.importorskip("torch")
  from segspaste_jax import cli, comfy
  rng = np.random.default_rng(19)
  image, mask, region = _scene(rng)
  segs = ((H, W), [seg(_texture(rng, (2, 40, 36, 3)).astype(np.float32),
                       mask, region)])
  want = np.asarray(segs_paste(image, segs, 5, color_match="rct",
                               color_strength=0.5))
  got = comfy.SEGSPasteJAX().doit(torch.from_numpy(image), segs, 5,
                                  color_match="rct", color_strength=0.5)[0]
  np.testing.assert_allclose(got.numpy(), want, atol=1e-6)
  for flags in (["--color-strength", "2"], ["--color-match", "hist"]):
    assert cli.main(["demo", *flags]) == 2  # a usage error, one line
