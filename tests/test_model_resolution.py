"""The detailer at the model's resolution: `crop_segs(..., size=...)`,
`resize_to_regions`, `resize_to_model`, per-frame regions.

References are written here from the conventions, sharing no code with the
library: a float64 resampler that follows Pillow's algorithm step by step
(a window of taps per output pixel, `int()` bounds, normalised weights);
Pillow itself on 8-bit images, as the Impact Pack's detailer resizes; crops
cut by slicing a zero-padded image; `segs_paste` on SEGS built by hand.

Tolerances, and why:
- float32 against the float64 resampler: 2e-5 (float32 rounding of taps
  and sums; values in [0, 1], weights summing to 1).
- against Pillow LANCZOS on 8-bit images: 1.5 / 255 at most. Pillow
  rounds its horizontal pass to 8 bits before the vertical one and its
  result again (half a level each, the first one spread by the vertical
  taps), and uses 22-bit fixed-point weights. Images stay in [0.25, 0.75],
  where Lanczos overshoot cannot reach Pillow's clipping.
- the chain against Pillow + `segs_paste`: 4 / 255 (the hand path
  truncates to 8 bits before each of its two resizes, as the node's
  `tensor_resize` does: up to one level each, through a model whose gain
  is below 1.3, plus the rounding above).
- crop -> identity -> back, on smooth images: 0.015 where the source is
  smooth; 0.12 within 3 pixels of the image's border for regions crossing
  it (the source jumps to zero there and Lanczos rings: Gibbs, about 9%
  of the jump). Exactly equal where the region already has the model's
  size.
"""

import math
import re
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from PIL import Image

from helpers import random_regions, runtime_control_flow
from segspaste_jax._src import model_size
from segspaste_jax import (SEG, CropTransform, ModelCrops, PackedSegs,
                           crop_segs, make_packed_segs, paste,
                           resize_to_model, resize_to_regions, segs_paste)

N, H, W, C = 2, 40, 48, 3
B = 48          # bucket side
SIZE = (24, 20)  # model resolution of the reference tests (not square)
S = 5
METHODS = ("linear", "cubic", "lanczos3", "lanczos5")
_SUPPORT = {"linear": 1, "cubic": 2, "lanczos3": 3, "lanczos5": 5}


# ----------------------------------------------------------------------------
# The float64 reference: Pillow's resampling, written from its description.

def _filter(method: str, x: float) -> float:
  x = abs(x)
  if method == "linear":
    return max(0.0, 1.0 - x)
  if method == "cubic":  # Keys, a = -0.5
    a = -0.5
    if x < 1:
      return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
      return (((x - 5) * x + 8) * x - 4) * a
    return 0.0
  lobes = _SUPPORT[method]
  if x >= lobes:
    return 0.0
  sinc = lambda t: 1.0 if t == 0 else math.sin(math.pi * t) / (math.pi * t)
  return sinc(x) * sinc(x / lobes)


def _weights(n_in: int, n_out: int, method: str) -> np.ndarray:
  """`[n_out, n_in]`: for each output pixel, a window of taps around its
  centre in the input, as Pillow's coefficient precomputation does."""
  scale = n_in / n_out
  widen = max(scale, 1.0)
  support = _SUPPORT[method] * widen
  out = np.zeros((n_out, n_in))
  for i in range(n_out):
    centre = (i + 0.5) * scale
    lo = max(int(centre - support + 0.5), 0)
    hi = min(int(centre + support + 0.5), n_in)
    taps = [_filter(method, (j - centre + 0.5) / widen) for j in range(lo, hi)]
    out[i, lo:hi] = np.array(taps) / sum(taps)
  return out


def ref_resize(x: np.ndarray, h: int, w: int, method: str) -> np.ndarray:
  """`[F, h0, w0, ...]` float64 resized to `[F, h, w, ...]`."""
  rows = _weights(x.shape[1], h, method)
  cols = _weights(x.shape[2], w, method)
  return np.einsum("uj,fjl...,vl->fuv...", rows, np.asarray(x, np.float64),
                   cols)


def ref_cut(image, region, bucket=B):
  """The region's pixels, zeros off the image, cut to the bucket."""
  pad = 2 * bucket + 8
  padded = np.pad(np.asarray(image, np.float64),
                  [(0, 0), (pad, pad), (pad, pad), (0, 0)])
  x1, y1, x2, y2 = (int(v) for v in region)
  h, w = min(max(y2 - y1, 0), bucket), min(max(x2 - x1, 0), bucket)
  return padded[:, pad + y1:pad + y1 + h, pad + x1:pad + x1 + w]


def ref_content(h: int, w: int, size, fit: str):
  """`(top, left, ch, cw)` of a `h x w` region in the model's input."""
  mh, mw = size
  if h == 0 or w == 0:
    return 0, 0, 0, 0
  if fit == "stretch":
    return 0, 0, mh, mw
  s = min(Fraction(mh, h), Fraction(mw, w))
  ch = min(max(math.floor(h * s + Fraction(1, 2)), 1), mh)
  cw = min(max(math.floor(w * s + Fraction(1, 2)), 1), mw)
  return (mh - ch) // 2, (mw - cw) // 2, ch, cw


def ref_to_model(image, regions, size, fit, method):
  """`[S, N, h, w, C]` float64 and the content boxes."""
  out = np.zeros((len(regions), image.shape[0]) + tuple(size)
                 + image.shape[3:])
  boxes = []
  for s, region in enumerate(regions):
    src = ref_cut(image, region)
    top, left, ch, cw = ref_content(src.shape[1], src.shape[2], size, fit)
    boxes.append((top, left, ch, cw))
    if ch:
      out[s, :, top:top + ch, left:left + cw] = ref_resize(src, ch, cw, method)
  return out, np.array(boxes)


