"""Bad input to `segs_paste` and `pack_segs`: a clear error, or a defined no-op.

Every entry of `CATALOGUE` must raise `TypeError` (wrong kind of thing) or
`ValueError` (right kind, wrong shape or value) whose message starts with the
argument's name (`image:`, `segs[1][3].cropped_mask:`, ...), before any JAX
work and without modifying the caller's numpy or torch arrays. The tests
after the catalogue pin the inputs that are not errors: regions partly or
wholly outside the image, NaN in the image, masks within rounding of [0, 1].
"""

import dataclasses
import math
import re
from collections.abc import Callable

import numpy as np
import pytest

from helpers import bits
import reference
from segspaste_jax import SEG, pack_segs, segs_paste
from segspaste_jax._src import api, arrays, validate

try:
  import torch
except ImportError:  # the torch entries are skipped then
  torch = None

N, H, W, C = 2, 24, 32, 3
FEATHER = 3


def _rng(seed=0):
  return np.random.default_rng(seed)


def _image(n=N, h=H, w=W, c=C, dtype=np.float32, seed=0):
  return _rng(seed).random((n, h, w, c)).astype(dtype)


_DEFAULT = object()


def _seg(region=(4, 3, 14, 11), crop=_DEFAULT, mask=_DEFAULT, frames=N,
         channels=C, seed=1, **fields):
  """A valid SEG whose crop and mask fit `region`; fields override."""
  rng = _rng(seed)
  x1, y1, x2, y2 = region
  h, w = y2 - y1, x2 - x1
  if crop is _DEFAULT:
    crop = rng.random((frames, h, w, channels)).astype(np.float32)
  if mask is _DEFAULT:
    mask = rng.random((h, w)).astype(np.float32)
  values = dict(cropped_image=crop, cropped_mask=mask, confidence=0.75,
                crop_region=region, bbox=region, label="face")
  values.update(fields)
  return SEG(**values)


def _segs(bad=_DEFAULT, at=1, count=4, size=(H, W), **seg_kwargs):
  """`count` valid SEGs with `bad` (a SEG or anything else) at index `at`."""
  items = [_seg(seed=10 + i, **seg_kwargs) for i in range(count)]
  if bad is not _DEFAULT:
    items[at] = bad
  return size, items


def _torch(x):
  return torch.from_numpy(np.ascontiguousarray(x))


@dataclasses.dataclass
class Bad:
  """One bad call: `make()` returns `(function, args, kwargs)`."""
  id: str
  error: type
  name: str  # the message starts with this, then ":"
  make: Callable
  needs_torch: bool = False


def paste_call(image=None, segs=None, **kwargs):
  image = _image() if image is None else image
  segs = _segs() if segs is None else segs
  return segs_paste, (image, segs), kwargs


def seg_call(at=1, image=None, **fields):
  """`segs_paste` with SEG `at` given `fields` (crop, mask, region, ...)."""
  return paste_call(image=image, segs=_segs(_seg(**fields), at=at))


def field_call(field, value, at=1, **kwargs):
  """`segs_paste` with one field of SEG `at` replaced by `value` as is."""
  bad = _seg(seed=3)._replace(**{field: value})
  return paste_call(segs=_segs(bad, at=at), **kwargs)


def pack_call(segs=None, image_shape=(N, H, W, C), **kwargs):
  return pack_segs, (_segs() if segs is None else segs, image_shape), kwargs


class _SomeFields:
  """An object with only some of a SEG's attributes."""

  def __init__(self):
    self.cropped_image = _image(h=8, w=10)
    self.cropped_mask = np.ones((8, 10), np.float32)
    self.crop_region = (4, 3, 14, 11)


def _mask(value, shape=(8, 10), dtype=np.float32):
  return np.full(shape, value, dtype)


R = (4, 3, 14, 11)  # a 10 x 8 region
CROP_SHAPE = (N, 8, 10, C)

