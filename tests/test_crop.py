"""`crop_segs` and `make_packed_segs` against numpy, from their contracts.

The reference crop is float64 numpy, pixel by pixel from the definition
`crops[s, n, u, v] = image[n, y1 + u, x1 + v]` (zero off the image and past
the region's size or the bucket), with no padding trick and no clipping of
starts, so it shares no code with the implementation. All shapes are fixed
across seeds: one compiled program per test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_regions
from segspaste_jax import (SEG, PackedSegs, SegCrops, crop_segs,
                           make_packed_segs, pack_segs, unpack_segs)

N, H, W, C = 2, 20, 24, 3
B = 16
S = 7
SEEDS = range(12)


def reference_crops(image, regions, bucket):
  """float64 crops, extents and visible boxes, pixel by pixel."""
  image = np.asarray(image, np.float64)
  n, h, w, c = image.shape
  crops = np.zeros((len(regions), n, bucket, bucket, c))
  sizes = np.zeros((len(regions), 2), np.int64)
  visible = []
  for s, (x1, y1, x2, y2) in enumerate(np.asarray(regions, np.int64)):
    eh = min(max(y2 - y1, 0), bucket)
    ew = min(max(x2 - x1, 0), bucket)
    sizes[s] = eh, ew
    rows, cols = [], []
    for u in range(eh):
      for v in range(ew):
        y, x = y1 + u, x1 + v
        if 0 <= y < h and 0 <= x < w:
          crops[s, :, u, v] = image[:, y, x]
          rows.append(u)
          cols.append(v)
    visible.append((sorted(set(rows)), sorted(set(cols))))
  return crops, sizes, visible


def check_against_reference(out: SegCrops, image, regions, bucket):
  crops, sizes, visible = reference_crops(image, regions, bucket)
  np.testing.assert_array_equal(np.asarray(out.crops, np.float64), crops)
  np.testing.assert_array_equal(out.sizes, sizes)
  h, w = np.shape(image)[1:3]
  for s, (rows, cols) in enumerate(visible):
    top, left, vh, vw = np.asarray(out.visible[s])
    if rows:  # the visible part is one rectangle: contiguous rows, columns
      assert rows == list(range(top, top + vh)), (s, regions[s])
      assert cols == list(range(left, left + vw)), (s, regions[s])
    else:
      assert vh * vw == 0, (s, regions[s], out.visible[s])
    x1, y1, x2, y2 = (int(v) for v in regions[s])
    if 0 < y2 - y1 <= bucket and 0 < x2 - x1 <= bucket:
      # the extent `paste` clips ref_image_opt to (`_geometry(with_ref)`)
      ref_h = max(min(y2, h) - max(y1, 0), 0)
      ref_w = max(min(x2, w) - max(x1, 0), 0)
      if ref_h and ref_w:
        assert (vh, vw) == (ref_h, ref_w), (s, regions[s])
        assert (top, left) == (max(y1, 0) - y1, max(x1, 0) - x1)


@pytest.mark.parametrize("seed", SEEDS)
def test_crop_segs_matches_numpy_slicing(seed):
  rng = np.random.default_rng(seed)
  image = rng.random((N, H, W, C), dtype=np.float32)
  regions = random_regions(rng, S, H, W, B)
  out = crop_segs(image, regions, B)
  assert isinstance(out, SegCrops)
  assert out.crops.shape == (S, N, B, B, C) and out.crops.dtype == jnp.float32
  assert out.sizes.dtype == jnp.int32 and out.visible.shape == (S, 4)
  check_against_reference(out, image, regions, B)


def test_crop_segs_under_jit_and_vmap():
  rng = np.random.default_rng(100)
  k = 3
  images = rng.random((k, N, H, W, C), dtype=np.float32)
  regions = np.stack([random_regions(rng, S, H, W, B) for _ in range(k)])
  jitted = jax.jit(lambda im, r: crop_segs(im, r, B))
  for i in range(k):
    check_against_reference(jitted(images[i], regions[i]), images[i],
                            regions[i], B)
  # vmap over images and region sets together, and over region sets alone
  # (the image a constant), each inside jit
  both = jax.jit(jax.vmap(lambda im, r: crop_segs(im, r, B)))(images, regions)
  over_regions = jax.jit(jax.vmap(lambda r: crop_segs(images[0], r, B)))(
      regions)
  for i in range(k):
    pick = lambda out, i=i: jax.tree.map(lambda a: a[i], out)
    check_against_reference(pick(both), images[i], regions[i], B)
    check_against_reference(pick(over_regions), images[0], regions[i], B)


@pytest.mark.parametrize("bucket", [1, 5, 32, 48])
def test_crop_segs_buckets_smaller_and_larger_than_the_image(bucket):
  rng = np.random.default_rng(bucket)
  image = rng.random((1, H, W, 1), dtype=np.float32)
  regions = np.concatenate([random_regions(rng, S, H, W, bucket),
                            [[-5, -5, W + 5, H + 5], [0, 0, W, H]]])
  check_against_reference(crop_segs(image, regions, bucket), image, regions,
                          bucket)


def test_crop_segs_keeps_dtype_and_extreme_coordinates():
  rng = np.random.default_rng(7)
  image = (rng.random((N, H, W, C)) * 255).astype(np.uint8)
  big = (1 << 30)
  regions = np.array([[-big, -big, big, big], [-big, 3, 5, 9],
                      [big - 1, 0, big, 4], [2, 3, 9, 11]], np.int32)
  out = crop_segs(image, regions, B)
  assert out.crops.dtype == jnp.uint8
  check_against_reference(out, image, regions, B)
  # int64 regions beyond int32 (under x64) are clipped, not wrapped around
  with jax.enable_x64(True):
    wide = np.array([[-(1 << 40), 2, 1 << 40, 9]], np.int64)
    out = crop_segs(image.astype(np.float64), wide, B)
    np.testing.assert_array_equal(out.sizes, [[7, B]])
    # its first B columns are all far left of the image
    np.testing.assert_array_equal(out.visible, [[0, B, 7, 0]])
    check_against_reference(out, image, wide, B)


def test_crop_segs_gradient_is_the_adjoint_of_the_cut():
  """d sum(g * crops) / d image adds each crop pixel's weight `g` at the
  image pixel it was cut from."""
  rng = np.random.default_rng(8)
  image = rng.random((N, H, W, C), dtype=np.float32)
  regions = random_regions(rng, S, H, W, B)
  weights = rng.standard_normal((S, N, B, B, C)).astype(np.float32)
  grad = jax.jit(jax.grad(lambda im: jnp.sum(
      weights * crop_segs(im, regions, B).crops)))(image)
  expected = np.zeros(image.shape, np.float64)
  for s, (x1, y1, x2, y2) in enumerate(regions):
    for u in range(min(max(y2 - y1, 0), B)):
      for v in range(min(max(x2 - x1, 0), B)):
        if 0 <= y1 + u < H and 0 <= x1 + v < W:
          expected[:, y1 + u, x1 + v] += weights[s, :, u, v]
  np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros((H, W, C)), np.zeros((1, 4), np.int32), B), {}, ValueError,
     r"^image: expected \[N, H, W, C\]"),
    ((np.zeros((1, H, W, C), bool), np.zeros((1, 4), np.int32), B), {},
     TypeError, "^image: expected a floating or integer"),
    ((np.zeros((1, H, W, C)), np.zeros((1, 4)), B), {}, TypeError,
     "^regions: expected an integer array"),
    ((np.zeros((1, H, W, C)), np.zeros((4,), np.int32), B), {}, ValueError,
     r"^regions: expected shape \[S, 4\]"),
    ((np.zeros((1, H, W, C)), np.zeros((2, 5), np.int32), B), {}, ValueError,
     r"^regions: expected shape \[S, 4\]"),
    ((np.zeros((1, H, W, C)), np.zeros((1, 4), np.int32), 0), {}, ValueError,
     "^bucket_size: expected >= 1"),
    ((np.zeros((1, H, W, C)), np.zeros((1, 4), np.int32), 16.0), {},
     TypeError, "^bucket_size: expected a Python int"),
    ((np.zeros((1, H, W, C)), np.zeros((1, 4), np.int32), True), {},
     TypeError, "^bucket_size: expected a Python int"),
])
def test_crop_segs_rejects_bad_arguments(args, kwargs, error, match):
  with pytest.raises(error, match=match):
    crop_segs(*args, **kwargs)


def test_crop_segs_bucket_must_be_static():
  with pytest.raises(TypeError, match="^bucket_size: expected a Python int"):
    jax.jit(lambda b: crop_segs(np.zeros((1, H, W, C)),
                                np.zeros((1, 4), np.int32), b))(16)


# ----------------------------------------------------------------------------
# make_packed_segs


def _host_segs(rng, regions, frames_of_masks: int):
  """SEGS with region-sized crops and masks, and the same arrays padded."""
  crops = np.zeros((len(regions), N, B, B, C), np.float32)
  masks = np.zeros((len(regions), max(frames_of_masks, 1), B, B), np.float32)
  segs = []
  for s, (x1, y1, x2, y2) in enumerate(regions):
    h, w = y2 - y1, x2 - x1
    crop = rng.random((N, h, w, C), dtype=np.float32)
    mask = rng.random((max(frames_of_masks, 1), h, w), dtype=np.float32)
    crops[s, :, :h, :w] = crop
    masks[s, :, :h, :w] = mask
    segs.append(SEG(crop, mask if frames_of_masks else mask[0], 1.0,
                    tuple(int(v) for v in (x1, y1, x2, y2)),
                    tuple(int(v) for v in (x1, y1, x2, y2)), ""))
  return ((H, W), segs), crops, masks


@pytest.mark.parametrize("mask_frames", [0, N])
def test_make_packed_segs_agrees_with_pack_segs(mask_frames):
  """Region-sized crops and masks: every field as `pack_segs` makes it,
  padding slots included."""
  rng = np.random.default_rng(40 + mask_frames)
  count, slots = 5, 8
  regions = random_regions(rng, count, H, W, B, empty=False)
  regions[:, 2:] = np.minimum(regions[:, 2:], regions[:, :2] + B)
  segs, crops, masks = _host_segs(rng, regions, mask_frames)
  host = pack_segs(segs, (N, H, W, C), bucket_size=B, max_segments=slots)
  pad = slots - count
  padded = lambda a: np.concatenate([a, np.zeros((pad,) + a.shape[1:],
                                                 a.dtype)])
  valid = np.arange(slots) < count
  device = jax.jit(lambda r, m, c, v: make_packed_segs(
      r, m if mask_frames else m[:, 0], c, valid=v, labels=("",) * count,
      source_size=(H, W)))(padded(regions), padded(masks), padded(crops),
                           valid)
  assert isinstance(device, PackedSegs)
  for field in PackedSegs._fields[:-1]:
    got, want = np.asarray(getattr(device, field)), getattr(host, field)
    assert got.shape == want.shape, field
    np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=field)
    if field not in ("bboxes", "confidences"):
      assert got.dtype == want.dtype, field
  # with labels for the real slots, it unpacks to the same SEGS
  got = unpack_segs(device)
  assert got[0] == (H, W) and len(got[1]) == count
  for a, b in zip(got[1], segs[1]):
    np.testing.assert_array_equal(a.cropped_image, b.cropped_image)
    np.testing.assert_array_equal(a.cropped_mask, b.cropped_mask)
    assert a.crop_region == b.crop_region


def test_make_packed_segs_defaults():
  rng = np.random.default_rng(50)
  regions = np.array([[-3, -2, 10, 9], [5, 6, 5, 9], [0, 0, 40, 30],
                      [4, 4, 6, 7]], np.int32)
  masks = rng.random((4, B, B), dtype=np.float32)
  p = make_packed_segs(regions, masks)  # no crops: for ref_image pastes
  assert p.crops.shape == (4, 1, 1, 1, 3) and p.masks.shape == (4, 1, B, B)
  np.testing.assert_array_equal(p.mask_sizes, [[11, 13], [3, 1], [B, B],
                                               [3, 2]])
  np.testing.assert_array_equal(p.crop_sizes, np.zeros((4, 2)))
  np.testing.assert_array_equal(p.has_crop, [False] * 4)
  np.testing.assert_array_equal(p.valid, [True] * 4)
  np.testing.assert_array_equal(p.bboxes, regions)
  np.testing.assert_array_equal(p.confidences, np.ones(4))
  np.testing.assert_array_equal(p.crop_frames, np.zeros(4))
  np.testing.assert_array_equal(p.mask_frames, np.zeros(4))
  assert p.meta.labels == ("",) * 4 and p.num_segments == 4
  assert p.bucket == (4, B)

  crops = crop_segs(rng.random((N, H, W, C), dtype=np.float32), regions, B)
  p = make_packed_segs(regions, masks[:, None], crops.crops,
                       valid=np.array([True, True, False, True]),
                       labels=("a", "b"), source_size=(H, W), channels=C)
  np.testing.assert_array_equal(p.crop_sizes, [[11, 13], [3, 0], [0, 0],
                                               [3, 2]])
  np.testing.assert_array_equal(p.crop_sizes, np.where(
      p.has_crop[:, None], crops.sizes, 0))
  np.testing.assert_array_equal(p.has_crop, [True, True, False, True])
  np.testing.assert_array_equal(p.crop_frames, [N, N, 0, N])
  np.testing.assert_array_equal(p.mask_frames, [1, 1, 0, 1])
  assert p.meta.labels == ("a", "b") and p.meta.source_size == (H, W)
  # equal metadata hashes equal: no recompile when passed into jit
  assert hash(p.meta) == hash(make_packed_segs(
      regions, masks[:, None], labels=("a", "b"), source_size=(H, W)).meta)

  p = make_packed_segs(regions, masks, crops.crops,
                       crop_sizes=np.array([[50, -1]] * 4),
                       mask_sizes=np.array([[0, 99]] * 4),
                       has_crop=np.array([True, False, True, True]),
                       bboxes=np.ones((4, 4), np.int64),
                       confidences=np.full(4, 0.5))
  np.testing.assert_array_equal(p.crop_sizes, [[B, 0], [0, 0], [B, 0],
                                               [B, 0]])
  np.testing.assert_array_equal(p.mask_sizes, [[1, B]] * 4)
  assert jnp.issubdtype(p.bboxes.dtype, jnp.floating)
  np.testing.assert_array_equal(p.confidences, np.full(4, 0.5))


def test_make_packed_segs_keeps_float64_under_x64():
  with jax.enable_x64(True):
    r = np.zeros((2, 4), np.int64)
    p = make_packed_segs(r, np.zeros((2, B, B)), np.zeros((2, 1, B, B, 4)))
    assert p.masks.dtype == p.crops.dtype == jnp.float64
    assert p.bboxes.dtype == p.confidences.dtype == jnp.float64
    assert p.regions.dtype == jnp.int32


_R = np.zeros((3, 4), np.int32)
_M = np.zeros((3, B, B), np.float32)
_CR = np.zeros((3, 1, B, B, 3), np.float32)


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((np.zeros((3, 4)), _M), {}, TypeError, "^regions: expected an integer"),
    ((_R[:, :3], _M), {}, ValueError, r"^regions: expected shape \[S, 4\]"),
    ((_R, _M.astype(np.uint8)), {}, TypeError, "^masks: expected a floating"),
    ((_R, _M[0]), {}, ValueError, r"^masks: expected \[S, B, B\]"),
    ((_R, _M[:, :, :8]), {}, ValueError, "^masks: .*square bucket"),
    ((_R, _M[:2]), {}, ValueError, "^masks: expected 3 segments"),
    ((_R, _M, _CR.astype(np.uint8)), {}, TypeError,
     r"^crops: expected a floating.*x / 255"),
    ((_R, _M, _CR[0]), {}, ValueError,
     r"^crops: expected \[3, Fc, 16, 16, C\]"),
    ((_R, _M, _CR[:, :, :8]), {}, ValueError, "^crops: expected"),
    ((_R, _M, _CR[:2]), {}, ValueError, "^crops: expected"),
    ((_R, _M, _CR[:, :0]), {}, ValueError, "^crops: expected at least one"),
    ((_R, _M, np.zeros((3, 1, B, B, 2), np.float32)), {}, ValueError,
     "^crops: expected 1, 3 or 4 channels"),
    ((_R, _M, _CR), {"channels": 4}, ValueError, "^channels: 4 differs"),
    ((_R, _M), {"channels": 2}, ValueError, "^channels: expected 1, 3 or 4"),
    ((_R, _M), {"channels": 3.0}, TypeError, "^channels: expected a Python"),
    ((_R, _M, _CR), {"channels": 3.0}, TypeError,
     "^channels: expected a Python"),
    ((_R, np.zeros((3, 0, B, B), np.float32)), {}, ValueError,
     "^masks: expected non-empty"),
    ((_R, _M), {"crop_sizes": np.zeros((3, 2))}, TypeError,
     "^crop_sizes: expected an integer"),
    ((_R, _M), {"mask_sizes": np.zeros((3, 3), np.int32)}, ValueError,
     r"^mask_sizes: expected shape \(3, 2\)"),
    ((_R, _M), {"valid": np.ones(3, np.int32)}, TypeError,
     "^valid: expected a bool"),
    ((_R, _M), {"valid": np.ones(2, bool)}, ValueError,
     r"^valid: expected shape \(3,\)"),
    ((_R, _M), {"has_crop": np.ones((3, 1), bool)}, ValueError,
     "^has_crop: expected shape"),
    ((_R, _M), {"bboxes": np.zeros((3, 2))}, ValueError,
     r"^bboxes: expected shape \(3, 4\)"),
    ((_R, _M), {"confidences": np.array(["a"] * 3)}, TypeError,
     "^confidences: expected a real"),
    ((_R, _M), {"labels": "abc"}, TypeError, "^labels: expected a sequence"),
    ((_R, _M), {"labels": ("a",) * 4}, ValueError, "^labels: 4 labels for 3"),
    ((_R, _M), {"source_size": (1.5, 2)}, TypeError, "^source_size:"),
])
def test_make_packed_segs_rejects_bad_arguments(args, kwargs, error, match):
  with pytest.raises(error, match=match):
    make_packed_segs(*args, **kwargs)
  # the same checks while tracing (array arguments become tracers)
  arrays = [a for a in args]
  with pytest.raises(error, match=match):
    jax.jit(lambda *a: make_packed_segs(*a, **kwargs))(*arrays)