def _smooth_image(rng, n=N, h=H, w=W, c=C):
  """Low-frequency waves in [0.15, 0.85]."""
  yy, xx = np.mgrid[0:h, 0:w]
  freq = rng.uniform(0.05, 0.25, (2, c))
  phase = rng.uniform(0, 6, (n, c))
  waves = np.sin(yy[None, ..., None] * freq[0] + xx[None, ..., None] * freq[1]
                 + phase[:, None, None])
  return (0.5 + 0.35 * waves).astype(np.float32)


def _np(tree):
  """Results to numpy once (indexing JAX arrays would compile a slice per
  shape)."""
  return jax.tree.map(np.asarray, tree)


def _regions(rng, count=S, bucket=B):
  return random_regions(rng, count, H, W, bucket)


# ----------------------------------------------------------------------------
# To the model and back, against the float64 reference

@pytest.mark.parametrize("method, fit", [(m, "stretch") for m in METHODS]
                         + [("lanczos3", "contain"), ("cubic", "contain")])
def test_crop_to_model_size_matches_float64_reference(method, fit):
  """Regions inside, across every edge, larger than the bucket, empty."""
  for seed in range(3):
    rng = np.random.default_rng(seed)
    image = rng.random((N, H, W, C), dtype=np.float32)
    regions = _regions(rng, bucket=30)
    if seed == 0:  # shrinking too: regions larger than the model's size
      regions[:2] = [[-6, -4, 40, 30], [10, 5, 48, 40]]
    out = _np(crop_segs(image, regions, B, size=SIZE, fit=fit,
                        method=method))
    assert isinstance(out, ModelCrops)
    assert isinstance(out.transform, CropTransform)
    assert out.crops.shape == (S, N) + SIZE + (C,)
    assert out.crops.dtype == jnp.float32
    want, boxes = ref_to_model(image, regions, SIZE, fit, method)
    np.testing.assert_allclose(out.crops, want, rtol=0, atol=2e-5)
    np.testing.assert_array_equal(out.transform.content, boxes)
    sizes = [ref_cut(image, r).shape[1:3] for r in regions]
    np.testing.assert_array_equal(out.transform.sizes, sizes)
    scales = np.where(np.array(sizes) > 0,
                      boxes[:, 2:] / np.maximum(sizes, 1), 0)
    np.testing.assert_allclose(out.transform.scales, scales, rtol=1e-6)


_back = jax.jit(lambda x, t: resize_to_regions(x, t),)


@pytest.mark.parametrize("fit", ["stretch", "contain"])
def test_resize_to_regions_matches_float64_reference(fit):
  rng = np.random.default_rng(10)
  image = rng.random((N, H, W, C), dtype=np.float32)
  regions = _regions(rng, bucket=30)
  regions[:2] = [[-6, -4, 40, 30], [10, 5, 48, 40]]
  transform = _np(crop_segs(image, regions, B, size=SIZE, fit=fit).transform)
  model_out = rng.random((S, N) + SIZE + (C,), dtype=np.float32)
  got = np.asarray(_back(model_out, transform))
  assert got.shape == (S, N, B, B, C)
  for s in range(S):
    h, w = np.asarray(transform.sizes[s])
    top, left, ch, cw = np.asarray(transform.content[s])
    want = np.zeros((N, B, B, C))
    if h and w:
      want[:, :h, :w] = ref_resize(
          model_out[s, :, top:top + ch, left:left + cw], h, w, "lanczos3")
    np.testing.assert_allclose(got[s], want, rtol=0, atol=2e-5,
                               err_msg=f"segment {s}")


def test_masks_take_linear_both_ways_and_stay_in_range():
  """`[S, F, h, w]` masks: "linear" by default (no ringing), in [0, 1]."""
  rng = np.random.default_rng(11)
  regions = _regions(rng, bucket=30)
  image = np.zeros((1, H, W, C), np.float32)
  transform = _np(crop_segs(image, regions, B, size=SIZE,
                            fit="contain").transform)
  masks = (rng.random((S, 1) + SIZE) > 0.5).astype(np.float32)  # hard edges
  back = np.asarray(jax.jit(resize_to_regions)(masks, transform))
  forth = np.asarray(jax.jit(resize_to_model)(back, transform))
  assert back.shape == (S, 1, B, B) and forth.shape == (S, 1) + SIZE
  for s in range(S):
    h, w = np.asarray(transform.sizes[s])
    top, left, ch, cw = np.asarray(transform.content[s])
    want = np.zeros((1, B, B))
    want_forth = np.zeros((1,) + SIZE)
    if h and w:
      want[:, :h, :w] = ref_resize(masks[s, :, top:top + ch, left:left + cw],
                                   h, w, "linear")
      want_forth[:, top:top + ch, left:left + cw] = ref_resize(
          want[:, :h, :w], ch, cw, "linear")
    np.testing.assert_allclose(back[s], want, rtol=0, atol=2e-6)
    np.testing.assert_allclose(forth[s], want_forth, rtol=0, atol=2e-6)
  # lanczos rings on hard edges: clipped to [0, 1]
  ringing = jax.jit(lambda m, t: resize_to_regions(m, t, method="lanczos3"))(
      masks, transform)
  assert float(ringing.min()) == 0.0 and float(ringing.max()) == 1.0


