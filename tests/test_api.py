"""The public API's contracts: jit, vmap, grad, no recompiles, no mutation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
import reference
from segspaste_jax import (SEG, PackedSegs, gaussian_blur_mask, pack_segs,
                           paste, segs_paste, unpack_segs)

try:
  import torch
except ImportError:
  torch = None

from segspaste_jax._src import cpu as cpu_lib
from segspaste_jax._src import feather as feather_lib
from segspaste_jax._src import paste as paste_lib


def _layout(rng, n, h, w, count, side_range=(32, 256)):
  return helpers.random_segs(rng, (h, w), n=n, count=count, sides=side_range,
                             origins=(-10, 10), label="hand")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_jit_and_no_jit_agree(seed):
  case = helpers.random_case(1000 + seed)
  jitted = np.asarray(segs_paste(case.image, case.segs, **case.kwargs()))
  with jax.disable_jit():
    eager = np.asarray(segs_paste(case.image, case.segs, **case.kwargs()))
  np.testing.assert_allclose(jitted, eager, rtol=0, atol=1e-6)


def _snapshot(value):
  if value is None:
    return None
  if torch is not None and isinstance(value, torch.Tensor):
    return value.clone()
  return np.array(value, copy=True)


def _same(a, b):
  if torch is not None and isinstance(a, torch.Tensor):
    return torch.equal(a, b)
  return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("as_torch", [False, True])
def test_inputs_unchanged(seed, as_torch):
  if as_torch and torch is None:
    pytest.skip("torch not installed")
  case = helpers.random_case(2000 + seed)
  image = torch.from_numpy(case.image) if as_torch else case.image
  before_image = _snapshot(image)
  before_ref = _snapshot(case.ref_image_opt)
  before = [(_snapshot(s.cropped_image), _snapshot(s.cropped_mask),
             tuple(s.crop_region)) for s in case.segs[1]]
  segs_paste(image, case.segs, **case.kwargs())
  assert _same(image, before_image)
  if before_ref is not None:
    assert _same(case.ref_image_opt, before_ref)
  for seg, (crop, mask, region) in zip(case.segs[1], before):
    assert crop is None or _same(seg.cropped_image, crop)
    assert _same(seg.cropped_mask, mask)
    assert tuple(seg.crop_region) == region


@pytest.mark.slow
def test_no_recompile_within_a_bucket(compile_counter):
  """50 layouts of 1-8 segments, sides 32-128: two compiled programs (4
  and 8 segment slots), both compiled by the warm-up."""
  rng = np.random.default_rng(0)
  image = rng.random((2, 300, 400, 3)).astype(np.float32)
  sides = (32, 128)  # one bucket: the smallest
  for count in (3, 7):  # warm-up
    segs_paste(image, _layout(rng, 2, 300, 400, count, sides), feather=5)
  compile_counter.clear()
  for _ in range(50):
    count = int(rng.integers(1, 9))
    segs_paste(image, _layout(rng, 2, 300, 400, count, sides), feather=5,
               alpha=int(rng.integers(0, 256))).block_until_ready()
  assert compile_counter == []


@pytest.mark.parametrize("form", ["cpu", "accelerator"])
def test_paste_traces_once_per_bucket(form):
  """Layouts of one bucket and every feather of one radius bucket share
  one trace (the accelerator form: every feather at all)."""
  rng = np.random.default_rng(1)
  image = jnp.asarray(rng.random((1, 128, 128, 3)).astype(np.float32))
  chex.clear_trace_counter()
  traced = chex.assert_max_traces(n=1)(paste_lib.paste_core)
  jitted = jax.jit(traced, static_argnames=("form",))
  feathers = (11, 30, 50) if form == "cpu" else (0, 11, 100)
  for count, feather in zip((1, 3, 4), feathers):
    packed = pack_segs(_layout(rng, 1, 128, 128, count), image.shape)
    jitted(image, packed.strip_meta(), feather, 200, None,
           **paste_lib.static_args(form, feather))


@pytest.mark.slow
def test_paste_under_jit_vmap_and_grad():
  rng = np.random.default_rng(2)
  images = rng.random((3, 1, 64, 64, 3)).astype(np.float32)
  segs = _layout(rng, 1, 64, 64, 2, side_range=(10, 40))
  packed = jax.device_put(pack_segs(segs, images.shape[1:]))
  direct = np.stack([np.asarray(segs_paste(im, segs, feather=4))
                     for im in images])

  jitted = jax.jit(lambda im, p: paste(im, p, feather=4))
  np.testing.assert_allclose(jitted(images[0], packed), direct[0], atol=1e-6)
  batched = jax.vmap(lambda im: paste(im, packed, feather=4))(images)
  np.testing.assert_allclose(batched, direct, atol=1e-6)

  def loss(image, crops, alpha):
    return jnp.sum(paste(image, packed._replace(crops=crops), feather=4,
                         alpha=alpha) ** 2)

  grads = jax.grad(loss, argnums=(0, 1, 2))(jnp.asarray(images[0]),
                                            packed.crops, 200.0)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
  assert float(jnp.abs(grads[1]).max()) > 0 and float(grads[2]) != 0


@pytest.mark.slow
def test_gaussian_blur_mask_matches_reference():
  rng = np.random.default_rng(3)
  for h, w, feather in [(40, 50, 5), (7, 9, 10), (5, 30, 3), (4, 4, 1),
                        (120, 80, 100), (33, 33, 16), (2, 9, 4)]:
    mask = rng.random((h, w)).astype(np.float32)
    np.testing.assert_allclose(gaussian_blur_mask(mask, feather),
                               reference.gaussian_blur(mask, feather),
                               atol=1e-6)
  stack = rng.random((3, 20, 25)).astype(np.float32)
  got = gaussian_blur_mask(stack, 6)
  for i in range(3):
    np.testing.assert_allclose(got[i], reference.gaussian_blur(stack[i], 6),
                               atol=1e-6)


@pytest.mark.parametrize("feather", helpers.quick_first(
    [5, 25, 0, 1, 3, 6, 8, 10, 11, 50, 100], 2))
def test_blur_forms_match_reference(feather):
  """The matrix form (accelerator) and the banded form (CPU, in its radius
  bucket) of the blur, on masks padded to a bucket, against the reference:
  every size where the kernel is clamped or skipped included."""
  rng = np.random.default_rng(feather)
  bucket = 64
  masks, sizes = [], []
  for h, w in [(64, 64), (50, 37), (23, 60), (13, 15), (9, 40), (5, 7),
               (1, 30), (3, 3)]:
    mask = np.zeros((bucket, bucket), np.float32)
    mask[:h, :w] = rng.random((h, w))
    masks.append(mask)
    sizes.append((h, w))
  masks = jnp.asarray(np.stack(masks))
  sizes = jnp.asarray(sizes, jnp.int32)
  max_radius = cpu_lib.Form.for_feather(feather).max_radius
  forms = {
      "matrix": lambda m, hw: feather_lib.blur_matrix_form(
          m, hw[0], hw[1], jnp.int32(feather)),
      "banded": lambda m, hw: cpu_lib.blur_banded(
          m, hw[0], hw[1], jnp.int32(feather), max_radius),
  }
  for name, one in forms.items():
    got = np.asarray(jax.jit(jax.vmap(one))(masks, sizes))
    for i, (h, w) in enumerate(sizes.tolist()):
      expected = reference.gaussian_blur(np.asarray(masks[i, :h, :w]), feather)
      np.testing.assert_allclose(got[i, :h, :w], expected, atol=1e-6,
                                 err_msg=name)
      assert not got[i, h:].any() and not got[i, :, w:].any(), name


def test_cpu_radius_buckets():
  buckets = [cpu_lib.Form.for_feather(f).max_radius for f in range(101)]
  assert len(set(buckets)) <= 5
  assert all(f <= b for f, b in enumerate(buckets))
  assert buckets == sorted(buckets)


@pytest.mark.slow
def test_pack_unpack_round_trip():
  rng = np.random.default_rng(4)
  n = 3
  crop_n = rng.random((n, 12, 17, 3)).astype(np.float32)
  crop_1 = rng.random((1, 30, 9, 3)).astype(np.float32)
  wrapper = object()
  items = [
      SEG(crop_n, rng.random((12, 17)).astype(np.float32), 0.875,
          (1, 2, 18, 14), (3, 4, 10, 12), "face", wrapper),
      SEG(crop_1, rng.random((n, 30, 9)).astype(np.float32), 0.25,
          (-4, 10, 5, 40), (0, 11, 4.5, 30.25), "hand"),
      SEG(None, rng.random((1, 6, 6)).astype(np.float32), 1.0,
          (50, 50, 56, 56), (50, 50, 56, 56), "person"),
  ]
  if torch is not None:
    items[0] = items[0]._replace(cropped_image=torch.from_numpy(crop_n))
  segs = ((64, 80), items)
  packed = pack_segs(segs, (n, 64, 80, 3))
  assert isinstance(packed, PackedSegs)
  size, back = unpack_segs(packed)
  assert size == (64, 80) and len(back) == 3
  for original, restored in zip(items, back):
    crop = original.cropped_image
    if crop is None:
      assert restored.cropped_image is None
    else:
      np.testing.assert_array_equal(restored.cropped_image, np.asarray(crop))
    np.testing.assert_array_equal(restored.cropped_mask,
                                  np.asarray(original.cropped_mask))
    assert restored.crop_region == tuple(original.crop_region)
    assert restored.bbox == tuple(original.bbox)
    assert restored.label == original.label
    assert restored.confidence == original.confidence
    assert restored.control_net_wrapper is original.control_net_wrapper
  # the round trip pastes the same picture
  image = rng.random((n, 64, 80, 3)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(segs_paste(image, segs)),
                                np.asarray(segs_paste(image, (size, back))))


def test_bucket_shapes():
  rng = np.random.default_rng(5)
  packed = pack_segs(_layout(rng, 1, 300, 300, 3, (32, 100)), (1, 300, 300, 3))
  assert packed.bucket == (4, 128)
  packed = pack_segs(_layout(rng, 1, 300, 300, 5, (200, 256)), (1, 300, 300, 3))
  assert packed.bucket == (8, 256)
  packed = pack_segs(_layout(rng, 1, 500, 500, 9, (200, 300)), (1, 500, 500, 3))
  assert packed.bucket == (16, 320)
  packed = pack_segs(_layout(rng, 1, 100, 100, 2, (20, 30)), (1, 100, 100, 3),
                     bucket_size=32, max_segments=2)
  assert packed.bucket == (2, 32)
  with pytest.raises(ValueError, match="bucket_size"):
    pack_segs(_layout(rng, 1, 100, 100, 2, (40, 50)), (1, 100, 100, 3),
              bucket_size=32)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_dtype_follows_image(dtype):
  rng = np.random.default_rng(6)
  image = rng.random((1, 32, 32, 3)).astype(dtype)
  segs = _layout(rng, 1, 32, 32, 2, side_range=(8, 16))
  out = segs_paste(image, segs)
  assert out.dtype == jnp.asarray(image).dtype and out.shape == image.shape


@pytest.mark.slow
def test_donated_paste_matches_and_consumes_image():
  rng = np.random.default_rng(7)
  image = rng.random((2, 64, 64, 3)).astype(np.float32)
  packed = jax.device_put(pack_segs(_layout(rng, 2, 64, 64, 3, (10, 40)),
                                    image.shape))
  expected = np.asarray(paste(jnp.asarray(image), packed, feather=3))
  mine = jnp.array(image)
  got = paste(mine, packed, feather=3, donate_image=True)
  np.testing.assert_array_equal(np.asarray(got), expected)
  assert mine.is_deleted()
