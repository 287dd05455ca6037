"""`detail_segs`: the detailer's round trip, one crop (or batch) at a time.

A detailer cuts every region, resamples it to the model's resolution, runs
the model and resamples the result back to the region's size for the
paste. `crop_segs(..., size=...)`, the model and `resize_to_regions` do
that in three steps, with every crop of every frame at the model's
resolution in memory at once (W2: 128 crops of 512 x 512, 400 MB) and
written into fresh memory on every call. `detail_segs` does the same
steps inside one loop, a batch of crops at a time (cut, resampled up, the
model, resampled back), so that only one batch is ever at the model's
resolution. The values are those of the three steps.

The batch is the trade: one crop at a time on a CPU (the caches hold it,
the way the Impact Pack's detailer runs its model per segment), every crop
at once on an accelerator (no loop: the device stays busy), or any size
the caller gives (a model too large for every crop at once).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax._src import crop as crop_lib
from segspaste_jax._src import model_size
from segspaste_jax._src import trace_checks as checks


def _check_model_output(out, count: int, size, name: str = "model"):
  shape = getattr(out, "shape", None)
  dtype = getattr(out, "dtype", None)
  if (shape is None or len(shape) != 4 or tuple(shape[:3]) != (count, *size)
      or shape[3] < 1):
    raise ValueError(f"{name}: expected it to return [{count}, {size[0]}, "
                     f"{size[1]}, C'] for crops [{count}, {size[0]}, "
                     f"{size[1]}, C], got "
                     f"{type(out).__name__ if shape is None else shape}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"{name}: expected it to return a float array, got "
                    f"dtype {dtype}")


@functools.partial(jax.jit, static_argnames=("model", "bucket", "size", "fit",
                                             "method", "batch"))
def _detail_core(image, regions, model, bucket: int, size, fit: str,
                 method: str, batch: int | None):
  n = image.shape[0]
  sizes = crop_lib.region_extent(regions, bucket)
  visible = crop_lib.visible(regions, sizes, image.shape[1:3], bucket)
  transform = model_size.make_transform(sizes, bucket, size, fit)
  count = regions.shape[0] * n
  per_crop, to_model = crop_lib.model_inputs(image, regions, transform,
                                             method)
  # the model's output, from its shapes alone: checked before it runs, and
  # the way back's weights made in its (promoted) dtype
  out = jax.eval_shape(model, jax.ShapeDtypeStruct(
      (1, *size, image.shape[-1]), jnp.promote_types(image.dtype,
                                                     jnp.float32)))
  _check_model_output(out, 1, size)
  out_dtype = jnp.promote_types(out.dtype, jnp.float32)
  down, d0, d1 = model_size.resampler(transform, method, False, size,
                                      out_dtype)
  per_crop = (per_crop, crop_lib.every_crop((d0, d1), transform, n))

  def run(k: int, args):
    args, (q0, q1) = args
    if k == 1 < count:  # a loop over crops
      crops = to_model(jax.tree.map(lambda q: q[0], args), branch=True)[None]
    else:
      crops = jax.vmap(to_model)(args)
    refined = model(crops)
    _check_model_output(refined, k, size)
    return jax.vmap(down)(refined.astype(out_dtype), q0, q1)

  def batched(k: int):
    def go(per_crop):
      if k >= count:  # one batch: no loop
        return run(count, per_crop)
      m = -(-count // k)
      pad = lambda q: jnp.pad(q, [(0, m * k - count)] + [(0, 0)] * (
          q.ndim - 1)).reshape((m, k) + q.shape[1:])
      out = lax.map(functools.partial(run, k), jax.tree.map(pad, per_crop))
      return out.reshape((m * k,) + out.shape[2:])[:count]
    return go

  if batch is None:
    out = lax.platform_dependent(per_crop, cpu=batched(1),
                                 default=batched(count))
  else:
    out = batched(batch)(per_crop)
  out = out.reshape((regions.shape[0], n) + out.shape[1:])
  return crop_lib.SegCrops(out, sizes, visible)


def detail_segs(image, regions, bucket_size: int, model, *, size,
                fit: str = "stretch", method: str = "lanczos3",
                batch_size: int | None = None) -> crop_lib.SegCrops:
  """Cuts every region, runs `model` on it at `size` and brings it back.

  The values of `crop_segs(image, regions, bucket_size, size=size,
  fit=fit, method=method)`, `model` on its crops and
  `resize_to_regions(..., method=method)`, computed a batch of crops at a
  time in one loop (see the module docstring): only one batch is ever at
  the model's resolution. Jit-compiled, once per `(image shape, S,
  bucket_size, model, size, fit, method, batch_size)`: `model` is a static
  argument, compared by identity (pass the same function, not a new lambda
  per call). Works inside a caller's `jit`; differentiable where `model`
  is.

  Args:
    image: `[N, H, W, C]` floating or integer array (as `crop_segs`).
    regions: `[S, 4]` integer `(x1, y1, x2, y2)`, or `[S, N, 4]` per frame
      (as `crop_segs`).
    bucket_size: static Python int `B`: the crops' side on the way back
      (and the regions' largest side: a concrete region larger than `B` is
      refused, as by `crop_segs(size=...)`).
    model: a JAX-traceable function from crops `[k, h, w, C]` (float, the
      image's value scale, zero outside `transform.content`) to `[k, h, w,
      C']` float; `k` is the batch's size.
    size: static `(h, w)`, the model's resolution.
    fit: static "stretch" or "contain" (as `crop_segs`).
    method: static resampling filter both ways: "lanczos3", "lanczos5",
      "cubic" or "linear".
    batch_size: static crops per call of `model`; None: 1 on a CPU, every
      crop at once (no loop) on an accelerator, chosen per platform inside
      a caller's `jit` (then `model` is traced once for each).

  Returns:
    `SegCrops(crops [S, N, B, B, C'], sizes, visible)`: the model's output
    at each region's size in the top-left corner of its bucket, zeros
    elsewhere, float; `sizes` and `visible` as `crop_segs` gives them.
    `make_packed_segs(regions, masks, result.crops)` and `paste` put it
    back.

  Raises:
    TypeError, ValueError: at trace time, naming the argument: as
      `crop_segs(size=...)`; a `model` that is not callable or returns
      another shape or a non-float dtype; a `batch_size` that is not a
      Python int >= 1.
  """
  bucket = checks.bucket(bucket_size)
  image = checks.image(image)
  regions = checks.regions(regions, per_frame=True)
  if regions.ndim == 3 and regions.shape[1] != image.shape[0]:
    raise ValueError(f"regions: expected [S, N, 4] with N = {image.shape[0]} "
                     f"(the image's frames), got shape {regions.shape}")
  if not callable(model):
    raise TypeError(f"model: expected a function of the crops, got "
                    f"{type(model).__name__}")
  size = checks.model_size(size, bucket)
  crop_lib.check_fits_bucket(regions, bucket)
  fit = checks.choice(fit, "fit", model_size.FITS)
  method = checks.method(method, masks=False)
  batch = None
  if batch_size is not None:
    batch = checks.python_int(batch_size, "batch_size",
                              " (static: crops per call of the model)")
    if batch < 1:
      raise ValueError(f"batch_size: expected >= 1, got {batch}")
  elif not isinstance(image, jax.core.Tracer):
    # concrete: the platform is known, no need to trace both forms
    batch = 1 if model_size.loop_for(image) else regions.shape[0] * (
        image.shape[0])
  return _detail_core(image, regions, model, bucket, size, fit, method, batch)