@pytest.mark.slow
def test_against_pillow_lanczos_on_8_bit_images():
  """Pillow's LANCZOS (the Impact Pack's detailer) on 8-bit crops, up and
  down, within 1.5 levels of 255."""
  rng = np.random.default_rng(12)
  noise = rng.integers(64, 193, (1, H, W, C)).astype(np.uint8)
  smooth = np.round(_smooth_image(rng, n=1) * 255).astype(np.uint8)
  regions = np.array([[3, 4, 23, 20], [5, 2, 45, 38], [10, 5, 40, 30],
                      [0, 0, 48, 40], [30, 20, 37, 39]], np.int32)
  for image8 in (noise, smooth):
    image = image8.astype(np.float32) / 255
    for size in (SIZE, (40, 44)):
      out = _np(crop_segs(image, regions, B, size=size))
      for s, (x1, y1, x2, y2) in enumerate(regions):
        pil = Image.fromarray(image8[0, y1:y2, x1:x2]).resize(
            (size[1], size[0]), Image.Resampling.LANCZOS)
        want = np.asarray(pil).astype(np.float64) / 255
        np.testing.assert_allclose(out.crops[s, 0], want, rtol=0,
                                   atol=1.5 / 255, err_msg=f"{size} {s}")


# ----------------------------------------------------------------------------
# The round trip through an identity model

_IDENTITY_SIZE = (B, B)


@jax.jit
def _identity(image, regions):
  """Crop to the model's size, no model, back to the regions' sizes."""
  cut = crop_segs(image, regions, B, size=_IDENTITY_SIZE)
  return resize_to_regions(cut.crops, cut.transform), cut


@pytest.mark.slow
def test_identity_round_trip_returns_each_region():
  for seed in range(6):
    rng = np.random.default_rng(20 + seed)
    image = _smooth_image(rng)
    regions = random_regions(rng, S, H, W, 32, empty=seed % 2 == 1)
    back, _ = _np(_identity(image, regions))
    for s, region in enumerate(regions):
      want = ref_cut(image, region)
      h, w = want.shape[1:3]
      np.testing.assert_array_equal(back[s, :, h:], 0)
      np.testing.assert_array_equal(back[s, :, :, w:], 0)
      if not h * w:
        continue
      x1, y1 = region[:2]
      rows = np.arange(h)[:, None] + y1
      cols = np.arange(w)[None, :] + x1
      near = ((np.minimum(np.abs(rows), np.abs(rows - (H - 1))) <= 3)
              | (np.minimum(np.abs(cols), np.abs(cols - (W - 1))) <= 3))
      crosses = (x1 < 0 or y1 < 0 or region[2] > W or region[3] > H)
      edge = near & crosses
      err = np.abs(np.asarray(back[s, :, :h, :w]) - want).max(axis=(0, 3))
      assert err[~edge].max(initial=0) <= 0.015, (seed, s, region)
      assert err[edge].max(initial=0) <= 0.12, (seed, s, region)


def test_identity_round_trip_is_exact_where_the_scale_is_1():
  """Regions of the model's size: both resamplings are the identity, bit
  for bit, zeros off the image included."""
  rng = np.random.default_rng(30)
  image = rng.random((N, H, W, C), dtype=np.float32)  # noise: no smoothing
  regions = np.array([[0, -4, B, B - 4], [-10, -8, B - 10, B - 8],
                      [5, 0, B + 5, B], [-B - 3, 0, -3, B],
                      [W - 20, H - 20, W - 20 + B, H - 20 + B]], np.int32)
  back, cut = _np(_identity(image, regions))
  for s, region in enumerate(regions):
    want = ref_cut(image, region).astype(np.float32)
    np.testing.assert_array_equal(cut.crops[s], want)
    np.testing.assert_array_equal(back[s], want)
  np.testing.assert_array_equal(cut.transform.scales, np.ones((S, 2)))


def test_contain_places_the_content_in_the_middle():
  """An image of ones: the content box is ones (weights sum to 1), the
  rest exactly zero; the box as computed with fractions."""
  rng = np.random.default_rng(31)
  image = np.ones((1, H, W, 1), np.float32)
  sizes = [(h, w) for h, w in rng.integers(1, 40, (8, 2))] + [(10, 40),
                                                                (37, 3)]
  regions = np.array([[2, 1, 2 + w, 1 + h] for h, w in sizes], np.int32)
  regions = np.clip(regions, 0, [W, H, W, H])
  size = (32, 24)
  fn = jax.jit(lambda im, r: crop_segs(im, r, B, size=size, fit="contain"))
  out = _np(fn(image, regions))
  for s, (x1, y1, x2, y2) in enumerate(regions):
    top, left, ch, cw = ref_content(y2 - y1, x2 - x1, size, "contain")
    np.testing.assert_array_equal(out.transform.content[s],
                                  (top, left, ch, cw))
    inside = np.zeros(size, bool)
    inside[top:top + ch, left:left + cw] = True
    crop = np.asarray(out.crops[s, 0, ..., 0])
    np.testing.assert_allclose(crop[inside], 1, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(crop[~inside], 0)
    assert ch == size[0] or cw == size[1]  # one side fills the output


# ----------------------------------------------------------------------------
# The detailer chain in one jax.jit: crop -> model -> back -> pack -> paste

CHAIN_SIZE = (64, 64)
CB = 32  # the chain's bucket
HI = lax.Precision.HIGHEST


def _conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=HI)


def model(params, crops):
  """A small detailer: a colour gain and offset plus a learnt detail term
  (two 3x3 convolutions around a tanh), on `[..., h, w, C]`. With the
  parameters of `_params`, it maps [0, 1] into [0, 1] (zeros, off the
  image, included), so Pillow's 8-bit clipping in the hand path never
  acts."""
  k1, k2, gain, bias = params
  flat = crops.reshape((-1,) + crops.shape[-3:])
  detail = _conv(jnp.tanh(_conv(flat, k1)), k2)
  return (flat * gain + bias + detail).reshape(crops.shape)


def _params(rng, dtype=np.float32):
  return (0.3 * rng.standard_normal((3, 3, C, C)).astype(dtype),
          0.01 * rng.standard_normal((3, 3, C, C)).astype(dtype),
          rng.uniform(0.7, 1.1, C).astype(dtype),
          rng.uniform(0.05, 0.1, C).astype(dtype))