CATALOGUE = [
    # ---- image: rank, channels, size, dtype, kind
    Bad("image rank 3", ValueError, "image",
        lambda: paste_call(image=_image()[0])),
    Bad("image rank 5", ValueError, "image",
        lambda: paste_call(image=_image()[None])),
    Bad("image rank 3 torch", ValueError, "image",
        lambda: paste_call(image=_torch(_image()[0])), True),
    Bad("image 0 channels", ValueError, "image",
        lambda: paste_call(image=np.zeros((N, H, W, 0), np.float32))),
    Bad("image 2 channels", ValueError, "image",
        lambda: paste_call(image=_image(c=2))),
    Bad("image 5 channels", ValueError, "image",
        lambda: paste_call(image=_image(c=5))),
    Bad("image N=0", ValueError, "image",
        lambda: paste_call(image=np.zeros((0, H, W, C), np.float32))),
    Bad("image H=0", ValueError, "image",
        lambda: paste_call(image=np.zeros((N, 0, W, C), np.float32))),
    Bad("image W=0", ValueError, "image",
        lambda: paste_call(image=np.zeros((N, H, 0, C), np.float32))),
    # float images, and uint8 ones, are the contract; other integers are not
    Bad("image uint16", TypeError, "image",
        lambda: paste_call(image=(_image() * 65535).astype(np.uint16))),
    Bad("image int64", TypeError, "image",
        lambda: paste_call(image=(_image() * 255).astype(np.int64))),
    Bad("image int32 torch", TypeError, "image",
        lambda: paste_call(image=torch.zeros((N, H, W, C), dtype=torch.int32)),
        True),
    Bad("image bool", TypeError, "image",
        lambda: paste_call(image=np.zeros((N, H, W, C), bool))),
    Bad("image complex", TypeError, "image",
        lambda: paste_call(image=_image().astype(np.complex64))),
    Bad("image object", TypeError, "image",
        lambda: paste_call(image=_image().astype(object))),
    Bad("image strings", TypeError, "image",
        lambda: paste_call(image=np.full((N, H, W, C), "0.5"))),
    Bad("image nested list", TypeError, "image",
        lambda: paste_call(image=_image(h=2, w=2).tolist())),
    Bad("image None", TypeError, "image",
        lambda: (segs_paste, (None, _segs()), {})),

    # ---- ref_image_opt
    Bad("ref 2 frames for 3", ValueError, "ref_image_opt",
        lambda: paste_call(image=_image(n=3), segs=_segs(frames=3),
                           ref_image_opt=_image(n=2))),
    Bad("ref other H", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=_image(h=H + 1))),
    Bad("ref other W", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=_image(w=W // 2))),
    Bad("ref 1 channel for RGB", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=_image(c=1))),
    Bad("ref RGB for 1 channel", ValueError, "ref_image_opt",
        lambda: paste_call(image=_image(c=1), segs=_segs(channels=1),
                           ref_image_opt=_image(c=3))),
    Bad("ref rank 3", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=_image()[0])),
    Bad("ref 0 frames", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=_image(n=0))),
    Bad("ref int", TypeError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=np.zeros((N, H, W, C), np.int32))),
    Bad("ref list", TypeError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=[[0.5]])),
    Bad("ref NaN", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=np.where(
            _image() > 0.99, np.nan, _image()).astype(np.float32))),
    Bad("ref inf torch", ValueError, "ref_image_opt",
        lambda: paste_call(ref_image_opt=_torch(np.where(
            _image() > 0.99, np.inf, _image()).astype(np.float32))), True),

    # ---- feather and alpha
    *[Bad(f"feather {v!r}", TypeError, "feather",
          lambda v=v: paste_call(feather=v))
      for v in (5.5, "5", True, None, np.True_, 5.0)],
    *[Bad(f"feather {v!r}", ValueError, "feather",
          lambda v=v: paste_call(feather=v)) for v in (-1, 101, 10**6)],
    *[Bad(f"alpha {v!r}", ValueError, "alpha",
          lambda v=v: paste_call(alpha=v))
      for v in (-1, 256, 255.5, -0.01, math.nan, math.inf)],
    *[Bad(f"alpha {v!r}", TypeError, "alpha",
          lambda v=v: paste_call(alpha=v))
      for v in ("255", None, True, np.array(5.0), [255])],

    # ---- segs and its two parts
    Bad("segs a list of SEG", TypeError, "segs",
        lambda: paste_call(segs=_segs()[1])),
    Bad("segs a 3-tuple", TypeError, "segs",
        lambda: paste_call(segs=(*_segs(), None))),
    Bad("segs a 1-tuple", TypeError, "segs",
        lambda: paste_call(segs=(_segs()[1],))),
    Bad("segs a dict", TypeError, "segs",
        lambda: paste_call(segs=dict(zip("ab", _segs())))),
    Bad("segs None", TypeError, "segs",
        lambda: (segs_paste, (_image(), None), {})),
    Bad("segs a string", TypeError, "segs", lambda: paste_call(segs="ab")),
    Bad("segs a SEG", TypeError, "segs", lambda: paste_call(segs=_seg())),
    *[Bad(f"segs[0] {v!r}", TypeError, "segs[0]",
          lambda v=v: paste_call(segs=(v, _segs()[1])))
      for v in (H, (H, W, 3), (H,), (float(H), float(W)), None, "hw")],
    Bad("segs[0] negative", ValueError, "segs[0]",
        lambda: paste_call(segs=((-H, W), _segs()[1]))),
    *[Bad(f"segs[1] {kind}", TypeError, "segs[1]",
          lambda v=v: paste_call(segs=(_segs()[0], v())))
      for kind, v in [("None", lambda: None), ("a SEG", _seg),
                      ("a dict", lambda: {0: _seg()}),
                      ("a generator", lambda: (s for s in _segs()[1])),
                      ("an array", lambda: np.zeros(4))]],
    *[Bad(f"SEG as {kind}", TypeError, "segs[1][2]",
          lambda v=v: paste_call(segs=_segs(v(), at=2)))
      for kind, v in [("a plain tuple", lambda: tuple(_seg())),
                      ("a dict", lambda: _seg()._asdict()),
                      ("an object with some fields", _SomeFields),
                      ("None", lambda: None),
                      ("an array", lambda: np.zeros((8, 10)))]],

    # ---- cropped_mask
    Bad("mask rank 1", ValueError, "segs[1][3].cropped_mask",
        lambda: seg_call(at=3, region=R, mask=np.ones(10, np.float32))),
    Bad("mask rank 4", ValueError, "segs[1][3].cropped_mask",
        lambda: seg_call(at=3, region=R, mask=_mask(1.0, (1, 1, 8, 10)))),
    Bad("mask rank 4 torch", ValueError, "segs[1][3].cropped_mask",
        lambda: seg_call(at=3, region=R,
                         mask=_torch(_mask(1.0, (1, 1, 8, 10)))),
        True),
    Bad("mask empty", ValueError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_mask(1.0, (0, 10)))),
    Bad("mask with 0 frames", ValueError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_mask(1.0, (0, 8, 10)))),
    Bad("mask None", TypeError, "segs[1][1].cropped_mask",
        lambda: field_call("cropped_mask", None)),
    Bad("mask bool", TypeError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_mask(True, dtype=bool))),
    Bad("mask int", TypeError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_mask(1, dtype=np.int64))),
    Bad("mask uint8 torch", TypeError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=torch.ones((8, 10), dtype=torch.uint8)),
        True),
    Bad("mask bool torch", TypeError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=torch.ones((8, 10), dtype=torch.bool)),
        True),
    Bad("mask complex", TypeError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_mask(1, dtype=np.complex64))),
    Bad("mask list", TypeError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_mask(1.0).tolist())),
    *[Bad(f"mask {v}", ValueError, "segs[1][3].cropped_mask",
          lambda v=v: seg_call(at=3, region=R, mask=np.where(
              _rng().random((8, 10)) > 0.5, v, 0.5).astype(np.float32)))
      for v in (math.nan, math.inf, -math.inf)],
    Bad("mask NaN torch", ValueError, "segs[1][1].cropped_mask",
        lambda: seg_call(region=R, mask=_torch(_mask(math.nan))), True),
    *[Bad(f"mask value {v}", ValueError, "segs[1][1].cropped_mask",
          lambda v=v: seg_call(region=R, mask=np.where(
              _rng().random((8, 10)) > 0.5, v, 0.5).astype(np.float32)))
      for v in (-0.5, 1.5, 1.002, -0.002, 255.0)],

    # ---- cropped_image
    Bad("crop rank 3", ValueError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=_image(h=8, w=10)[0])),
    Bad("crop rank 5", ValueError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=_image(h=8, w=10)[None])),
    Bad("crop rank 3 torch", ValueError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=_torch(_image(h=8, w=10)[0])), True),
    *[Bad(f"crop {c} channels", ValueError, "segs[1][2].cropped_image",
          lambda c=c: seg_call(at=2, region=R, channels=c))
      for c in (0, 1, 2, 5)],  # 4 into 3 is today's node's RGBA rule
    Bad("crop 3 channels for a 1-channel image", ValueError,
        "segs[1][1].cropped_image",
        lambda: paste_call(image=_image(c=1), segs=_segs(
            _seg(region=R, channels=3), channels=1))),
    Bad("crop 2 frames for 4", ValueError, "segs[1][1].cropped_image",
        lambda: paste_call(image=_image(n=4), segs=_segs(
            _seg(region=R, frames=2), frames=4))),
    Bad("crop 0 frames", ValueError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, frames=0)),
    Bad("crop empty", ValueError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=np.zeros((N, 0, 10, C), np.float32))),
    Bad("crop int", TypeError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=np.zeros(CROP_SHAPE, np.int32))),
    Bad("crop int16 torch", TypeError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=torch.zeros(CROP_SHAPE,
                                                    dtype=torch.int16)), True),
    Bad("crop bool", TypeError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=np.zeros(CROP_SHAPE, bool))),
    Bad("crop list", TypeError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=_image(h=8, w=10).tolist())),
    *[Bad(f"crop {v}", ValueError, "segs[1][1].cropped_image",
          lambda v=v: seg_call(region=R, crop=np.where(
              _image(h=8, w=10) > 0.9, v, 0.5).astype(np.float32)))
      for v in (math.nan, math.inf, -math.inf)],
    Bad("crop NaN torch", ValueError, "segs[1][1].cropped_image",
        lambda: seg_call(region=R, crop=_torch(np.full(CROP_SHAPE, np.nan,
                                                       np.float32))), True),

    # ---- crop_region
    *[Bad(f"region {r}", ValueError, "segs[1][1].crop_region",
          lambda r=r: field_call("crop_region", r))
      for r in [(14, 3, 14, 11), (14, 3, 4, 11), (4, 11, 14, 11),
                (4, 11, 14, 3), (0, 0, 0, 0), (-5, -5, -9, 2)]],
    *[Bad(f"region {kind}", TypeError, "segs[1][1].crop_region",
          lambda v=v: field_call("crop_region", v()))
      for kind, v in [
          ("floats", lambda: (4.0, 3.0, 14.0, 11.0)),
          ("one float", lambda: (4, 3, 14.5, 11)),
          ("3 values", lambda: (4, 3, 14)),
          ("5 values", lambda: (4, 3, 14, 11, 0)),
          ("a string", lambda: "4 3 14 11"),
          ("4 characters", lambda: "4311"),
          ("strings", lambda: ("4", "3", "14", "11")),
          ("None", lambda: None),
          ("bools", lambda: (True, True, True, True)),
          ("a float array", lambda: np.array([4.0, 3, 14, 11])),
          ("a 2x2 array", lambda: np.array([[4, 3], [14, 11]])),
          ("a 0-d array", lambda: np.array(4)),
          ("an int", lambda: 4)]],
    Bad("region float tensor", TypeError, "segs[1][1].crop_region",
        lambda: field_call("crop_region", torch.tensor([4.0, 3, 14, 11])),
        True),
    *[Bad(f"region {r}", ValueError, "segs[1][1].crop_region",
          lambda r=r: field_call("crop_region", r))
      for r in [(-2**31, 0, 4, 4), (0, 0, 2**31, 8), (2**40, 2**40,
                                                      2**40 + 8, 2**40 + 8)]],
    Bad("region empty after scale match", ValueError, "segs[1][1].crop_region",
        lambda: paste_call(segs=((2 * H, 2 * W), [
            _seg(), _seg(region=(4, 5, 5, 9))]))),
    Bad("region too large after scale match", ValueError,
        "segs[1][1].crop_region",
        lambda: paste_call(segs=((1, 1), [
            _seg(region=(0, 0, 1, 1)),
            _seg(region=(2**26, 0, 2**26 + 1, 1))]))),

    # ---- the other fields
    Bad("bbox None", TypeError, "segs[1][1].bbox",
        lambda: field_call("bbox", None)),
    Bad("bbox 3 values", TypeError, "segs[1][1].bbox",
        lambda: field_call("bbox", (1, 2, 3))),
    Bad("confidence None", TypeError, "segs[1][1].confidence",
        lambda: field_call("confidence", None)),
    Bad("confidence a word", TypeError, "segs[1][1].confidence",
        lambda: field_call("confidence", "high")),

    # ---- segs_paste's and pack_segs's packing options
    *[Bad(f"bucket_size {v!r}", TypeError, "bucket_size",
          lambda v=v: paste_call(bucket_size=v)) for v in ("256", 256.0)],
    *[Bad(f"bucket_size {v!r}", ValueError, "bucket_size",
          lambda v=v: paste_call(bucket_size=v)) for v in (0, 8, 2**20)],
    *[Bad(f"max_segments {v!r}", TypeError, "max_segments",
          lambda v=v: pack_call(max_segments=v)) for v in ("8", 8.0)],
    *[Bad(f"max_segments {v!r}", ValueError, "max_segments",
          lambda v=v: pack_call(max_segments=v)) for v in (-1, 3, 2**20)],
    *[Bad(f"image_shape {v!r}", TypeError, "image_shape",
          lambda v=v: pack_call(image_shape=v))
      for v in (None, 5, (N, H + 0.5, W, C), "NHWC")],
    *[Bad(f"image_shape {v!r}", ValueError, "image_shape",
          lambda v=v: pack_call(image_shape=v))
      for v in ((H, W, C), (N, H, W, 2), (0, H, W, C))],
    Bad("pack_segs bad mask", ValueError, "segs[1][1].cropped_mask",
        lambda: pack_call(segs=_segs(_seg(region=R, mask=_mask(2.0))))),
    Bad("pack_segs segs 0", TypeError, "segs", lambda: pack_call(segs=0)),
]


