"""`detail_segs`: the round trip a batch of crops at a time.

Its contract is the three steps it fuses: `crop_segs(size=...)`, the model
on every crop, `resize_to_regions` (each tested against float64 references
of its own in test_crop.py and test_model_resolution.py). Here it is held
to them on seeded random layouts (regions inside, across every edge, off
the image, empty), both fits, shared and per-frame regions, every batch
size (one, a remainder, all at once), plus its own cut against numpy, its
errors, its compile count and the shape of its program per platform.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_regions, runtime_control_flow
from segspaste_jax import crop_segs, detail_segs, resize_to_regions
from segspaste_jax._src import crop as crop_lib

N, H, W, C = 3, 30, 36, 3
B = 20
S = 6
SIZE = (12, 16)


def model(x):
  """A model that is not the identity: per pixel and across channels."""
  return 0.7 * x + 0.2 * jnp.tanh(2 * x[..., ::-1])


def _three_steps(image, regions, fit, method="lanczos3", fn=model):
  cut = crop_segs(image, regions, B, size=SIZE, fit=fit, method=method)
  s, n = cut.crops.shape[:2]
  refined = fn(cut.crops.reshape((s * n,) + cut.crops.shape[2:]))
  refined = refined.reshape((s, n) + refined.shape[1:])
  return resize_to_regions(refined, cut.transform, method=method)


def _problem(seed, per_frame=False):
  rng = np.random.default_rng(seed)
  image = rng.random((N, H, W, C)).astype(np.float32)
  if per_frame:
    regions = np.stack([random_regions(rng, S, H, W, B - 5)
                        for _ in range(N)], axis=1)
  else:
    regions = random_regions(rng, S, H, W, B - 5)
  return image, regions


@pytest.mark.parametrize("fit", ["stretch", "contain"])
@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize("batch_size", [None, 1, 4, 7, 100])
def test_equals_the_three_steps(fit, per_frame, batch_size):
  for seed in range(3):
    image, regions = _problem(seed, per_frame)
    want = _three_steps(image, regions, fit)
    got = detail_segs(image, regions, B, model, size=SIZE, fit=fit,
                      batch_size=batch_size)
    plain = crop_segs(image, regions, B)
    assert got.crops.shape == (S, N, B, B, C)
    np.testing.assert_allclose(np.asarray(got.crops), np.asarray(want),
                               atol=1e-6, rtol=0)
    np.testing.assert_array_equal(got.sizes, plain.sizes)
    np.testing.assert_array_equal(got.visible, plain.visible)


def test_other_methods_dtypes_and_channels():
  image, regions = _problem(7)
  as_int = (image * 255).astype(np.uint8)
  grey = lambda x: jnp.mean(x, axis=-1, keepdims=True)  # C' = 1
  for img, method, fn in ((image, "linear", model), (image, "cubic", grey),
                          (as_int, "lanczos5", lambda x: x / 255)):
    want = _three_steps(img, regions, "contain", method, fn)
    got = detail_segs(img, regions, B, fn, size=SIZE, fit="contain",
                      method=method)
    assert got.crops.dtype == want.dtype == jnp.float32
    assert got.crops.shape == want.shape
    np.testing.assert_allclose(np.asarray(got.crops), np.asarray(want),
                               atol=1e-5, rtol=0)


def test_small_image_and_an_identity_model():
  # an image smaller than the bucket; at the regions' own size both ways
  rng = np.random.default_rng(3)
  image = rng.random((2, 9, 14, 3)).astype(np.float32)
  regions = np.array([[-3, -2, 8, 7], [6, 1, 14, 9], [0, 0, 14, 9],
                      [2, 3, 2, 8]], np.int32)
  got = detail_segs(image, regions, B, lambda x: x, size=SIZE)
  want = _three_steps(image, regions, "stretch", fn=lambda x: x)
  np.testing.assert_allclose(np.asarray(got.crops), np.asarray(want),
                             atol=1e-6, rtol=0)


def test_cut_one_against_numpy():
  """The loop's cut (no padded copy) pixel by pixel: image pixel `(y1 + u,
  x1 + v)`, zero off the image and past the region."""
  rng = np.random.default_rng(11)
  image = rng.random((2, 13, 17, 2)).astype(np.float32)
  for bucket in (5, 16, 20):
    regions = random_regions(rng, 12, 13, 17, bucket)
    extent = np.clip(np.stack([regions[:, 3] - regions[:, 1],
                               regions[:, 2] - regions[:, 0]], -1), 0, bucket)
    for k, (x1, y1, _, _) in enumerate(regions):
      for f in range(2):
        got = np.asarray(crop_lib.cut_one(jnp.asarray(image), regions[k],
                                        extent[k], f, bucket))
        want = np.zeros((bucket, bucket, 2), np.float32)
        for u in range(extent[k, 0]):
          for v in range(extent[k, 1]):
            if 0 <= y1 + u < 13 and 0 <= x1 + v < 17:
              want[u, v] = image[f, y1 + u, x1 + v]
        np.testing.assert_array_equal(got, want)


def test_gradient_matches_the_three_steps():
  image, regions = _problem(5)
  weights = jnp.asarray(np.random.default_rng(6).random((S, N, B, B, C)),
                        jnp.float32)
  loss_fused = lambda x: jnp.sum(weights * detail_segs(
      x, regions, B, model, size=SIZE, batch_size=2).crops)
  loss_steps = lambda x: jnp.sum(weights * _three_steps(x, regions,
                                                        "stretch"))
  image = jnp.asarray(image)
  got, want = jax.grad(loss_fused)(image), jax.grad(loss_steps)(image)
  assert np.all(np.isfinite(np.asarray(got)))
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-4,
                             rtol=1e-4)


def test_compiles_once_for_many_layouts(compile_counter):
  image, _ = _problem(0)
  rng = np.random.default_rng(1)
  layouts = [random_regions(rng, S, H, W, B - 5) for _ in range(8)]
  fn = lambda x: x * 0.5  # a model of this test's own: nothing cached yet
  compile_counter.clear()
  outs = [np.asarray(detail_segs(image, r, B, fn, size=SIZE).crops)
          for r in layouts]
  assert len(compile_counter) == 1
  assert len({o.tobytes() for o in outs}) == len(layouts)


def _wrong_shape(x):
  return x[:, :-1]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(model=3), TypeError, "model: expected a function"),
    (dict(model=_wrong_shape), ValueError, r"model: expected it to return"),
    (dict(model=lambda x: (x * 255).astype(jnp.int32)), TypeError,
     "model: expected it to return a float array"),
    (dict(batch_size=0), ValueError, "batch_size: expected >= 1"),
    (dict(batch_size=2.0), TypeError, "batch_size: expected a Python int"),
    (dict(size=(12,)), TypeError, "size: expected two Python ints"),
    (dict(fit="cover"), ValueError, "fit"),
    (dict(method="nearest"), ValueError, "method"),
    (dict(regions=np.zeros((S, N + 1, 4), np.int32)), ValueError,
     r"regions: expected \[S, N, 4\] with N = 3"),
])
def test_bad_arguments(kwargs, error, match):
  image, regions = _problem(0)
  args = dict(model=model, regions=regions, size=SIZE, fit="stretch",
              method="lanczos3", batch_size=None)
  args.update(kwargs)
  fn, regions = args.pop("model"), args.pop("regions")
  with pytest.raises(error, match=match):
    detail_segs(image, regions, B, fn, **args)


def test_region_larger_than_the_bucket_is_named():
  image, regions = _problem(0)
  regions = regions.copy()
  regions[4] = (0, 0, B + 3, 5)
  with pytest.raises(ValueError, match=r"regions\[4\]: a 5 x 23 region"):
    detail_segs(image, regions, B, model, size=SIZE)


def test_program_loops_on_the_cpu_only():
  """Concrete CPU arrays: a loop over crops, the model called with one crop
  at a time. Traced and exported for CUDA (batch_size left to the
  platform): every crop at once, no loop and no branch; a batch size the
  caller gives is a loop everywhere."""
  image, regions = _problem(0)
  seen = []

  def recording(x):
    seen.append(x.shape[0])
    return model(x)

  cpu = jax.device_put(image, jax.devices("cpu")[0])
  detail_segs(cpu, regions, B, recording, size=SIZE)
  assert set(seen) == {1}
  loop = jax.jit(lambda x: detail_segs(x, regions, B, model, size=SIZE,
                                       batch_size=1).crops)
  assert "stablehlo.while" in loop.lower(image).as_text()
  spec = jax.ShapeDtypeStruct(image.shape, jnp.float32)
  traced = jax.jit(lambda x: detail_segs(x, regions, B, model,
                                         size=SIZE).crops)
  cuda = jax.export.export(traced, platforms=["cuda"])(spec).mlir_module()
  assert not runtime_control_flow(cuda)
  batched = jax.jit(lambda x: detail_segs(x, regions, B, model, size=SIZE,
                                          batch_size=4).crops)
  cuda = jax.export.export(batched, platforms=["cuda"])(spec).mlir_module()
  assert "stablehlo.while" in cuda


@pytest.mark.parametrize("batch_size", [4, 16, 64])
def test_every_call_gets_exactly_the_batch_size(batch_size):
  """A model that takes one batch size only (an exported one, say) works:
  every call, the last padded, has `batch_size` crops, also where that is
  more than the crops there are."""
  image, regions = _problem(2)
  seen = []

  def fixed(x):
    seen.append(x.shape[0])
    if x.shape[0] != batch_size:
      raise ValueError(f"only batches of {batch_size}")
    return model(x)

  got = detail_segs(image, regions, B, fixed, size=SIZE,
                    batch_size=batch_size)
  assert set(seen) == {batch_size}
  np.testing.assert_allclose(np.asarray(got.crops),
                             np.asarray(_three_steps(image, regions,
                                                     "stretch")),
                             atol=1e-6, rtol=0)


def test_one_crop_and_no_segments():
  image, regions = _problem(4)
  one_image = image[:1]
  got = detail_segs(one_image, regions[:1], B, model, size=SIZE)
  want = _three_steps(one_image, regions[:1], "stretch")
  np.testing.assert_allclose(np.asarray(got.crops), np.asarray(want),
                             atol=1e-6, rtol=0)
  none = detail_segs(image, regions[:0], B, model, size=SIZE)
  assert none.crops.shape == (0, N, B, B, C)


def test_low_and_high_precision_models():
  """A model in float16 comes back in float32; under x64 a float64 image
  stays float64 with a float64 model."""
  image, regions = _problem(8)
  half = lambda x: model(x).astype(jnp.float16)
  got = detail_segs(image, regions, B, half, size=SIZE)
  want = _three_steps(image, regions, "stretch", fn=half)
  assert got.crops.dtype == want.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got.crops), np.asarray(want),
                             atol=1e-6, rtol=0)
  with jax.enable_x64(True):
    wide = image.astype(np.float64)
    got = detail_segs(wide, regions, B, model, size=SIZE)
    want = _three_steps(wide, regions, "stretch")
    assert got.crops.dtype == want.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got.crops), np.asarray(want),
                               atol=1e-12, rtol=0)


def test_traced_regions_parameters_and_gradients_inside_jit():
  """Inside a caller's jit with traced regions and a model over traced
  parameters (the default batch, chosen per platform): the three steps'
  values and gradients, for the image and the parameters."""
  image, regions = _problem(9)

  def net(p, x):
    return p[0] * x + p[1] * jnp.tanh(2 * x[..., ::-1])

  params = jnp.asarray([0.7, 0.2], jnp.float32)
  weights = jnp.asarray(np.random.default_rng(3).random((S, N, B, B, C)),
                        jnp.float32)

  @jax.jit
  def fused(x, r, p):
    return jnp.sum(weights * detail_segs(
        x, r, B, functools.partial(net, p), size=SIZE).crops)

  @jax.jit
  def steps(x, r, p):
    return jnp.sum(weights * _three_steps(x, r, "stretch",
                                          fn=functools.partial(net, p)))

  np.testing.assert_allclose(float(fused(image, regions, params)),
                             float(steps(image, regions, params)), rtol=1e-6)
  for arg in (0, 2):
    got = jax.grad(fused, argnums=arg)(image, regions, params)
    want = jax.grad(steps, argnums=arg)(image, regions, params)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4,
                               atol=1e-4)


def test_an_unhashable_model_and_identity(compile_counter):
  """A model object that cannot be hashed (a module holding arrays) is
  taken, by identity: the same object compiles once, another anew."""

  class Module:
    __hash__ = None

    def __init__(self, scale):
      self.scale = jnp.float32(scale)

    def __call__(self, x):
      return x * self.scale

  image, regions = _problem(10)
  first, second = Module(0.5), Module(0.25)
  a = detail_segs(image, regions, B, first, size=SIZE).crops
  compile_counter.clear()
  again = detail_segs(image, regions[::-1], B, first, size=SIZE).crops
  assert not compile_counter  # the same object: the same program
  b = detail_segs(image, regions, B, second, size=SIZE).crops
  assert compile_counter  # another object: a program of its own
  np.testing.assert_allclose(np.asarray(b), np.asarray(a) / 2, atol=1e-6)
  np.testing.assert_allclose(np.asarray(again), np.asarray(a)[::-1],
                             atol=1e-6)