def detailer(image, regions, masks, params, feather, fit="stretch",
             size=CHAIN_SIZE):
  cut = crop_segs(image, regions, CB, size=size, fit=fit)
  refined = resize_to_regions(model(params, cut.crops), cut.transform)
  packed = make_packed_segs(regions, masks, refined)
  return paste(image, packed, feather=feather)


_detailer = jax.jit(detailer, static_argnames=("fit", "size"))


def _chain_problem(seed, n=N, per_frame=False):
  rng = np.random.default_rng(seed)
  image = (0.25 + 0.5 * rng.random((n, H, W, C))).astype(np.float32)
  if per_frame:
    regions = np.stack([random_regions(rng, S, H, W, CB, empty=False)
                        for _ in range(n)], axis=1)
  else:
    regions = random_regions(rng, S, H, W, CB, empty=False)
  regions[..., 2:] = np.minimum(regions[..., 2:], regions[..., :2] + CB)
  masks = rng.random((S, CB, CB), dtype=np.float32)
  return image, regions, masks, _params(rng)


def _pil_resize(x, h, w):
  """The node's `tensor_resize` for RGB: 8 bits (truncated), LANCZOS."""
  frames = [np.asarray(Image.fromarray(
      np.clip(255 * f, 0, 255).astype(np.uint8)).resize(
          (w, h), Image.Resampling.LANCZOS)) for f in np.asarray(x)]
  return np.stack(frames).astype(np.float32) / 255


@pytest.mark.slow
@pytest.mark.parametrize("fit", ["stretch", "contain"])
def test_chain_matches_pillow_by_hand_and_segs_paste(fit):
  """Each crop resized by hand with Pillow to 64 x 64 (placed in the middle
  for "contain"), the model, Pillow back to the region's size, then the
  node's `segs_paste`."""
  image, regions, masks, params = _chain_problem(40)
  got = _detailer(image, regions, masks, params, 5, fit=fit)
  segs = []
  for s, region in enumerate(regions):
    src = ref_cut(image, region, CB).astype(np.float32)
    h, w = src.shape[1:3]
    top, left, ch, cw = ref_content(h, w, CHAIN_SIZE, fit)
    canvas = np.zeros((N,) + CHAIN_SIZE + (C,), np.float32)
    canvas[:, top:top + ch, left:left + cw] = _pil_resize(src, ch, cw)
    refined = np.asarray(model(params, canvas))
    crop = _pil_resize(refined[:, top:top + ch, left:left + cw], h, w)
    segs.append(SEG(crop, masks[s, :h, :w], 0.9,
                    tuple(int(v) for v in region),
                    tuple(int(v) for v in region), "face"))
  want = segs_paste(image, ((H, W), segs), feather=5)
  np.testing.assert_allclose(got, want, rtol=0, atol=4 / 255)
  assert float(jnp.mean(jnp.abs(got - want))) < 0.5 / 255  # no bias
  # the model's edit shows
  assert float(jnp.max(jnp.abs(got - image))) > 0.05


@pytest.mark.slow
def test_chain_compiles_once_for_20_layouts(compile_counter):
  """Regions inside, across the edges, off the image, empty and larger
  than the bucket, feathers 0..19: one program."""
  image, _, masks, params = _chain_problem(41)
  rng = np.random.default_rng(42)
  layouts = [random_regions(rng, S, H, W, CB + 8) for _ in range(20)]
  fresh = jax.jit(lambda *args: detailer(*args))  # nothing cached yet
  compile_counter.clear()
  outs = [np.asarray(fresh(image, r, masks, params, k))
          for k, r in enumerate(layouts)]
  assert len(compile_counter) == 1
  assert len({o.tobytes() for o in outs}) == 20  # every layout pasted


def _exported_text(platform: str, per_frame: bool) -> str:
  image, regions, masks, params = _chain_problem(43, per_frame=per_frame)
  spec = lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
  args = jax.tree.map(spec, (image, regions, masks, params))
  exported = jax.export.export(jax.jit(detailer), platforms=[platform])(
      *args, jax.ShapeDtypeStruct((), jnp.int32))
  return exported.mlir_module()


def test_runtime_control_flow_is_found():
  # the check above can fail: a loop, a branch on a value, a case on one
  loop = jax.jit(lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2, x))
  branch = jax.jit(lambda x: lax.cond(x[0] > 0, jnp.sin, jnp.cos, x))
  pick = jax.jit(lambda i, x: lax.switch(i, [jnp.sin, jnp.cos, jnp.tan], x))
  x = jax.ShapeDtypeStruct((3,), jnp.float32)
  for fn, args in ((loop, (x,)), (branch, (x,)),
                   (pick, (jax.ShapeDtypeStruct((), jnp.int32), x))):
    text = jax.export.export(fn, platforms=["cuda"])(*args).mlir_module()
    assert runtime_control_flow(text), fn
  plain = jax.export.export(jax.jit(jnp.sin), platforms=["cuda"])(x)
  assert not runtime_control_flow(plain.mlir_module())


@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize("platform", ["cuda", "tpu"])
def test_chain_lowers_to_straight_line_code(platform, per_frame):
  text = _exported_text(platform, per_frame)
  assert not runtime_control_flow(text)
  dots = re.findall(r"stablehlo\.dot_general.*", text)
  assert dots and all("HIGHEST" in d for d in dots)


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


_GRAD_SIZE = (16, 16)


def _loss(params, image, regions, masks, weights):
  out = detailer(image, regions, masks, params, 3, size=_GRAD_SIZE)
  return jnp.sum(weights * out) + 0.5 * jnp.sum(out ** 2)