# ----------------------------------------------------------------------------
# Snapshots of every array the caller passed, compared byte for byte.

def _arrays(value, seen=None):
  """Every numpy array and torch tensor inside tuples, lists, dicts, objects."""
  seen = set() if seen is None else seen
  if id(value) in seen:
    return
  seen.add(id(value))
  if isinstance(value, np.ndarray) or (torch is not None
                                       and isinstance(value, torch.Tensor)):
    yield value
  elif isinstance(value, (tuple, list)):
    for item in value:
      yield from _arrays(item, seen)
  elif isinstance(value, dict):
    for item in value.values():
      yield from _arrays(item, seen)
  elif hasattr(value, "__dict__"):
    yield from _arrays(vars(value), seen)


def _bytes(a):
  if torch is not None and isinstance(a, torch.Tensor):
    a = a.detach().contiguous()
    return a.shape, a.dtype, a.view(torch.uint8).numpy().tobytes() if (
        a.numel()) else b""
  return a.shape, a.dtype, a.tobytes()


def snapshot(*values):
  arrays = [a for v in values for a in _arrays(v)]
  return arrays, [_bytes(a) for a in arrays]


def assert_unchanged(snap):
  arrays, before = snap
  for a, b in zip(arrays, before):
    assert _bytes(a) == b, "an input array was modified"


