"""Aligned faces against references written here, in float64 numpy/scipy.

- `similarity_from_landmarks` against a float64 linear least-squares fit of
  `(a, b, tx, ty)` (and scikit-image's Umeyama estimate as a cross-check).
- `crop_aligned` against `scipy.ndimage.map_coordinates(order=1,
  mode="grid-constant")` at float64 positions `A^-1 (x', y')` (and
  `cv2.warpAffine`, which rounds positions to 1/32 pixel).
- `paste_aligned` against a whole-image float64 reference: every image
  pixel mapped into the crop, inside the crop's quad or not, the crop and
  the weight sampled bilinearly (clamped to the pixel centres), blended face
  after face. The weight's reference is the box paste's relative ramp
  (`helpers.relative_reference`, shared with test_relative) with zeros
  past the crop.
- facexlib's paste-back steps re-run with OpenCV, the round trip, edges,
  compile counts, gradients, the accelerator lowerings and bad inputs.

Positions differ by float32 rounding (about 1e-5 pixel at these sizes), so
pixels of random noise (slopes up to 1 per pixel) agree to about 1e-4.
"""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage, special

from helpers import relative_reference
from segspaste_jax import (FACE_TEMPLATES, aligned_window, crop_aligned,
                           paste_aligned, similarity_from_landmarks)

N, H, W, C = 2, 40, 52, 3
CROP = (16, 18)  # (h, w)
RAMP = 2 * special.ndtri(0.9)  # a Gaussian ramp's 10 %-90 % width / sigma


def _matrix(rng, size=CROP, scale=(0.5, 1.6), centre=None):
  """A random image-to-crop similarity: the crop's centre lands on
  `centre` (default: anywhere in the image, edges included)."""
  h, w = size
  theta = rng.uniform(-np.pi, np.pi)
  s = rng.uniform(*scale)
  r = s * np.array([[np.cos(theta), -np.sin(theta)],
                    [np.sin(theta), np.cos(theta)]])
  if centre is None:
    centre = rng.uniform([-4, -4], [W + 4, H + 4])
  t = np.array([(w - 1) / 2, (h - 1) / 2]) - r @ centre
  return np.concatenate([r, t[:, None]], axis=1)


def _inv(m):
  m = np.asarray(m, np.float64)
  lin = np.linalg.inv(m[:2, :2])
  return np.concatenate([lin, -(lin @ m[:, 2])[:, None]], axis=1)


# ----------------------------------------------------------------- similarity


def _lstsq_similarity(p, q):
  """float64: x' = a x - b y + tx, y' = b x + a y + ty, least squares."""
  k = len(p)
  rows = np.zeros((2 * k, 4))
  rows[0::2] = np.stack([p[:, 0], -p[:, 1], np.ones(k), np.zeros(k)], 1)
  rows[1::2] = np.stack([p[:, 1], p[:, 0], np.zeros(k), np.ones(k)], 1)
  (a, b, tx, ty), *_ = np.linalg.lstsq(rows, q.reshape(-1), rcond=None)
  return np.array([[a, -b, tx], [b, a, ty]])