@pytest.mark.slow
def test_grad_wrt_model_parameters_matches_finite_differences(x64):
  image, regions, masks, params = _chain_problem(44, n=1)
  image, masks = image.astype(np.float64), masks.astype(np.float64)
  params = tuple(p.astype(np.float64) for p in params)
  rng = np.random.default_rng(45)
  weights = rng.standard_normal(image.shape)
  fixed = (image, regions, masks, weights)
  value_and_grad = jax.jit(jax.value_and_grad(_loss))
  _, grads = value_and_grad(params, *fixed)
  assert all(g.dtype == jnp.float64 for g in grads)
  loss = lambda p: value_and_grad(p, *fixed)[0]
  eps = 1e-5
  directions = [jax.tree.map(lambda p: rng.standard_normal(p.shape), params)
                for _ in range(3)]
  for k in range(C):  # each gain and bias on its own
    for which in (2, 3):
      d = jax.tree.map(np.zeros_like, params)
      d[which][k] = 1.0
      directions.append(d)
  for d in directions:
    step = lambda t, d=d: jax.tree.map(lambda p, v: p + t * v, params, d)
    numeric = (loss(step(eps)) - loss(step(-eps))) / (2 * eps)
    analytic = sum(jnp.vdot(g, u) for g, u in zip(grads, d))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
  assert all(float(jnp.abs(g).max()) > 1e-3 for g in grads)


# ----------------------------------------------------------------------------
# Per-frame regions

def test_per_frame_crop_equals_each_frame_alone():
  rng = np.random.default_rng(50)
  n = 3
  image = rng.random((n, H, W, C), dtype=np.float32)
  regions = np.stack([random_regions(rng, S, H, W, 32) for _ in range(n)], 1)
  cut = _np(crop_segs(image, regions, B))
  model_cut = _np(crop_segs(image, regions, B, size=SIZE, fit="contain"))
  assert cut.sizes.shape == (S, n, 2) and cut.visible.shape == (S, n, 4)
  assert model_cut.transform.per_frame
  for f in range(n):
    alone = _np(crop_segs(image[f:f + 1], regions[:, f], B))
    np.testing.assert_array_equal(cut.crops[:, f], alone.crops[:, 0])
    np.testing.assert_array_equal(cut.sizes[:, f], alone.sizes)
    np.testing.assert_array_equal(cut.visible[:, f], alone.visible)
    alone = _np(crop_segs(image[f:f + 1], regions[:, f], B, size=SIZE,
                          fit="contain"))
    np.testing.assert_allclose(model_cut.crops[:, f], alone.crops[:, 0],
                               rtol=0, atol=1e-6)  # batched differently
    for field in ("sizes", "content", "scales"):
      np.testing.assert_array_equal(
          getattr(model_cut.transform, field)[:, f],
          getattr(alone.transform, field))


@pytest.mark.slow
def test_per_frame_chain_equals_each_frame_alone():
  """Crop, model, back, pack and paste with `[S, N, 4]` regions in one
  program (and the same packed SEGS pasted outside `jit`: the CPU form)
  against the same chain run on every frame alone with its own `[S, 4]`
  regions."""
  n = 3
  image, regions, _, params = _chain_problem(51, n=n, per_frame=True)
  masks = np.random.default_rng(52).random((S, n, CB, CB)).astype(np.float32)
  got = _detailer(image, regions, masks, params, 4)
  alone = np.concatenate([
      _detailer(image[f:f + 1], regions[:, f], masks[:, f], params, 4)
      for f in range(n)])
  np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)
  assert float(jnp.max(jnp.abs(got - image))) > 0.05

  @jax.jit
  def packed_segs(image, regions, masks, params):
    cut = crop_segs(image, regions, CB, size=CHAIN_SIZE)
    refined = resize_to_regions(model(params, cut.crops), cut.transform)
    return make_packed_segs(regions, masks, refined)

  cpu_form = paste(image, packed_segs(image, regions, masks, params),
                   feather=4)
  np.testing.assert_allclose(cpu_form, alone, rtol=0, atol=1e-6)


def test_make_packed_segs_per_frame_form():
  n = 3
  rng = np.random.default_rng(53)
  regions = np.stack([random_regions(rng, S, H, W, 32, empty=False)
                      for _ in range(n)], 1)
  masks = rng.random((S, n, B, B), dtype=np.float32)
  crops = rng.random((S, 1, B, B, C), dtype=np.float32)
  valid = rng.random((S, n)) > 0.3
  p = _np(make_packed_segs(regions, masks, crops, valid=valid,
                           crop_sizes=np.full((S, 2), 7), labels=("a", "b")))
  assert isinstance(p, PackedSegs) and p.per_image
  assert p.masks.shape == (n, S, 1, B, B)
  assert p.crops.shape == (n, S, 1, B, B, C)
  assert p.bucket == (S, B) and p.num_segments == 2 * n
  for f in range(n):
    alone = _np(make_packed_segs(regions[:, f], masks[:, f:f + 1], crops,
                                 valid=valid[:, f],
                                 crop_sizes=np.full((S, 2), 7),
                                 labels=("a", "b")))
    for field in PackedSegs._fields[:-1]:
      np.testing.assert_array_equal(getattr(p, field)[f],
                                    getattr(alone, field), err_msg=field)
    assert p.meta.per_image[f] == alone.meta


# ----------------------------------------------------------------------------
# Bad arguments

