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

from segspaste_jax._src import accelerator, cpu, platform, trace_checks
from segspaste_jax._src import blend as blend_lib
from segspaste_jax._src import geometry as geo_lib
from segspaste_jax._src import validate
from segspaste_jax._src.types import COLOR_MATCHES, PackedSegs
from segspaste_jax._src.validate import check_choice, check_grow, check_modes

# The static `form` of the compiled paste: this, or a `cpu.Form`.
ACCELERATOR = "accelerator"


def paste_core(image, packed: PackedSegs, feather, alpha, ref_image,
               soft_edges=False, grow=0.0, *, form,
               rgba_mode: str = "composite", relative: bool = False,
               color_match: str = "none", color_strength=1.0):
  """The paste as a traceable function (what `paste` compiles).

  Args:
    image: `[N, H, W, C]` float.
    packed: `PackedSegs` without metadata; crops of channels compatible
      with the image's (`blend.compatible_channels`); with a leading
      image axis (`PackedSegs.per_image`), each image takes its own SEGS.
    feather: int32 scalar in 0..100 (at most `form.max_radius` for the CPU
      form); a float (per cent) when `relative`.
    alpha: scalar in [0, 255].
    ref_image: `[N or 1, H, W, C']` float (C' compatible), or None.
    soft_edges: bool scalar (traced): `feather_mode="soft_edges"`.
    grow: float scalar (traced) in -100..100, read only when `relative`.
    form: static, `ACCELERATOR` or a `cpu.Form` (see `form_for`).
    rgba_mode: static, one of `blend.RGBA_MODES`.
    relative: static, `feather_mode="relative"`: `feather` is then a float
      (per cent, see `relative.relative_weights`), traced like `grow`.
    color_match: static, one of `color.COLOR_MATCHES`.
    color_strength: scalar in [0, 1] (traced).

  Returns:
    `[N, H, W, C]` of `image`'s dtype.
  """
  check_choice(color_match, "color_match", COLOR_MATCHES)
  c = image.shape[-1]
  pasted = (packed.crops if ref_image is None else ref_image).shape[-1]
  if not blend_lib.compatible_channels(c, pasted):
    raise ValueError(f"cannot paste {pasted}-channel pixels into a "
                     f"{c}-channel image (see blend.compatible_channels)")
  compute = jnp.promote_types(image.dtype, jnp.float32)
  how = geo_lib.Blend(
      feather=jnp.asarray(feather, compute if relative else jnp.int32),
      gain=jnp.asarray(alpha, compute) / 255,
      soft=jnp.asarray(soft_edges, bool),
      rule=blend_lib.rule(c, pasted, rgba_mode), compute=compute,
      relative=bool(relative), grow=jnp.asarray(grow, compute),
      color=color_match, strength=jnp.asarray(color_strength, compute))
  if isinstance(form, cpu.Form):
    return cpu.paste(image, packed, how, ref_image, form.max_radius)
  if form != ACCELERATOR:
    raise ValueError(f"form: expected {ACCELERATOR!r} or a cpu.Form, got "
                     f"{form!r}")
  return accelerator.paste(image, packed, how, ref_image)


_STATIC = ("form", "rgba_mode", "relative", "color_match")
_paste_jit = jax.jit(paste_core, static_argnames=_STATIC)
_paste_jit_donated = jax.jit(paste_core, static_argnames=_STATIC,
                             donate_argnums=0)


