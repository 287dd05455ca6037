"""Properties of `segs_paste` over the whole input space, with hypothesis.

The scenes cover 1-3 frames of 8-64 pixels a side, 1/3/4 channels, float16,
float32 and float64 images, 0-4 segments whose regions overhang any edge or
miss the image, crops and masks of their region's size or not, 2-D, 3-D,
per-frame and mismatched-batch masks, scale matching, `ref_image_opt`,
feather 0-100, alpha 0-255, numpy and torch fields mixed. Nearly every
example is a new shape and so a new compile: the default "ci" profile
(tests/conftest.py) runs a few dozen; `HYPOTHESIS_PROFILE=long` runs 500.
"""

import dataclasses

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

from helpers import bits  # noqa: E402
import reference  # noqa: E402
from segspaste_jax import SEG, segs_paste  # noqa: E402

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

try:
  import torch
except ImportError:
  torch = None

# float16 images are blended in float32 and rounded back after every segment
TOLERANCE = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-5}


@dataclasses.dataclass
class Scene:
  image: object           # numpy or torch [N, H, W, C]
  segs: tuple
  feather: int
  alpha: int
  ref_image_opt: object   # None, numpy or torch
  footprint: np.ndarray   # [N, H, W] bool: the pixels a paste may touch
  dtype: type

  def kwargs(self):
    return dict(feather=self.feather, alpha=self.alpha,
                ref_image_opt=self.ref_image_opt)


def _as(draw, array):
  """numpy, or (when torch is there) a torch tensor, as hypothesis picks."""
  if torch is not None and draw(st.booleans()):
    return torch.from_numpy(np.ascontiguousarray(array))
  return array


def _mask(rng, values, shape):
  if values == "random":
    return rng.random(shape).astype(np.float32)
  if values == "binary":
    return (rng.random(shape) > 0.5).astype(np.float32)
  return np.full(shape, 1.0 if values == "ones" else 0.0, np.float32)


@st.composite
def scenes(draw):
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  n = draw(st.integers(1, 3))
  c = draw(st.sampled_from([3, 1, 4]))
  dtype = draw(st.sampled_from([np.float32, np.float16, np.float64]))
  scale = draw(st.sampled_from([1, 2]))  # 2: SEGS detected at half size
  h0, w0 = (draw(st.integers(8 // scale, 64 // scale)) for _ in "hw")
  h, w = h0 * scale, w0 * scale
  size = (h0, w0) if scale == 2 else draw(st.sampled_from([(h, w), (0, 0)]))
  image = rng.random((n, h, w, c)).astype(dtype)
  use_ref = draw(st.booleans())
  ref = None
  if use_ref:
    ref = rng.random((draw(st.sampled_from([n, 1, n + 1])), h, w, c))
    ref = _as(draw, ref.astype(np.float32))

  footprint = np.zeros((n, h, w), bool)
  items = []
  for _ in range(draw(st.integers(0, 4))):
    rh, rw = draw(st.integers(1, h0 + 4)), draw(st.integers(1, w0 + 4))
    y1 = draw(st.integers(-rh - 1, h0 + 1))
    x1 = draw(st.integers(-rw - 1, w0 + 1))
    region = (x1, y1, x1 + rw, y1 + rh)
    crop_hw = (rh, rw)
    if draw(st.booleans()):  # a crop of another size than its region
      crop_hw = (draw(st.integers(1, rh + 6)), draw(st.integers(1, rw + 6)))
    crop = None
    if draw(st.sampled_from([True, True, True, False])):
      frames = draw(st.sampled_from([n, 1, n + 1]))
      crop = _as(draw, rng.random((frames, *crop_hw, c)).astype(np.float32))
    mask_hw = crop_hw
    if draw(st.booleans()):  # a mask of another size than its crop
      mask_hw = (draw(st.integers(1, rh + 6)), draw(st.integers(1, rw + 6)))
    kind = draw(st.sampled_from(["2d", "single", "per frame", "batch"]))
    frames = {"2d": 0, "single": 1, "per frame": n,
              "batch": draw(st.sampled_from([m for m in (2, 3, 4) if m != n]))
              }[kind]
    values = draw(st.sampled_from(["random", "binary", "ones", "zeros"]))
    mask = _mask(rng, values, (frames, *mask_hw) if frames else mask_hw)
    form = draw(st.sampled_from([tuple, list, np.array]))
    items.append(SEG(crop, _as(draw, mask), 0.5, form(region), region, "face"))

    # where this SEG may paste: its ref extent, in image coordinates
    if scale == 2:  # scale match: region doubled, crop resized to it
      region = tuple(2 * v for v in region)
      crop_hw = (2 * rh, 2 * rw)
    x1, y1, x2, y2 = region
    if ref is None and crop is not None:
      y2, x2 = y1 + crop_hw[0], x1 + crop_hw[1]
    if ref is not None or crop is not None:
      footprint[:, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True

  image = _as(draw, image)
  return Scene(image, (size, items), draw(st.integers(0, 100)),
               draw(st.integers(0, 255)), ref, footprint, dtype)


# ----------------------------------------------------------------------------

def _arrays(scene):
  yield scene.image
  if scene.ref_image_opt is not None:
    yield scene.ref_image_opt
  for seg in scene.segs[1]:
    if seg.cropped_image is not None:
      yield seg.cropped_image
    yield seg.cropped_mask
    if isinstance(seg.crop_region, np.ndarray):
      yield seg.crop_region


def _numpy(a):
  return a.detach().numpy() if torch is not None and isinstance(
      a, torch.Tensor) else np.asarray(a)


def _snapshot(scene):
  return [_numpy(a).tobytes() for a in _arrays(scene)]


def _unchanged_outside(got, image, outside):
  """`got` equals the image (in the output's dtype) bit for bit there."""
  image = _numpy(image).astype(got.dtype)
  np.testing.assert_array_equal(bits(got)[outside], bits(image)[outside])


@given(scenes())
def test_matches_reference_and_touches_nothing_else(scene):
  before = _snapshot(scene)
  got = np.asarray(segs_paste(scene.image, scene.segs, **scene.kwargs()))

  # the caller's arrays, numpy and torch, are unchanged
  assert _snapshot(scene) == before
  assert got.shape == tuple(scene.image.shape)
  # the float64 reference, within the image dtype's rounding
  expected = reference.segs_paste(scene.image, scene.segs, **scene.kwargs())
  np.testing.assert_allclose(got, expected, rtol=0,
                             atol=TOLERANCE[scene.dtype])
  # outside every SEG's pasted extent: the input, bit for bit
  _unchanged_outside(got, scene.image, ~scene.footprint)


@given(scenes(), st.sampled_from(["alpha 0", "zero masks", "both"]))
def test_alpha_zero_or_empty_masks_change_nothing(scene, how):
  if how != "zero masks":
    scene.alpha = 0
  if how != "alpha 0":
    zero = lambda m: m * 0  # same type, shape and dtype; never in place
    scene.segs = scene.segs[0], [
        seg._replace(cropped_mask=zero(seg.cropped_mask))
        for seg in scene.segs[1]]
  before = _snapshot(scene)
  got = np.asarray(segs_paste(scene.image, scene.segs, **scene.kwargs()))
  assert _snapshot(scene) == before
  _unchanged_outside(got, scene.image, np.ones(got.shape[:3], bool))