_IM = np.zeros((N, H, W, C), np.float32)
_RG = np.zeros((3, 4), np.int32)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"size": (24,)}, TypeError, "^size: expected two Python ints"),
    ({"size": 24}, TypeError, "^size: expected two Python ints"),
    ({"size": (24.0, 24)}, TypeError, "^size: expected a Python int"),
    ({"size": (0, 24)}, ValueError, "^size: expected"),
    ({"size": (1 << 25, 8)}, ValueError, "^size: .* too large"),
    ({"size": (24, 24), "fit": "cover"}, ValueError, "^fit: expected one of"),
    ({"size": (24, 24), "method": "nearest"}, ValueError,
     "^method: expected one of"),
    ({"fit": "contain"}, ValueError, "^fit: only used with size"),
    ({"method": "linear"}, ValueError, "^method: only used with size"),
    ({"regions": np.zeros((3, N + 1, 4), np.int32)}, ValueError,
     r"^regions: expected \[S, N, 4\] with N = 2"),
    ({"regions": np.zeros((3, N, 5), np.int32)}, ValueError,
     r"^regions: expected shape \[S, 4\] or \[S, N, 4\]"),
])
def test_crop_segs_rejects_bad_model_arguments(kwargs, error, match):
  regions = kwargs.pop("regions", _RG)
  with pytest.raises(error, match=match):
    crop_segs(_IM, regions, B, **kwargs)


def test_size_must_be_static():
  with pytest.raises(TypeError, match="^size: expected a Python int"):
    jax.jit(lambda h: crop_segs(_IM, _RG, B, size=(h, 8)))(8)


_T = crop_segs(_IM, _RG, B, size=SIZE).transform
_TF = crop_segs(_IM, np.zeros((3, N, 4), np.int32), B, size=SIZE).transform


@pytest.mark.parametrize("fn, args, kwargs, error, match", [
    (resize_to_regions, (np.zeros((3, N, B, B, C)), _T), {}, ValueError,
     r"^x: expected \[3, F, 24, 20, C\] \(pixels\) or \[3, F, 24, 20\]"),
    (resize_to_regions, (np.zeros((2, N) + SIZE + (C,)), _T), {}, ValueError,
     "^x: expected"),
    (resize_to_regions, (np.zeros((3,) + SIZE),), {"transform": _T},
     ValueError, "^x: expected"),
    (resize_to_regions, (np.zeros((3, 3) + SIZE), _TF), {}, ValueError,
     "^x: expected .* with F 1 or 2"),
    (resize_to_regions, (np.zeros((3, N) + SIZE, bool), _T), {}, TypeError,
     "^x: expected a floating or integer"),
    (resize_to_regions, (np.zeros((3, N) + SIZE), "t"), {}, TypeError,
     "^transform: expected a CropTransform"),
    (resize_to_regions, (np.zeros((3, N) + SIZE), _T), {"method": "box"},
     ValueError, "^method: expected one of"),
    (resize_to_model, (np.zeros((3, N) + SIZE + (C,)), _T), {}, ValueError,
     r"^x: expected \[3, F, 48, 48, C\]"),
    (make_packed_segs, (np.zeros((3, N, 4), np.int32),
                        np.zeros((3, N + 1, B, B))), {}, ValueError,
     r"^masks: expected \[S, B, B\], \[S, 1, B, B\] or \[S, N, B, B\]"),
    (make_packed_segs, (np.zeros((3, 3, 4), np.int32), np.zeros((3, B, B)),
                        np.zeros((3, 2, B, B, C))), {}, ValueError,
     "^crops: expected .* Fc 1 or at least N = 3"),
    (make_packed_segs, (np.zeros((3, N, 4), np.int32), np.zeros((3, B, B))),
     {"valid": np.ones((3, N + 1), bool)}, ValueError,
     r"^valid: expected shape \(3,\) or \(3, 2\)"),
    (make_packed_segs, (np.zeros((3, N, 4), np.int32), np.zeros((3, B, B))),
     {"crop_sizes": np.ones((3, 1, 2), np.int32)}, ValueError,
     r"^crop_sizes: expected shape \(3, 2\) or \(3, 2, 2\)"),
])
def test_model_size_functions_reject_bad_arguments(fn, args, kwargs, error,
                                                   match):
  with pytest.raises(error, match=match):
    fn(*args, **kwargs)


# ----------------------------------------------------------------------------
# Banded resampling: tiles of a few taps instead of whole-axis matrices

def _forms(x, transform, to_model, method, tile=8):
  """The dense and the banded (tiles of `tile`) forms of one resampling,
  and the banded plan (which must not fall back to dense)."""
  side = x.shape[2:4]
  core = model_size._resample_core
  dense = core(x, transform, method=method, to_model=to_model, form="dense")
  band = core(x, transform, method=method, to_model=to_model, form="band",
              tile=tile)
  steps = model_size.plan(transform, method, to_model, side, "band", tile)
  return np.asarray(dense), np.asarray(band), [s[0] for s in steps]


@pytest.mark.slow
@pytest.mark.parametrize("method, fit, size", [
    ("lanczos3", "contain", (80, 72)), ("cubic", "stretch", (24, 20))])
def test_banded_form_equals_dense_form_and_the_reference(method, fit, size):
  """Random regions (inside, across the edges, empty), up and down: the
  banded forms within 1e-6 of the dense one and within 2e-5 of the
  float64 resampler."""
  rng = np.random.default_rng(60)
  image = rng.random((N, H, W, C), dtype=np.float32)
  regions = _regions(rng, count=6, bucket=40)
  regions[..., 2:] = np.minimum(regions[..., 2:], regions[..., :2] + B)
  cut = _np(crop_segs(image, regions, B, size=size, fit=fit))
  native = _np(crop_segs(image, regions, B)).crops
  dense, band, forms = _forms(native, cut.transform, True, method)
  assert forms == ["band", "band"], forms
  np.testing.assert_allclose(band, dense, rtol=0, atol=1e-6)
  want, _ = ref_to_model(image, regions, size, fit, method)
  np.testing.assert_allclose(band, want, rtol=0, atol=2e-5)
  model_out = rng.random((6, N) + size + (C,), dtype=np.float32)
  dense, band, forms = _forms(model_out, cut.transform, False, method)
  assert forms == ["spread", "spread"], forms
  np.testing.assert_allclose(band, dense, rtol=0, atol=1e-6)
  for s in range(6):
    h, w = cut.transform.sizes[s]
    top, left, ch, cw = cut.transform.content[s]
    want = np.zeros((N, B, B, C))
    if h and w:
      want[:, :h, :w] = ref_resize(
          model_out[s, :, top:top + ch, left:left + cw], h, w, method)
    np.testing.assert_allclose(band[s], want, rtol=0, atol=2e-5)