def paste(image, packed: PackedSegs, *, feather=5, alpha=255, ref_image=None,
          feather_mode: str = "node", rgba_mode: str = "composite",
          grow=0.0, color_match: str = "none", color_strength=1.0,
          donate_image: bool = False) -> jax.Array:
  """Feathers each packed mask and blends its crop into every frame.

  The node's per-frame, per-segment loop as one XLA program: each
  segment's masks are feathered at their own size, resized to the pasted
  pixels' size, scaled by `alpha / 255` and blended into all frames at once,
  clipped at all four image edges, later segments on top. Works under
  `jax.jit`, `jax.vmap` and `jax.grad`. Shapes and dtypes are checked when
  the call is traced (`trace_checks.paste_args`: free at run time); values
  are assumed valid (`segs_paste` and `pack_segs` check them).

  Args:
    image: `[N, H, W, C]` float array, values in [0, 1]. uint8 is refused
      (`TypeError` with the conversion to use; `segs_paste` takes uint8).
    packed: `PackedSegs` from `pack_segs` for this image's shape (or
      `make_packed_segs`); from a list of SEGS, one per image, every image
      takes its own (`PackedSegs.per_image`: a leading image axis).
    feather: int in 0..100 (traced: no new program per value), blur kernel
      size `2 * feather + 1`; with `feather_mode="relative"`, a number in
      0..100: the ramp's 10 %-90 % width in per cent of the square root of
      the mask's area.
    alpha: scalar in [0, 255] (traced: differentiable), opacity.
    ref_image: optional float `[N, H, W, C']` (or `[1, H, W, C']`); when
      given, the pasted pixels are cut from it at each crop region instead
      of taken from the crops, as the node's `ref_image_opt`.
    feather_mode: "node" (the node's feathering) or "soft_edges" (the same,
      times `feather.edge_ramp`: zero on the border of the pasted
      rectangle, unchanged from `2 * feather` pixels inward). Traced: both
      modes share one program. "relative": a ramp sized to each mask
      (`feather` per cent of `sqrt(area)` wide, moved by `grow`, zero on
      the pasted rectangle's border; see `relative_weights`): a program of
      its own, one for all feathers and grows.
    rgba_mode: "composite" (today's node: an RGBA image's alpha is
      composited, `a1 + a2 m (1 - a1)`) or "legacy" (the node before 2025:
      RGBA onto RGBA blends alpha like colour). RGB and RGBA pixels mix
      either way as `blend` describes; 1-channel images take 1-channel
      pixels only.
    grow: number in -100..100 (traced), per cent of `sqrt(area)`: moves the
      relative ramp's 50 % level outward (positive) or inward (negative)
      off the mask's edge. Must be 0 in the other modes.
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

  Raises:
    TypeError, ValueError: naming the argument, where the shapes or dtypes
      do not fit together (see `trace_checks.paste_args`).
  """
  soft = check_modes(feather_mode, rgba_mode)
  grow = check_grow(grow, feather_mode)
  color = check_color(color_match, color_strength)
  trace_checks.paste_args(image, packed, ref_image)
  relative = feather_mode == "relative"
  if relative:  # one argument type for ints and floats: one program
    feather = _float32(feather)
  grow = _float32(grow)
  kernel = _paste_jit_donated if donate_image else _paste_jit
  return kernel(image, packed.strip_meta(), feather, alpha, ref_image, soft,
                grow, **static_args(platform.form_of(image), feather,
                                    relative), rgba_mode=rgba_mode, **color)


def _float32(x):
  """`x` as a float32 scalar argument of the compiled core: a numpy scalar
  for a number (converting it with `jnp` would run a program of its own on
  some JAX versions), a float32 array otherwise (traced values included)."""
  if isinstance(x, (int, float, np.number)) and not isinstance(x, bool):
    return np.float32(x)
  return jnp.asarray(x, jnp.float32)


def check_color(color_match: str, color_strength) -> dict:
  """`color_match` and `color_strength` (see `paste`) as the compiled
  core's keyword arguments; none at all for "none", so its program is
  today's."""
  validate.check_color(color_match, color_strength)
  if color_match == "none":
    return {}
  return dict(color_match=color_match, color_strength=color_strength)


def static_args(form: str, feather, relative: bool = False) -> dict:
  """The static arguments of the compiled core for a platform form ("cpu"
  or "accelerator", see `platform`), a feather and whether the mode is
  "relative" (whose CPU form takes no radius bucket: one program for all
  feathers)."""
  if relative:
    form = (cpu.Form(cpu.RADIUS_BUCKETS[-1]) if form == "cpu"
            else ACCELERATOR)
    return dict(form=form, relative=True)
  if form == "cpu":
    return dict(form=cpu.Form.for_feather(feather))
  return dict(form=ACCELERATOR)