@pytest.fixture
def no_jax(monkeypatch):
  """Fails the test if `segs_paste` reaches JAX before raising."""

  class Tripwire:
    def __getattr__(self, name):
      raise AssertionError(f"JAX used before validation finished: .{name}")

    def __call__(self, *args, **kwargs):
      raise AssertionError("JAX used before validation finished: a call")

  # every way segs_paste reaches JAX: the core, the transfers, the dtypes
  for module, name in [(api, "paste"), (api, "sharded_paste"),
                       (arrays, "to_device"), (arrays, "unit_float"),
                       (arrays, "from_unit_float")]:
    monkeypatch.setattr(module, name, Tripwire(), raising=False)


def test_catalogue_is_large_and_unique():
  assert len(CATALOGUE) >= 30
  ids = [bad.id for bad in CATALOGUE]
  assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("bad", CATALOGUE, ids=lambda bad: bad.id)
def test_bad_input_raises_naming_the_argument(bad, no_jax):
  if bad.needs_torch and torch is None:
    pytest.skip("torch not installed")
  function, args, kwargs = bad.make()
  before = snapshot(args, kwargs)
  with pytest.raises(bad.error) as info:
    function(*args, **kwargs)
  assert type(info.value) is bad.error  # not a subclass from deep inside
  message = str(info.value)
  assert re.match(re.escape(bad.name) + r": \S", message), message
  assert_unchanged(before)