@pytest.mark.slow
def test_banded_form_with_per_frame_regions():
  """`[S, N, 4]` regions (one transform per segment and frame), and a
  model output given once for every frame: banded equals dense."""
  rng = np.random.default_rng(63)
  image = rng.random((N, H, W, C), dtype=np.float32)
  regions = np.stack([_regions(rng, count=3, bucket=40) for _ in range(N)],
                     axis=1)
  regions[..., 2:] = np.minimum(regions[..., 2:], regions[..., :2] + B)
  size = (80, 72)
  cut = _np(crop_segs(image, regions, B, size=size, fit="contain"))
  native = _np(crop_segs(image, regions, B)).crops
  dense, band, forms = _forms(native, cut.transform, True, "lanczos3")
  assert forms == ["band", "band"] and band.shape == (3, N) + size + (C,)
  np.testing.assert_allclose(band, dense, rtol=0, atol=1e-6)
  model_out = rng.random((3, 1) + size, dtype=np.float32)  # masks, F = 1
  dense, band, forms = _forms(model_out, cut.transform, False, "linear")
  assert forms == ["spread", "spread"] and band.shape == (3, N, B, B)
  np.testing.assert_allclose(band, dense, rtol=0, atol=1e-6)
  assert band.max() > 0.5


@pytest.mark.parametrize("per_frame", [False, True])
def test_a_crop_at_a_time_equals_all_at_once(per_frame):
  """The CPU form (a loop over crops) and the accelerator form (every crop
  at once) of both directions give the same values: pixels and masks, a
  model output given once for every frame (F = 1) included."""
  rng = np.random.default_rng(64)
  image = rng.random((N, H, W, C), dtype=np.float32)
  regions = _regions(rng, count=3, bucket=40)
  if per_frame:
    regions = np.stack([_regions(rng, count=3, bucket=40)
                        for _ in range(N)], axis=1)
  regions[..., 2:] = np.minimum(regions[..., 2:], regions[..., :2] + B)
  size = (48, 40)
  cut = _np(crop_segs(image, regions, B, size=size, fit="contain"))
  native = _np(crop_segs(image, regions, B)).crops
  cases = [(native, True, "lanczos3"),
           (rng.random((3, N) + size + (C,), dtype=np.float32), False,
            "lanczos3"),
           (rng.random((3, 1) + size, dtype=np.float32), False, "linear"),
           (rng.random((3, N, B, B), dtype=np.float32), True, "linear")]
  for x, to_model, method in cases:
    banded = model_size.plan(cut.transform, method, to_model, x.shape[2:4],
                             "band", 8)
    assert all(step[0] in ("band", "spread") for step in banded)
    for form in (None, "band"):  # the plan's (dense here) and the banded
      each, every = (np.asarray(model_size._resample_core(
          x, cut.transform, method=method, to_model=to_model, form=form,
          tile=8, loop=loop)) for loop in (True, False))
      assert each.shape == every.shape
      np.testing.assert_allclose(each, every, rtol=0, atol=1e-6)
  # crop_segs(size=...) on CPU arrays takes the loop: the same crops
  np.testing.assert_allclose(cut.crops, np.asarray(model_size.resample(
      native, cut.transform, "lanczos3", True, loop=False)), atol=1e-6)


def test_the_cpu_loops_over_crops_and_the_accelerators_do_not():
  # on any machine: arrays placed on its CPU, programs exported for each
  image = jax.device_put(np.zeros((2, 64, 64, 3), np.float32),
                         jax.devices("cpu")[0])
  regions = np.asarray([[0, 0, 30, 20], [10, 5, 50, 40]], np.int32)
  assert model_size.loop_for(image) is True
  on_cpu = jax.default_backend() == "cpu"
  assert model_size.loop_for(np.zeros(3)) is on_cpu  # the default device's
  seen = []
  jax.jit(lambda x: seen.append(model_size.loop_for(x)) or x)(image)
  assert seen == [None]  # traced: chosen per platform when compiled
  chain = jax.jit(lambda im, r: resize_to_regions(
      *crop_segs(im, r, 48, size=(32, 32))))
  text = {p: jax.export.export(chain, platforms=[p])(
      image, regions).mlir_module() for p in ("cpu", "cuda")}
  assert "stablehlo.while" in text["cpu"]
  assert not runtime_control_flow(text["cuda"])


def test_the_form_follows_the_sizes():
  """Dense where the window covers the axis or barely less; banded for
  W2's shapes (a 320 bucket to 512 and back); the window bounds the
  stretch of every region (a thin region in a contain fit included)."""
  t = model_size.make_transform(jnp.zeros((1, 2), jnp.int32), 320,
                                (512, 512), "contain")
  assert [s[0] for s in model_size.plan(t, "lanczos3", True,
                                        (320, 320))] == ["band", "band"]
  assert [s[0] for s in model_size.plan(t, "lanczos3", False,
                                        (512, 512))] == ["spread", "spread"]
  t = _np(crop_segs(_IM, _RG, B, size=SIZE).transform)
  assert [s[0] for s in model_size.plan(t, "lanczos3", True, (B, B))] == [
      "dense", "dense"]
  # the largest stretch, by brute force over every region the bucket holds
  for bucket, size in ((20, (7, 5)), (16, (40, 3)), (12, (12, 12))):
    worst = [1.0, 1.0]
    for eh in range(1, bucket + 1):
      for ew in range(1, bucket + 1):
        for fit in ("stretch", "contain"):
          _, _, ch, cw = ref_content(eh, ew, size, fit)
          worst = [max(worst[0], eh / ch), max(worst[1], ew / cw)]
    bound = model_size.max_stretch(bucket, size)
    assert all(b >= w for b, w in zip(bound, worst)), (bound, worst)


