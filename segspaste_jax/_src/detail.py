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


class _Model:
  """The model as a static argument of the compiled core, hashed and
  compared by identity (a model object that is not hashable, such as a
  module holding arrays, works too; the compiled program holds it, so its
  `id` is not reused while cached)."""

  __slots__ = ("fn",)

  def __init__(self, fn):
    self.fn = fn

  def __hash__(self):
    return id(self.fn)

  def __eq__(self, other):
    return isinstance(other, _Model) and other.fn is self.fn


def _check_model_output(out, count: int, size):
  shape = getattr(out, "shape", None)
  dtype = getattr(out, "dtype", None)
  if (shape is None or len(shape) != 4 or tuple(shape[:3]) != (count, *size)
      or shape[3] < 1):
    raise ValueError(f"model: expected it to return [{count}, {size[0]}, "
                     f"{size[1]}, C'] for crops [{count}, {size[0]}, "
                     f"{size[1]}, C], got "
                     f"{type(out).__name__ if shape is None else shape}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"model: expected it to return a float array, got "
                    f"dtype {dtype}")


@functools.partial(jax.jit, static_argnames=("model", "bucket", "size", "fit",
                                             "method", "batch"))
def _detail_core(image, regions, model: _Model, bucket: int, size, fit: str,
                 method: str, batch: int | None):
  n, c = image.shape[0], image.shape[-1]
  transform = model_size.make_transform(
      crop_lib.region_extent(regions, bucket), bucket, size, fit)
  visible = crop_lib.visible(regions, transform.sizes, image.shape[1:3],
                             bucket)
  count = regions.shape[0] * n
  per_crop, to_model, dtype = crop_lib.model_inputs(image, regions,
                                                    transform, method)
  # The batches: `batch` crops a call, or (None) one on a CPU and every crop
  # at once elsewhere. The model's output is checked from its shapes alone
  # for each before anything runs; the way back's weights are made in the
  # output's dtype (promoted to float).
  batches = (batch,) if batch is not None else (1, max(count, 1))
  outs = [jax.eval_shape(model.fn, jax.ShapeDtypeStruct((k, *size, c),
                                                        dtype))
          for k in batches]
  for k, out in zip(batches, outs):
    _check_model_output(out, k, size)
  out_dtype = jnp.promote_types(outs[0].dtype, jnp.float32)
  down, d0, d1 = model_size.resampler(transform, method, False, size,
                                      out_dtype)
  per_crop = (per_crop, model_size.every_crop((d0, d1), transform, n))

  def run(k: int, looped: bool, args):
    args, (q0, q1) = args
    if k == 1 and looped:  # one crop at a time: the cut in its branch
      crops = to_model(jax.tree.map(lambda q: q[0], args), branch=True)[None]
    else:
      crops = jax.vmap(to_model)(args)
    refined = model.fn(crops)  # its shape and dtype checked above
    return jax.vmap(down)(refined.astype(out_dtype), q0, q1)

  def batched(k: int):
    m = -(-count // k)  # calls of the model; the last batch padded

    def go(per_crop):
      pad = lambda q: jnp.pad(q, [(0, m * k - count)] + [(0, 0)] * (
          q.ndim - 1)).reshape((m, k) + q.shape[1:])
      per_call = jax.tree.map(pad, per_crop)
      if m == 1:  # one call: no loop
        out = run(k, False, jax.tree.map(lambda q: q[0], per_call))[None]
      else:
        out = lax.map(functools.partial(run, k, True), per_call)
      return out.reshape((m * k,) + out.shape[2:])[:count]
    return go

  if batch is None:
    out = lax.platform_dependent(per_crop, cpu=batched(1),
                                 default=batched(max(count, 1)))
  else:
    out = batched(batch)(per_crop)
  out = out.reshape((regions.shape[0], n) + out.shape[1:])
  return crop_lib.SegCrops(out, transform.sizes, visible)


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
  argument, compared by identity (`is`: pass the same function each call,
  not a new lambda, or every call compiles anew). Works inside a caller's
  `jit` (a `functools.partial` over traced parameters is fine there);
  differentiable where `model` is.

  `model` is traced once for each batch size it is called with, to check
  its output's shape and dtype before it runs, and then in the program:
  once, or, inside a caller's `jit` with `batch_size=None`, once for each
  platform form. The last batch is padded with empty crops (zeros) to the
  batch size, and their results dropped: a model whose output for one
  crop depends on the others in its batch sees them.

  Args:
    image: `[N, H, W, C]` floating or integer array (as `crop_segs`).
    regions: `[S, 4]` integer `(x1, y1, x2, y2)`, or `[S, N, 4]` per frame
      (as `crop_segs`).
    bucket_size: static Python int `B`: the crops' side on the way back
      (and the regions' largest side: a concrete region larger than `B` is
      refused, as by `crop_segs(size=...)`).
    model: a JAX-traceable function from crops `[k, h, w, C]` (float, the
      image's value scale; with `fit="contain"`, zeros around the region)
      to `[k, h, w, C']` float; `k` is the batch's size.
    size: static `(h, w)`, the model's resolution.
    fit: static "stretch" or "contain" (as `crop_segs`).
    method: static resampling filter both ways: "lanczos3", "lanczos5",
      "cubic" or "linear".
    batch_size: static crops per call of `model` (every call gets exactly
      that many); None: 1 on a CPU (a loop over crops), every crop at once
      (no loop) on an accelerator, chosen per platform inside a caller's
      `jit`.

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
  bucket, image, regions = crop_lib.check_cut_args(image, regions,
                                                   bucket_size)
  if not callable(model):
    raise TypeError(f"model: expected a function of the crops, got "
                    f"{type(model).__name__}")
  size, fit, method = crop_lib.check_model_args(regions, bucket, size, fit,
                                                method)
  batch = None
  if batch_size is not None:
    batch = checks.python_int(batch_size, "batch_size",
                              " (static: crops per call of the model)")
    if batch < 1:
      raise ValueError(f"batch_size: expected >= 1, got {batch}")
  elif not isinstance(image, jax.core.Tracer):
    # concrete: the platform is known, no need to trace both forms
    batch = 1 if model_size.loop_for(image) else max(
        regions.shape[0] * image.shape[0], 1)
  return _detail_core(image, regions, _Model(model), bucket, size, fit,
                      method, batch)