# ----------------------------------------------------------------------------
# Inputs that are not errors: defined behaviour.

def _check_reference(image, segs, atol=1e-5, **kwargs):
  got = np.asarray(segs_paste(image, segs, **kwargs))
  expected = reference.segs_paste(image, segs, **kwargs)
  np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
  return got


OUTSIDE = {
    "left": (-20, 4, -6, 12), "right": (W, 4, W + 9, 12),
    "above": (3, -12, 13, 0), "below": (3, H, 13, H + 4),
    "far corner": (W + 100, H + 100, W + 120, H + 110),
    "near corner": (-50, -40, -10, -1),
}


@pytest.mark.parametrize("use_ref", [False, True])
@pytest.mark.parametrize("where", list(OUTSIDE))
def test_region_wholly_outside_is_a_no_op(where, use_ref):
  image = _image()
  segs = (H, W), [_seg(region=OUTSIDE[where],
                       mask=np.ones((8, 8), np.float32))]
  ref = _image(seed=5) if use_ref else None
  got = np.asarray(segs_paste(image, segs, feather=0, ref_image_opt=ref))
  np.testing.assert_array_equal(bits(got), bits(image))


OVERHANG = {
    "left": (-4, 6, 8, 16), "right": (W - 5, 6, W + 7, 16),
    "top": (10, -6, 22, 6), "bottom": (10, H - 3, 22, H + 9),
    "top-left": (-7, -5, 9, 9), "bottom-right": (W - 6, H - 4, W + 6, H + 6),
    "every side": (-3, -2, W + 4, H + 5),
}


