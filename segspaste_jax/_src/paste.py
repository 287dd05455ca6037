"""The jit-compiled core: feather, resize and blend packed SEGS into frames.

Everything here is pure `jnp`/`lax` on fixed shapes. Per-segment sizes and
positions, `feather` and `alpha` are traced, so one compiled program serves
every layout of a bucket and every feather (on the CPU form, every feather
of one radius bucket). Segments land in list order, later ones on top, each
written in place with `lax.dynamic_update_slice` into a window of the
bucket's size (`geometry`); frames are handled by broadcasting.

The program comes in two forms of one computation, chosen by `platform`
before tracing and picked in one place, `paste_core`: the straight-line
`accelerator` form (GPUs, TPUs, and whatever is traced or exported) and the
branching `cpu` form (an image known to live on a CPU).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from segspaste_jax._src import accelerator, cpu, platform
from segspaste_jax._src import blend as blend_lib
from segspaste_jax._src import color as color_lib
from segspaste_jax._src import feather as feather_lib
from segspaste_jax._src import geometry as geo_lib
from segspaste_jax._src.types import PackedSegs

# The static `form` of the compiled paste: this, or a `cpu.Form`.
ACCELERATOR = "accelerator"


def check_modes(feather_mode: str, rgba_mode: str) -> bool:
  """`feather_mode` and `rgba_mode` (see `paste`); whether edges are soft."""
  modes = feather_lib.FEATHER_MODES
  if not isinstance(feather_mode, str) or feather_mode not in modes:
    raise ValueError(f"feather_mode: expected one of {modes}, got "
                     f"{feather_mode!r}")
  if not isinstance(rgba_mode, str) or rgba_mode not in blend_lib.RGBA_MODES:
    raise ValueError(f"rgba_mode: expected one of {blend_lib.RGBA_MODES}, "
                     f"got {rgba_mode!r}")
  return feather_mode == "soft_edges"


def paste_core(image, packed: PackedSegs, feather, alpha, ref_image,
               soft_edges=False, *, form, rgba_mode: str = "composite",
               color_match: str = "none", color_strength=1.0):
  """The paste as a traceable function (what `paste` compiles).

  Args:
    image: `[N, H, W, C]` float.
    packed: `PackedSegs` without metadata; crops of channels compatible
      with the image's (`blend.compatible_channels`); with a leading
      image axis (`PackedSegs.per_image`), each image takes its own SEGS.
    feather: int32 scalar in 0..100 (at most `form.max_radius` for the CPU
      form).
    alpha: scalar in [0, 255].
    ref_image: `[N or 1, H, W, C']` float (C' compatible), or None.
    soft_edges: bool scalar (traced): `feather_mode="soft_edges"`.
    form: static, `ACCELERATOR` or a `cpu.Form` (see `form_for`).
    rgba_mode: static, one of `blend.RGBA_MODES`.
    color_match: static, one of `color.COLOR_MATCHES`.
    color_strength: scalar in [0, 1] (traced).

  Returns:
    `[N, H, W, C]` of `image`'s dtype.
  """
  color_lib.check_method(color_match, "color_match", color_lib.COLOR_MATCHES)
  c = image.shape[-1]
  pasted = (packed.crops if ref_image is None else ref_image).shape[-1]
  if not blend_lib.compatible_channels(c, pasted):
    raise ValueError(f"cannot paste {pasted}-channel pixels into a "
                     f"{c}-channel image (see blend.compatible_channels)")
  compute = jnp.promote_types(image.dtype, jnp.float32)
  how = geo_lib.Blend(feather=jnp.asarray(feather, jnp.int32),
                      gain=jnp.asarray(alpha, compute) / 255,
                      soft=jnp.asarray(soft_edges, bool),
                      rule=blend_lib.rule(c, pasted, rgba_mode),
                      compute=compute, color=color_match,
                      strength=jnp.asarray(color_strength, compute))
  if isinstance(form, cpu.Form):
    return cpu.paste(image, packed, how, ref_image, form.max_radius)
  if form != ACCELERATOR:
    raise ValueError(f"form: expected {ACCELERATOR!r} or a cpu.Form, got "
                     f"{form!r}")
  return accelerator.paste(image, packed, how, ref_image)


_STATIC = ("form", "rgba_mode", "color_match")
_paste_jit = jax.jit(paste_core, static_argnames=_STATIC)
_paste_jit_donated = jax.jit(paste_core, static_argnames=_STATIC,
                             donate_argnums=0)


def paste(image, packed: PackedSegs, *, feather=5, alpha=255, ref_image=None,
          feather_mode: str = "node", rgba_mode: str = "composite",
          color_match: str = "none", color_strength=1.0,
          donate_image: bool = False) -> jax.Array:
  """Feathers each packed mask and blends its crop into every frame.

  The node's per-frame, per-segment loop as one XLA program: each
  segment's masks are feathered at their own size, resized to the pasted
  pixels' size, scaled by `alpha / 255` and blended into all frames at once,
  clipped at all four image edges, later segments on top. Works under
  `jax.jit`, `jax.vmap` and `jax.grad`; inputs are assumed valid
  (`segs_paste` and `pack_segs` check them).

  Args:
    image: `[N, H, W, C]` float array, values in [0, 1].
    packed: `PackedSegs` from `pack_segs` for this image's shape (or
      `make_packed_segs`); from a list of SEGS, one per image, every image
      takes its own (`PackedSegs.per_image`: a leading image axis).
    feather: int in 0..100 (traced: no new program per value), blur kernel
      size `2 * feather + 1`.
    alpha: scalar in [0, 255] (traced: differentiable), opacity.
    ref_image: optional `[N, H, W, C']` (or `[1, H, W, C']`); when given,
      the pasted pixels are cut from it at each crop region instead of taken
      from the crops, as the node's `ref_image_opt`.
    feather_mode: "node" (the node's feathering) or "soft_edges" (the same,
      times `feather.edge_ramp`: zero on the border of the pasted
      rectangle, unchanged from `2 * feather` pixels inward). Traced: both
      modes share one program.
    rgba_mode: "composite" (today's node: an RGBA image's alpha is
      composited, `a1 + a2 m (1 - a1)`) or "legacy" (the node before 2025:
      RGBA onto RGBA blends alpha like colour). RGB and RGBA pixels mix
      either way as `blend` describes; 1-channel images take 1-channel
      pixels only.
    color_match: "none" (the node's picture), "lowfreq", "rct" or "mkl":
      before it is blended, each segment's pasted pixels are matched to
      the frame's pixels they replace (the window as it is when the
      segment lands), weighted by the segment's blend mask (see
      `match_color`). With `ref_image`, the reference image's pixels at
      the region are matched to the image's. Static: one program per
      method; "none" adds no work.
    color_strength: number in [0, 1] (traced: differentiable), how far
      the colours move.
    donate_image: paste into `image`'s own buffer instead of a new one; the
      caller's `image` (a JAX array it no longer needs) is then deleted.

  Returns:
    `[N, H, W, C]` array of `image`'s dtype.
  """
  soft = check_modes(feather_mode, rgba_mode)
  color = check_color(color_match, color_strength)
  kernel = _paste_jit_donated if donate_image else _paste_jit
  return kernel(image, packed.strip_meta(), feather, alpha, ref_image, soft,
                **static_args(platform.form_of(image), feather),
                rgba_mode=rgba_mode, **color)


def check_color(color_match: str, color_strength) -> dict:
  """`color_match` and `color_strength` (see `paste`) as the compiled
  core's keyword arguments; none at all for "none", so its program is
  today's."""
  color_lib.check_method(color_match, "color_match", color_lib.COLOR_MATCHES)
  color_lib.check_strength(color_strength, "color_strength")
  if not isinstance(color_strength, jax.core.Tracer) and np.ndim(
      color_strength) != 0:
    raise ValueError(f"color_strength: expected a number in [0, 1], got "
                     f"shape {np.shape(color_strength)}")
  if color_match == "none":
    return {}
  return dict(color_match=color_match, color_strength=color_strength)


def static_args(form: str, feather) -> dict:
  """The static `form` argument of the compiled core for a platform form
  ("cpu" or "accelerator", see `platform`) and a feather."""
  if form == "cpu":
    return dict(form=cpu.Form.for_feather(feather))
  return dict(form=ACCELERATOR)