def test_similarity_matches_a_float64_least_squares_fit():
  rng = np.random.default_rng(0)
  template = FACE_TEMPLATES["ffhq_512"]
  points = np.empty((3, 4, 5, 2))
  for i in np.ndindex(3, 4):
    m = _inv(_matrix(rng, (512, 512), scale=(0.3, 3), centre=rng.uniform(
        0, 1000, 2)))
    points[i] = template @ m[:, :2].T + m[:, 2] + rng.normal(0, 3, (5, 2))
  got = np.asarray(similarity_from_landmarks(points, template))
  assert got.shape == (3, 4, 2, 3) and got.dtype == np.float32
  for i in np.ndindex(3, 4):
    want = _lstsq_similarity(points[i], template.astype(np.float64))
    # translations of ~1e3 in float32: 1e-4 relative
    np.testing.assert_allclose(got[i][:, :2], want[:, :2], rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(got[i][:, 2], want[:, 2], rtol=1e-4, atol=2e-3)
  # scikit-image's Umeyama estimate, the same fit
  skimage_transform = pytest.importorskip("skimage.transform")
  similarity = skimage_transform.SimilarityTransform
  if hasattr(similarity, "from_estimate"):  # scikit-image >= 0.26
    tf = similarity.from_estimate(points[1, 2], template)
  else:
    tf = similarity()
    tf.estimate(points[1, 2], template)
  np.testing.assert_allclose(got[1, 2], tf.params[:2], rtol=1e-4, atol=2e-3)
  # noise-free points: the transform itself, and the template exactly
  m = _matrix(rng, (112, 112), centre=np.array([300.0, 200.0]))
  arc = FACE_TEMPLATES["arcface_112"].astype(np.float64)
  exact = (arc - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
  got = np.asarray(similarity_from_landmarks(exact, arc))
  np.testing.assert_allclose(got, m, rtol=1e-4, atol=2e-3)


def test_similarity_of_degenerate_points():
  template = FACE_TEMPLATES["arcface_112"]
  points = np.tile([[10.0, 20.0]], (2, 5, 1))
  points[0] += np.arange(10).reshape(5, 2)  # set 0 fine, set 1 all equal
  with pytest.raises(ValueError, match=r"points: .*index \(1,\).*all equal"):
    similarity_from_landmarks(points, template)
  with pytest.raises(ValueError, match="template: .*all equal"):
    similarity_from_landmarks(points[0], np.zeros((5, 2)))
  # traced: a finite matrix with a zero linear part
  got = np.asarray(jax.jit(similarity_from_landmarks)(points, template))
  assert np.isfinite(got).all() and (got[1, :, :2] == 0).all()
  with pytest.raises(ValueError, match="points: expected \\[..., 5, 2\\]"):
    similarity_from_landmarks(points[:, :4], template)
  with pytest.raises(ValueError, match="points: .*finite"):
    similarity_from_landmarks(points * np.nan, template)


def test_templates():
  arc, ffhq = FACE_TEMPLATES["arcface_112"], FACE_TEMPLATES["ffhq_512"]
  assert arc.shape == ffhq.shape == (5, 2) and arc.dtype == np.float32
  np.testing.assert_allclose(arc[0], [38.2946, 51.6963])
  np.testing.assert_allclose(ffhq[4], [313.08905, 371.15118])
  with pytest.raises((TypeError, ValueError)):
    arc[0, 0] = 0  # read-only


# ----------------------------------------------------------------- crop


def _crop_reference(frame, m, size, k=1):
  """float64 map_coordinates at A^-1 of each crop pixel (k x k samples)."""
  h, w = size
  inv = _inv(m)
  off = (np.arange(k) + 0.5) / k - 0.5
  ys = (np.arange(h)[:, None] + off[None, :]).reshape(-1)
  xs = (np.arange(w)[:, None] + off[None, :]).reshape(-1)
  yy, xx = np.meshgrid(ys, xs, indexing="ij")
  x = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
  y = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
  out = np.stack([ndimage.map_coordinates(
      frame[..., c].astype(np.float64), [y, x], order=1,
      mode="grid-constant", cval=0) for c in range(frame.shape[-1])], -1)
  return out.reshape(h, k, w, k, -1).mean(axis=(1, 3))


@pytest.mark.parametrize("per_frame", [False, True])
def test_crop_matches_map_coordinates(per_frame):
  rng = np.random.default_rng(1 + per_frame)
  image = rng.random((N, H, W, C)).astype(np.float32)
  m = _faces(rng, 3, per_frame)
  got = np.asarray(crop_aligned(image, m, size=CROP))
  assert got.shape == (3, N) + CROP + (C,) and got.dtype == np.float32
  for s, n in np.ndindex(3, N):
    want = _crop_reference(image[n], m[s, n] if per_frame else m[s], CROP)
    np.testing.assert_allclose(got[s, n], want, atol=1e-4)
  # cv2.warpAffine, which quantises positions to 1/32 px: a smooth image
  smooth = ndimage.gaussian_filter(image, (0, 3, 3, 0)).astype(np.float32)
  got = np.asarray(crop_aligned(smooth, m, size=CROP))
  one = m[0, 1] if per_frame else m[0]
  want = cv2.warpAffine(smooth[1], one, CROP[::-1], flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  np.testing.assert_allclose(got[0, 1], want, atol=3e-3)


def test_crop_supersampled_is_the_mean_of_k_by_k_samples():
  rng = np.random.default_rng(3)
  image = rng.random((1, H, W, C)).astype(np.float32)
  # a face about 3 times the crop's size: the case that aliases
  m = np.stack([_matrix(rng, scale=(0.3, 0.35), centre=np.array([26., 20.]))
                for _ in range(2)])
  got = np.asarray(crop_aligned(image, m, size=CROP, supersample=3))
  for s in range(2):
    want = _crop_reference(image[0], m[s], CROP, k=3)
    np.testing.assert_allclose(got[s, 0], want, atol=1e-4)
  # antialiased: much closer to the image blurred by a crop pixel's width
  # than one sample per pixel is
  blurred = ndimage.uniform_filter(image[0].astype(np.float64),
                                   (3, 3, 1), mode="constant")
  target = _crop_reference(blurred, m[0], CROP)
  plain = np.asarray(crop_aligned(image, m[:1], size=CROP))[0, 0]
  inner = (slice(3, -3), slice(3, -3))
  assert (np.abs(got[0, 0] - target)[inner].mean()
          < 0.5 * np.abs(plain - target)[inner].mean())


# ----------------------------------------------------------------- paste


def _weights_reference(mask, feather, grow):
  """float64: the mask feathered relative to its size, the box paste's
  relative ramp with zeros past the crop (see `helpers`)."""
  return relative_reference(mask, feather, grow, outside="zero")


def _sample_clamped(img, x, y):
  h, w = img.shape[:2]
  x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
  x0 = np.clip(np.floor(x), 0, w - 2).astype(int)
  y0 = np.clip(np.floor(y), 0, h - 2).astype(int)
  fx, fy = x - x0, y - y0
  if img.ndim == 3:
    fx, fy = fx[..., None], fy[..., None]
  return ((1 - fy) * ((1 - fx) * img[y0, x0] + fx * img[y0, x0 + 1])
          + fy * ((1 - fx) * img[y0 + 1, x0] + fx * img[y0 + 1, x0 + 1]))


def _paste_reference(image, crops, m, masks=None, feather=4.0, grow=-5.0,
                     alpha=255):
  """float64 over the whole image; also returns where a pixel is within
  1e-3 px of some quad's border (float32 may place it on the other side)."""
  out = image.astype(np.float64).copy()
  n, hh, ww, _ = image.shape
  s, _, h, w, _ = crops.shape
  yy, xx = np.mgrid[:hh, :ww].astype(np.float64)
  unsure = np.zeros((n, hh, ww), bool)
  for i in range(s):
    for f in range(n):
      a = m[i, f] if m.ndim == 4 else m[i]
      x = a[0, 0] * xx + a[0, 1] * yy + a[0, 2]
      y = a[1, 0] * xx + a[1, 1] * yy + a[1, 2]
      inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
      near = np.minimum(np.minimum(np.abs(x + 0.5), np.abs(x - w + 0.5)),
                        np.minimum(np.abs(y + 0.5), np.abs(y - h + 0.5)))
      unsure[f] |= near < 1e-3
      mask = np.ones((h, w)) if masks is None else masks[i, min(
          f, masks.shape[1] - 1)]
      wt = _weights_reference(mask, feather, grow) * alpha / 255
      crop = crops[i, min(f, crops.shape[1] - 1)].astype(np.float64)
      k = np.where(inside, _sample_clamped(wt, x, y), 0)[..., None]
      out[f] = (1 - k) * out[f] + k * _sample_clamped(crop, x, y)
  return out, unsure


def _faces(rng, count, per_frame, **kw):
  shape = (count, N) if per_frame else (count,)
  return np.stack([_matrix(rng, **kw) for _ in range(np.prod(shape))]
                  ).reshape(shape + (2, 3)).astype(np.float32)


# The paste tests share shapes (S faces, crops and masks per frame, the
# whole frame as the window) so that they share two compiled programs.
S = 3


def _paste(image, crops, m, masks, **kw):
  return np.asarray(paste_aligned(image, crops, m, masks=masks,
                                  window=(H, W), **kw))


def _ones(count=S):
  return np.ones((count, N) + CROP, np.float32)


@pytest.mark.parametrize("per_frame", [False, True])
def test_paste_matches_the_reference(per_frame):
  """Three overlapping faces (later on top), some across the frame's edge,
  a soft mask per frame, feathered and grown; then the defaults."""
  rng = np.random.default_rng(10 + per_frame)
  image = rng.random((N, H, W, C)).astype(np.float32)
  m = _faces(rng, S, per_frame,
             centre=None if per_frame else rng.uniform([0, 0], [W, H]))
  m[1] = _faces(rng, 1, per_frame, centre=np.array([2.0, H - 3.0]))[0]
  crops = rng.random((S, N) + CROP + (C,)).astype(np.float32)
  masks = ndimage.gaussian_filter(
      (rng.random((S, N) + CROP) > 0.3).astype(np.float32), (0, 0, 1, 1))
  got = _paste(image, crops, m, masks, feather=20.0, grow=7.5, alpha=230)
  want, unsure = _paste_reference(image, crops, m, masks, 20.0, 7.5, 230)
  keep = ~unsure[..., None].repeat(C, -1)
  np.testing.assert_allclose(got[keep], want[keep], atol=2e-4)
  if per_frame:  # under jit the accelerator form: windows by a vmap
    traced = jax.jit(lambda im: paste_aligned(
        im, crops, m, masks=masks, feather=20.0, grow=7.5, alpha=230,
        window=(H, W)))(image)
    np.testing.assert_allclose(np.asarray(traced)[keep], want[keep],
                               atol=2e-4)
  # the defaults: facexlib's edge, whole crops
  got = _paste(image, crops, m, _ones())
  want, unsure = _paste_reference(image, crops, m)
  keep = ~unsure[..., None].repeat(C, -1)
  np.testing.assert_allclose(got[keep], want[keep], atol=2e-4)


def test_hard_edge_has_no_fringe_and_leaves_the_rest_bit_for_bit():
  rng = np.random.default_rng(20)
  image = rng.random((N, H, W, C)).astype(np.float32)
  m = _faces(rng, S, True, scale=(0.4, 0.9))
  crops = np.ones((S, N) + CROP + (C,), np.float32)
  got = _paste(image, crops, m, _ones(), feather=0, grow=0)
  want, unsure = _paste_reference(image, crops, m, feather=0, grow=0)
  inside = want == 1  # a crop of ones: 1 exactly inside some quad
  sure = ~unsure[..., None].repeat(C, -1)
  assert inside[sure].any() and (~inside[sure]).any()
  assert (got[inside & sure] == 1).all()  # no fringe, exactly the crop
  outside = ~inside & sure
  assert (got[outside].view(np.uint32)
          == image[outside].view(np.uint32)).all()


def test_soft_edge_is_zero_on_the_warped_border():
  """For every feather > 0 (and any grow) the outer half pixel of the
  crop's quad gets weight 0: the paste fades to the image before the quad
  ends, no seam; the hard edge (feather 0) does not. (Faces 1 and 2 have
  empty masks: they paste nothing.)"""
  rng = np.random.default_rng(21)
  image = np.zeros((N, H, W, C), np.float32)
  m = _faces(rng, S, False, scale=(0.5, 0.8),
             centre=np.array([W / 2, H / 2]))
  crops = np.ones((S, N) + CROP + (C,), np.float32)
  masks = _ones() * np.array([1, 0, 0])[:, None, None, None]
  h, w = CROP
  yy, xx = np.mgrid[:H, :W]
  x = m[0, 0, 0] * xx + m[0, 0, 1] * yy + m[0, 0, 2]
  y = m[0, 1, 0] * xx + m[0, 1, 1] * yy + m[0, 1, 2]
  rim = (((x > -0.49) & (x < -0.01)) | ((x > w - 0.99) & (x < w - 0.51))
         | ((y > -0.49) & (y < -0.01)) | ((y > h - 0.99) & (y < h - 0.51)))
  rim &= (x > -0.49) & (x < w - 0.51) & (y > -0.49) & (y < h - 0.51)
  assert rim.sum() > 10
  for feather, grow in [(0.5, 0), (4, -5), (10, 30), (40, 100)]:
    got = _paste(image, crops, m, masks, feather=feather, grow=grow)
    assert np.abs(got[:, rim]).max() == 0, (feather, grow)
    assert got.max() > 0.9
  hard = _paste(image, crops, m, masks, feather=0, grow=0)
  assert (hard[:, rim] == 1).all()


def test_weights_ramp_width_and_level_relative_to_the_face():
  """A straight edge far from the others: 10 %-90 % width = feather % and
  the 50 % level moved by grow %, of sqrt(area); two face sizes (the masks'
  areas differ by 4 x), one per frame."""
  side = 96
  mask = np.zeros((1, 2, side, side), np.float32)
  mask[:, :, side // 4:] = 1  # an edge between rows side/4 - 1 and side/4
  mask[:, 1, :, side // 4:] = 0  # frame 1: a quarter of the width
  image = np.zeros((2, side, side, 1), np.float32)
  crops = np.ones((1, 1, side, side, 1), np.float32)
  eye = np.array([[[1.0, 0, 0], [0, 1, 0]]], np.float32)
  sqrt_area = np.sqrt(mask.sum(axis=(2, 3)))[0]
  assert sqrt_area[0] > 1.9 * sqrt_area[1]
  for feather, grow in [(10, 0), (10, 5), (6, -4)]:
    out = np.asarray(paste_aligned(image, crops, eye, masks=mask,
                                   feather=feather, grow=grow))
    for f, column in ((0, side // 2), (1, side // 8)):  # mid-edge
      col = out[f, :side // 2 + 10, column, 0].astype(np.float64)
      at = lambda level, col=col: np.interp(level, col, np.arange(col.size))
      edge = side // 4 - 0.5
      # (read off by linear interpolation between pixels: 0.3 px)
      ramp = at(0.9) - at(0.1)
      assert abs(ramp - feather / 100 * sqrt_area[f]) < 0.3, (f, ramp)
      assert abs((edge - at(0.5)) - grow / 100 * sqrt_area[f]) < 0.2


def test_whole_crop_weights_are_those_of_a_mask_of_ones():
  """masks=None takes a separable shortcut; it must equal the general
  feathering of a mask of ones (whichever implementation that is)."""
  from segspaste_jax._src import aligned as aligned_lib
  size = (37, 24)
  general = jax.jit(lambda f, g: aligned_lib._crop_weights(
      jnp.ones((1,) + size), size, f, g)[0])
  whole = jax.jit(lambda f, g: aligned_lib._whole_crop_weights(size, f, g))
  for feather, grow in [(4, -5), (0, 0), (20, 7.5), (40, 100), (9, -60)]:
    np.testing.assert_allclose(whole(feather, grow), general(feather, grow),
                               atol=1e-6)


def test_facexlib_paste_back():
  """facexlib's `paste_faces_to_input_image` (upscale 1, no parsing),
  re-run here with OpenCV on one synthetic restored face (a smooth pattern
  in [0.5, 1], rotated, on a background of 0): the inverse affine,
  warpAffine of the face and of a mask of ones, erode 2 x 2, the face times
  that mask, w_edge = int(sqrt(area)) // 20, erode 2 w_edge, GaussianBlur
  (2 w_edge + 1), blend; compared in float, before its cast to uint8.

  Ours at the setting that matches it: a Gaussian ramp of OpenCV's sigma,
  0.3 (w_edge - 1) + 0.8, and grow = -w_edge (|cos t| + |sin t|) for a face
  rotated by t (an axis-aligned square erosion moves a rotated edge in by
  that much), both in per cent of sqrt(area). What cannot match: its even
  erosion kernels move the top and left edges in 1 px more than the bottom
  and right ones, and square erosion cuts corners. So: the same face
  pixels where its weight is 1, the same total weight (within 1.5 %), and
  on the edge differences of up to ~0.4 (a 1 px shift of a ramp of sigma
  2.1 px, at a corner), 0.15 at the 90th percentile."""
  rng = np.random.default_rng(30)
  size, hh, ww = 64, 224, 240
  yy, xx = np.mgrid[:size, :size] / size
  face = np.stack([0.75 + 0.25 * np.sin(6 * xx + 3 * yy),
                   0.75 + 0.25 * np.cos(5 * yy), 0.5 + 0.5 * xx * yy], -1)
  face = face.astype(np.float32)
  a = _matrix(rng, (size, size), scale=(0.5, 0.55),
              centre=np.array([120.0, 112.0])).astype(np.float32)
  # facexlib, step by step (float32, as it runs)
  inverse = cv2.invertAffineTransform(a)
  inv_face = cv2.warpAffine(face, inverse, (ww, hh))
  inv_mask = cv2.warpAffine(np.ones((size, size, 3), np.float32), inverse,
                            (ww, hh))
  inv_mask_erosion = cv2.erode(inv_mask, np.ones((2, 2), np.uint8))
  face_no_border = inv_mask_erosion * inv_face
  area = np.sum(inv_mask_erosion) // 3
  w_edge = int(area ** 0.5) // 20
  center = cv2.erode(inv_mask_erosion,
                     np.ones((2 * w_edge, 2 * w_edge), np.uint8))
  soft = cv2.GaussianBlur(center, (2 * w_edge + 1, 2 * w_edge + 1), 0)
  background = np.zeros((hh, ww, 3), np.float32)
  facexlib = soft * face_no_border + (1 - soft) * background
  # ours, at the matching setting
  side = np.sqrt(area)
  theta = np.arctan2(a[1, 0], a[0, 0])
  feather = 100 * RAMP * (0.3 * (w_edge - 1) + 0.8) / side
  grow = -100 * w_edge * (abs(np.cos(theta)) + abs(np.sin(theta))) / side
  ours = np.asarray(paste_aligned(background[None], face[None, None],
                                  a[None], feather=feather, grow=grow))[0]
  assert w_edge >= 5 and abs(np.sin(4 * theta)) > 0.3  # well rotated
  core = ndimage.binary_erosion(soft[..., 0] > 0.999, iterations=3)
  assert core.sum() > 5000
  assert np.abs(ours - facexlib)[core].max() < 2e-3
  assert abs(ours.sum() / facexlib.sum() - 1) < 0.015
  diff = np.abs(ours - facexlib)
  edge = (soft[..., 0] > 1e-3) & (soft[..., 0] < 0.999)
  assert diff.max() < 0.45 and np.percentile(diff[edge], 90) < 0.15
  # the default (feather 4, grow -5) is this edge for an upright face
  default = np.asarray(paste_aligned(background[None], face[None, None],
                                     a[None]))[0]
  assert abs(default.sum() / facexlib.sum() - 1) < 0.05


def test_round_trip_returns_the_image_inside_the_face():
  rng = np.random.default_rng(40)
  image = ndimage.gaussian_filter(rng.random((N, H, W, C)),
                                  (0, 4, 4, 0)).astype(np.float32)
  # scale 2, no rotation, integer offset: every sample on a pixel centre,
  # the round trip is exact
  m = np.array([[[2.0, 0, -20], [0, 2.0, -12]]] * 3, np.float32)
  crops = crop_aligned(image, m, size=CROP)
  back = _paste(image * 0, crops, m, _ones(), feather=0, grow=0)
  region = (slice(None), slice(6, 14), slice(10, 19))
  np.testing.assert_allclose(back[region], image[region], atol=1e-6)
  # rotated faces of a smooth image: two bilinear interpolations' error
  m = _faces(rng, S, True, scale=(1.2, 1.6), centre=np.array([26., 20.]))
  crops = crop_aligned(image, m, size=CROP)
  back = _paste(image * 0, crops, m, _ones(), feather=0, grow=0)
  inner = (slice(None), slice(17, 24), slice(23, 30))
  np.testing.assert_allclose(back[inner], image[inner], atol=5e-3)
  assert np.abs(back[inner] - image[inner]).mean() < 1e-3


def test_integer_frames_and_window_cut_to_the_image():
  rng = np.random.default_rng(41)
  image = (rng.random((1, H, W, C)) * 255).astype(np.uint8)
  m = _faces(rng, 1, False, scale=(0.1, 0.12), centre=np.array([26., 20.]))
  crops = np.full((1, 1) + CROP + (C,), 200.0, np.float32)
  assert aligned_window(m, CROP, (H, W)) == (H, W)  # bigger than the frame
  got = np.asarray(paste_aligned(image, crops, m, feather=0, grow=0))
  assert got.dtype == np.uint8 and (got == 200).all()


# ----------------------------------------------------------------- programs


def test_one_program_for_many_matrix_sets(compile_counter):
  rng = np.random.default_rng(50)
  image = jnp.asarray(rng.random((N, H, W, C)), jnp.float32)
  crops = jnp.asarray(rng.random((S, N) + CROP + (C,)), jnp.float32)
  # faces of 34 to 45 px: every host-computed window is (64, 64) cut to
  # the frame, (40, 52)
  sets = [_faces(rng, S, True, scale=(0.4, 0.5)) for _ in range(4)]
  window = (H, W)
  crop_aligned(image, sets[0], size=CROP).block_until_ready()
  paste_aligned(image, crops, sets[0], window=window).block_until_ready()
  paste_aligned(image, crops, sets[0], feather=9.0).block_until_ready()
  before = len(compile_counter)
  for i, m in enumerate(sets[1:]):
    crop_aligned(image, m, size=CROP).block_until_ready()
    paste_aligned(image, crops, m, window=window, feather=i + 1.5,
                  grow=-i, alpha=100 + i).block_until_ready()
    paste_aligned(image, crops, m).block_until_ready()
  assert len(compile_counter) == before


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_accelerator_lowering_is_straight_line(platform):
  f32 = jnp.float32
  spec = jax.ShapeDtypeStruct

  def fn(image, matrices, shared, feather, grow):
    crops = crop_aligned(image, matrices, size=CROP) * 0.5
    out = paste_aligned(image, crops, matrices, feather=feather, grow=grow,
                        window=(30, 30))
    return paste_aligned(out, crops[:, :1], shared, window=(30, 30))

  args = (spec((N, H, W, C), f32), spec((3, N, 2, 3), f32),
          spec((3, 2, 3), f32), spec((), f32), spec((), f32))
  text = jax.export.export(jax.jit(fn), platforms=[platform])(
      *args).mlir_module()
  for op in ("stablehlo.while", "stablehlo.case", "stablehlo.if"):
    assert op not in text, op
  assert text.count("dynamic_update_slice") + text.count("scatter") >= 6


@pytest.mark.slow  # compiles the paste's gradient: seconds
def test_gradients_match_finite_differences():
  """jax.grad (float32) against central differences of the float64
  references, for crops, matrices (paste) and matrices (crop)."""
  rng = np.random.default_rng(60)
  h, w = 8, 9
  image = rng.random((1, 20, 22, 2))
  crops = rng.random((2, 1, h, w, 2))
  m = np.stack([_matrix(rng, (h, w), scale=(0.7, 0.9),
                        centre=rng.uniform([7, 7], [15, 15]))
                for _ in range(2)])
  weights = rng.random(image.shape)

  window = aligned_window(m, (h, w), image.shape[1:3])

  def ours(crops, m):  # traced matrices: the window is given
    out = paste_aligned(image, crops, m, feather=30.0, grow=-5.0,
                        window=window)
    return jnp.sum(out * weights)

  def theirs(crops, m):
    return np.sum(_paste_reference(image, crops, m, feather=30.0,
                                   grow=-5.0)[0] * weights)

  g_crops, g_m = jax.grad(ours, argnums=(0, 1))(crops, m)
  eps = 1e-6
  for _ in range(3):
    d = rng.normal(size=crops.shape)
    fd = (theirs(crops + eps * d, m) - theirs(crops - eps * d, m)) / (2 * eps)
    np.testing.assert_allclose(np.sum(np.asarray(g_crops) * d), fd,
                               rtol=1e-4)
    d = rng.normal(size=m.shape) * np.array([0.01, 0.01, 1])
    fd = (theirs(crops, m + eps * d) - theirs(crops, m - eps * d)) / (2 * eps)
    np.testing.assert_allclose(np.sum(np.asarray(g_m) * d), fd, rtol=2e-3)

  def ours_crop(m):
    return jnp.sum(crop_aligned(image, m, size=(h, w)) * crops[:, :1])

  def theirs_crop(m):
    return sum(np.sum(_crop_reference(image[0], m[s], (h, w)) * crops[s, 0])
               for s in range(2))

  g = np.asarray(jax.grad(ours_crop)(m))
  for _ in range(3):
    d = rng.normal(size=m.shape) * np.array([0.01, 0.01, 1])
    fd = (theirs_crop(m + eps * d) - theirs_crop(m - eps * d)) / (2 * eps)
    np.testing.assert_allclose(np.sum(g * d), fd, rtol=2e-3)


# ----------------------------------------------------------------- errors


def test_bad_inputs_are_named():
  rng = np.random.default_rng(70)
  image = rng.random((N, H, W, C)).astype(np.float32)
  crops = rng.random((S, N) + CROP + (C,)).astype(np.float32)
  m = _faces(rng, S, False, scale=(0.9, 1.0))
  singular = m.copy()
  singular[1, :, :2] = [[1, 2], [2, 4]]
  cases = [
      (lambda: crop_aligned(image, singular, size=CROP),
       ValueError, r"matrices: matrix \(1,\) is singular"),
      (lambda: paste_aligned(image, crops, singular),
       ValueError, r"matrices: matrix \(1,\) is singular"),
      (lambda: crop_aligned(image, m[:, None].repeat(3, 1), size=CROP),
       ValueError, "matrices: expected .* N = 2"),
      (lambda: crop_aligned(image[0], m, size=CROP),
       ValueError, r"image: expected \[N, H, W, C\]"),
      (lambda: crop_aligned(image, m, size=16), TypeError, "size: "),
      (lambda: crop_aligned(image, m, size=CROP, supersample=0),
       ValueError, "supersample: "),
      (lambda: paste_aligned(image, crops[:1], m),
       ValueError, "matrices: expected one per crop"),
      (lambda: paste_aligned(image, crops[..., :2], m),
       ValueError, "crops: expected 3 channels"),
      (lambda: paste_aligned(image, (crops * 255).astype(np.uint8), m),
       TypeError, "crops: expected a floating array"),
      (lambda: paste_aligned(image, crops, m, masks=np.ones((S, 5, 5))),
       ValueError, "masks: expected"),
      (lambda: paste_aligned(image, crops, m, feather=-1),
       ValueError, "feather: expected >= 0"),
      (lambda: paste_aligned(image, crops, m, grow=101),
       ValueError, "grow: expected -100..100"),
      (lambda: paste_aligned(image, crops, m, alpha=300),
       ValueError, "alpha: expected 0..255"),
      (lambda: paste_aligned(image, crops, m, window=(8, 8)),
       ValueError, r"window: \(8, 8\) is too small for face 0"),
      (lambda: jax.jit(lambda mm: paste_aligned(image, crops, mm))(m),
       ValueError, "window: traced matrices need a static window"),
  ]
  for call, error, message in cases:
    with pytest.raises(error, match=message):
      call()
  # under jit with a window, traced matrices run
  traced = jax.jit(lambda mm: paste_aligned(image, crops, mm, masks=_ones(),
                                            window=(H, W)))
  np.testing.assert_allclose(traced(m), _paste(image, crops, m, _ones()),
                             atol=1e-6)