@pytest.mark.parametrize("use_ref", [False, True])
@pytest.mark.parametrize("where", list(OVERHANG))
def test_region_partly_outside_is_clipped(where, use_ref):
  image = _image()
  ref = _image(seed=5) if use_ref else None
  segs = (H, W), [_seg(region=OVERHANG[where], seed=7),
                  _seg(region=(2, 2, 12, 10), seed=8)]
  got = _check_reference(image, segs, feather=FEATHER, alpha=200,
                         ref_image_opt=ref)
  assert np.abs(got - image).max() > 0.05  # something was pasted


@pytest.mark.parametrize("use_ref", [False, True])
def test_crop_larger_than_image(use_ref):
  image = _image(h=12, w=14)
  segs = (12, 14), [_seg(region=(-5, -6, 20, 18), seed=9)]
  ref = _image(h=12, w=14, seed=5) if use_ref else None
  _check_reference(image, segs, feather=FEATHER, ref_image_opt=ref)


def _footprint(shape, regions):
  inside = np.zeros(shape[:3], bool)
  for x1, y1, x2, y2 in regions:
    inside[:, max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = True
  return inside


@pytest.mark.parametrize("with_ref", [False, True])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "mixed"])
def test_non_finite_image_passes_through(bad, with_ref):
  """NaN/inf in `image` are not checked: they stay where they are, alone."""
  rng = _rng(11)
  image = _image()
  spots = rng.random(image.shape) > 0.97
  value = (rng.choice([math.nan, math.inf, -math.inf], image.shape)
           if bad == "mixed" else bad)
  image = np.where(spots, value, image).astype(np.float32)
  regions = [(2, 3, 16, 15), (10, 8, 30, 22)]
  segs = (H, W), [_seg(region=regions[0], seed=1),
                  _seg(region=regions[1], seed=2,
                       mask=np.ones((14, 20), np.float32))]
  before = image.copy()
  ref = _rng(12).random(image.shape).astype(np.float32) if with_ref else None
  got = np.asarray(segs_paste(image, segs, feather=FEATHER, ref_image_opt=ref))
  assert bits(image).tobytes() == bits(before).tobytes()
  outside = ~_footprint(image.shape, regions)
  np.testing.assert_array_equal(bits(got)[outside], bits(image)[outside])
  # non-finite pixels stay non-finite, finite ones finite: nothing spreads
  np.testing.assert_array_equal(np.isfinite(got), np.isfinite(image))
  expected = reference.segs_paste(image, segs, feather=FEATHER,
                                  ref_image_opt=ref)
  finite = np.isfinite(image)
  np.testing.assert_allclose(got[finite], expected[finite], rtol=0, atol=1e-5)


@pytest.mark.parametrize("value", [1 + 5e-4, -5e-4, 1 + 9e-4, -9e-4])
def test_mask_rounding_is_tolerated(value):
  mask = np.where(_rng(2).random((8, 10)) > 0.5, value, 0.5).astype(np.float32)
  segs = (H, W), [_seg(region=R, mask=mask)]
  _check_reference(_image(), segs, feather=FEATHER)