@pytest.mark.slow
@pytest.mark.parametrize("side", [500, 1000])
def test_scale_1_passes_through_bit_for_bit_at_any_size(side):
  """A region of the model's size, one frame of noise: crop -> model size
  -> back is the identity bit for bit, in the form the size picks and in
  the dense form (tap offsets counted in integers, not divided)."""
  rng = np.random.default_rng(side)
  h, w = side, side - 7
  image = rng.random((1, h + 6, w + 4, 1), dtype=np.float32)
  regions = np.array([[3, 2, 3 + w, 2 + h]], np.int32)
  cut = _np(crop_segs(image, regions, side, size=(h, w)))
  want = image[:, 2:2 + h, 3:3 + w]
  np.testing.assert_array_equal(cut.crops[0], want)
  np.testing.assert_array_equal(cut.transform.scales, [[1, 1]])
  back = np.asarray(resize_to_regions(cut.crops, cut.transform))
  np.testing.assert_array_equal(back[0, :, :h, :w], want)
  if side == 500:
    native = _np(crop_segs(image, regions, side)).crops
    dense, _, _ = _forms(native, cut.transform, True, "lanczos3")
    np.testing.assert_array_equal(dense[0], want)


def test_regions_larger_than_the_bucket_are_refused_on_the_way_to_a_model():
  """Concrete regions: a clear error naming the segment (and frame); the
  plain cut still takes them (cut to B x B, as documented)."""
  image = np.zeros((N, H, W, C), np.float32)
  regions = np.array([[0, 0, 10, 10], [2, 3, 2 + B + 1, 13]], np.int32)
  with pytest.raises(ValueError, match=r"^regions\[1\]: a 10 x 49 region "
                     "does not fit bucket_size 48"):
    crop_segs(image, regions, B, size=SIZE)
  per_frame = np.stack([regions[:1], regions[1:]], axis=1)  # [1, N, 4]
  per_frame = np.concatenate([per_frame, per_frame])
  with pytest.raises(ValueError, match=r"^regions\[0, 1\]: a 10 x 49"):
    crop_segs(image, per_frame, B, size=SIZE)
  assert crop_segs(image, regions, B).crops.shape == (2, N, B, B, C)
  ok = regions.copy()
  ok[1, 2] = 2 + B  # exactly the bucket: accepted
  assert crop_segs(image, ok, B, size=SIZE).crops.shape == (2, N) + SIZE + (C,)


@pytest.mark.parametrize("fn", [resize_to_regions, resize_to_model])
def test_integer_masks_are_refused(fn):
  """A uint8 mask of 128 would saturate to 1.0: refused, naming the
  conversion; integer pixels keep their value scale."""
  side = SIZE if fn is resize_to_regions else (B, B)
  masks = np.full((3, N) + side, 128, np.uint8)
  with pytest.raises(TypeError, match=r"^x: masks .* must be floating.*"
                     r"got dtype uint8 \(convert 8-bit masks with x / 255"):
    fn(masks, _T)
  with pytest.raises(TypeError, match="got dtype int32"):
    fn(masks.astype(np.int32), _T)
  regions = np.array([[0, 0, 10, 12]] * 3, np.int32)
  transform = crop_segs(_IM, regions, B, size=SIZE).transform
  pixels = np.full((3, N) + side + (C,), 128, np.uint8)
  got = np.asarray(fn(pixels, transform))
  np.testing.assert_allclose(got.max(), 128, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(fn(masks / 255, transform)).max(),
                             128 / 255, rtol=1e-6)


def test_banded_program_compiles_once_for_many_layouts(compile_counter):
  rng = np.random.default_rng(62)
  image = rng.random((1, H, W, C), dtype=np.float32)
  fresh = jax.jit(lambda x, r: model_size._resample_core(
      crop_segs(x, r, B).crops, crop_segs(x, r, B, size=(80, 72)).transform,
      method="lanczos3", to_model=True, form="band", tile=8))
  compile_counter.clear()
  outs = []
  for _ in range(8):
    regions = _regions(rng, count=4, bucket=40)
    outs.append(np.asarray(fresh(image, regions)).tobytes())
  assert len(compile_counter) == 1
  assert len(set(outs)) == 8


def test_banded_round_trip_lowers_to_straight_line_code():
  """W2's form (band in, spread back) exported for CUDA: gathers, scatters
  and matrix products at full precision, no loop or branch."""
  b, size = 128, (256, 256)

  def chain(image, regions, masks):
    cut = crop_segs(image, regions, b, size=size, fit="contain")
    back = resize_to_regions(cut.crops, cut.transform)
    return paste(image, make_packed_segs(regions, masks, back), feather=5)

  steps = model_size.plan(
      model_size.make_transform(jnp.zeros((1, 2), jnp.int32), b, size,
                                "contain"), "lanczos3", True, (b, b))
  assert [s[0] for s in steps] == ["band", "band"]
  spec = (jax.ShapeDtypeStruct((1, 160, 160, 3), jnp.float32),
          jax.ShapeDtypeStruct((2, 4), jnp.int32),
          jax.ShapeDtypeStruct((2, b, b), jnp.float32))
  text = jax.export.export(jax.jit(chain), platforms=["cuda"])(
      *spec).mlir_module()
  assert not runtime_control_flow(text)
  assert "stablehlo.gather" in text
  dots = re.findall(r"stablehlo\.dot_general.*", text)
  assert dots and all("HIGHEST" in d for d in dots)