@pytest.mark.parametrize("use_torch", [False, True])
def test_no_crops_and_no_ref_is_a_no_op(use_torch):
  if use_torch and torch is None:
    pytest.skip("torch not installed")
  image = _image()
  segs = _segs(crop=None)
  if use_torch:
    image = _torch(image)
  got = np.asarray(segs_paste(image, segs, feather=FEATHER))
  np.testing.assert_array_equal(bits(got), bits(np.asarray(image)))


def test_no_segments_is_a_no_op():
  image = _image()
  for segs in [((H, W), []), ((0, 0), ()), ((2 * H, W), [])]:
    got = np.asarray(segs_paste(image, segs, feather=FEATHER))
    np.testing.assert_array_equal(bits(got), bits(image))


def test_bad_crops_are_ignored_with_ref_image():
  """With `ref_image_opt` the node never reads `cropped_image`; neither do
  we."""
  image, ref = _image(), _image(seed=5)
  bad_crop = _seg(region=R, crop=np.full((3, 1, 1, 2), np.nan))
  no_crop = bad_crop._replace(cropped_image=None)
  expected = _check_reference(image, ((H, W), [no_crop]), feather=FEATHER,
                              ref_image_opt=ref)
  got = np.asarray(segs_paste(image, ((H, W), [bad_crop]), feather=FEATHER,
                              ref_image_opt=ref))
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("kind", ["numpy int64", "list of numpy ints",
                                  "torch int", "list"])
def test_crop_region_as_integer_array(kind):
  region = {"numpy int64": np.array(R), "list of numpy ints":
            [np.int32(v) for v in R], "list": list(R)}.get(kind)
  if kind == "torch int":
    if torch is None:
      pytest.skip("torch not installed")
    region = torch.tensor(R)
  image = _image()
  expected = np.asarray(segs_paste(image, _segs(_seg(region=R), count=2)))
  got = np.asarray(segs_paste(image, _segs(_seg(region=R)._replace(
      crop_region=region), count=2)))
  np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("use_torch", [False, True])
def test_inputs_never_modified(use_torch):
  """Read-only numpy input works; no array is written on success or error."""
  if use_torch and torch is None:
    pytest.skip("torch not installed")
  rng = _rng(21)
  image, ref = _image(), _image(seed=5)
  masks = [rng.random((8, 10)).astype(np.float32),
           rng.random((3, 8, 10)).astype(np.float32)]  # combined: 3 != N
  crops = [rng.random((N, 8, 10, C)).astype(np.float32),
           rng.random((1, 5, 6, C)).astype(np.float32)]
  arrays = [image, ref, *masks, *crops]
  for a in arrays:
    a.flags.writeable = False
  wrap = torch.tensor if use_torch else (lambda a: a)
  image, ref = wrap(image), wrap(ref)
  items = [_seg(region=R, crop=wrap(crops[0]), mask=wrap(masks[0])),
           _seg(region=(-3, 10, 7, 18), crop=wrap(crops[1]),
                mask=wrap(masks[1]))]
  for size in [(H, W), (2 * H, 2 * W)]:  # also through the scale match
    for ref_opt in [None, ref]:
      segs = size, items
      before = snapshot(image, segs, ref_opt)
      segs_paste(image, segs, feather=FEATHER, ref_image_opt=ref_opt)
      assert_unchanged(before)
      # an error late in the checks, after every other array was read
      bad = size, items + [_seg(region=R, mask=_mask(np.nan))]
      with pytest.raises(ValueError, match=r"segs\[1\]\[2\]\.cropped_mask"):
        segs_paste(image, bad, feather=FEATHER, ref_image_opt=ref_opt)
      assert_unchanged(before)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("where", [0, 17, -1])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_all_finite_finds_any_non_finite_value(dtype, where, value):
  x = np.random.default_rng(3).random((5, 9, 3)).astype(dtype)
  assert validate.all_finite(x)
  x.reshape(-1)[where] = value
  assert not validate.all_finite(x)
  assert not validate.all_finite(x[::2, ::-1])  # strided views too


def test_all_finite_on_extremes():
  for dtype in (np.float16, np.float32, np.float64):
    info = np.finfo(dtype)
    # finite values whose sum would overflow are still finite
    assert validate.all_finite(np.array([info.max, info.max, info.min], dtype))
    assert validate.all_finite(np.array([info.tiny, -0.0], dtype))
  assert validate.all_finite(np.zeros((0, 4), np.float32))
