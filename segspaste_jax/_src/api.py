"""The node-style public functions: `segs_paste` (the node's `doit`, SEGS in,
JAX array out) and `pack_segs` (SEGS into the packed pytree). Both check
their input through `validate` first."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from segspaste_jax._src import arrays, packing, read_segs, validate
from segspaste_jax._src.paste import paste
from segspaste_jax._src.shard import sharded_paste
from segspaste_jax._src.types import PackedSegs


def segs_paste(image, segs, feather: int = 5, alpha=255, ref_image_opt=None,
               *, feather_mode: str = "node", rgba_mode: str = "composite",
               node_axis_mixup: bool = False, bucket_size: int | None = None,
               max_segments: int | None = None, mesh=None,
               grow=0.0, color_match: str = "none",
               color_strength=1.0) -> jax.Array:
  """Pastes SEGS into an image batch, as the Impact Pack's SEGSPaste node.

  Same inputs as the node's `doit`, same picture out: each SEG's mask is
  feathered with a Gaussian blur (sigma 10, kernel `2 * feather + 1`), scaled
  by `alpha / 255` and used to blend the SEG's crop (or `ref_image_opt` cut at
  its crop region) into every frame, later SEGs over earlier ones, with
  today's Impact Pack's RGB/RGBA rules (see `paste`). Input is
  checked on the host first; the paste itself is one compiled XLA program,
  the same for every feather and every layout of a bucket.

  The call behaves as a pure function: the caller's arrays are never
  written, may be overwritten or freed as soon as the call returns, and the
  result is never written again by the library.

  Args:
    image: `[N, H, W, C]` float array in [0, 1], or uint8 in [0, 255]
      (numpy, torch on any device, or JAX), C in (1, 3, 4).
    segs: torch-style SEGS `((H0, W0), [SEG, ...])`; scale-matched to the
      image when `(H0, W0)` differs from `(H, W)` and neither is 0. Or a
      list of N SEGS, one per image: image `n` takes `segs[n]` as the node
      would, run on that image alone (one program for the whole batch).
    feather: int in 0..100 (with `feather_mode="relative"` a number in
      0..100: the ramp's width in per cent of `sqrt(area)`).
    alpha: number in 0..255.
    ref_image_opt: optional `[N', H, W, C']` of the image's size, C' = C
      or RGB/RGBA for an RGBA/RGB image, N' = 1 (used for every frame) or
      N' >= N, finite (float in [0, 1] or uint8 in [0, 255]); when given,
      pasted pixels come from it.
    feather_mode: "node", "soft_edges" or "relative" (see `paste`).
    rgba_mode: "composite" (today's node) or "legacy" (see `paste`).
    node_axis_mixup: reproduce the node's crop placement under a non-uniform
      scale match (see `pack_segs`).
    bucket_size: see `pack_segs`.
    max_segments: see `pack_segs`.
    mesh: optional `jax.sharding.Mesh` with a `"frames"` axis (e.g.
      `frames_mesh()`): the frames are split across its devices (see
      `sharded_paste`).
    grow: number in -100..100, per cent of `sqrt(area)`: moves the
      relative ramp's 50 % level outward (positive) or inward; 0 in the
      other modes (see `paste`).
    color_match: "none" (the node's picture), "lowfreq", "rct" or "mkl":
      each crop is matched to the frame's pixels under its region (what it
      replaces), with its blend mask as the weights, before it is blended;
      with `ref_image_opt`, the reference's pixels at the region are
      matched to the image's (see `paste` and `match_color`).
    color_strength: number in [0, 1], how far the colours move.

  Returns:
    `[N, H, W, C]` JAX array of `image`'s dtype (a torch bfloat16 tensor on
    the CPU gives float32: numpy has no bfloat16), on the image's device (a
    torch GPU tensor's result is on that GPU); blended in float32 (or
    float64), uint8 results rounded.

  Raises:
    TypeError, ValueError: naming the argument (and SEG index) on bad input.
  """
  opts = validate.options(feather, alpha, feather_mode=feather_mode,
                          rgba_mode=rgba_mode,
                          node_axis_mixup=node_axis_mixup,
                          bucket_size=bucket_size, max_segments=max_segments,
                          grow=grow, color_match=color_match,
                          color_strength=color_strength)
  call = _prepare(image, segs, ref_image_opt, opts, place=mesh is None)
  if mesh is not None:  # host arrays: each process reads only its shards
    out = sharded_paste(call.image, call.packed, ref_image=call.ref,
                        mesh=mesh, **opts.paste_kwargs())
  else:
    out = paste(call.image, call.packed, ref_image=call.ref,
                donate_image=call.owned, **opts.paste_kwargs())
  if call.wait:  # the paste reads the caller's own tensor: done before we go
    out.block_until_ready()
  return arrays.from_unit_float(out) if call.as_uint8 else out


def pack_segs(segs, image_shape, *, bucket_size: int | None = None,
              max_segments: int | None = None, with_crops: bool = True,
              node_axis_mixup: bool = False) -> PackedSegs:
  """Converts torch-style SEGS into a fixed-shape `PackedSegs` (numpy leaves).

  Applies the node's host-side rules: scale match when the SEGS' source size
  differs from the image's (Pillow LANCZOS for crops with 3 or 4 channels,
  bilinear otherwise), and the mask batch rules (per-frame masks when
  `M == N`, bitwise-OR combination when `M > 1` differs from `N`). Masks are
  packed at their own size; `paste` feathers them there and resizes them to
  the pasted pixels' size afterwards, as the node does.

  Given a list of SEGS, one per image (`[segs_0, ..., segs_N-1]`), each
  image's SEGS are read as the node reads them for that image alone (a
  batch of one: crop frame 0, mask batches of `M > 1` combined), and all are
  packed into one shared bucket with a leading image axis (`PackedSegs.
  per_image`), which `paste` takes directly.

  Args:
    segs: `((H0, W0), [SEG, ...])` with numpy/torch/JAX arrays, mixed
      freely; or a list of N of them, one per image.
    image_shape: `(N, H, W, C)` of the image the SEGS will be pasted into.
    bucket_size: padded side of crops and masks; default the largest side
      rounded up to a multiple of 64, at least 128.
    max_segments: padded segment count (per image, for a list); default the
      next power of two, at least 4.
    with_crops: False skips `cropped_image` entirely (what the node does when
      `ref_image_opt` is given); the crops are then left empty.
    node_axis_mixup: scale crop regions as the node does (`y1` by the width's
      factor, `x2` by the height's); only differs for non-uniform scales.

  Returns:
    A `PackedSegs` of new numpy arrays (zero padded, see `PackedSegs`),
    ready for `jax.device_put` or a jitted call.

  Raises:
    TypeError, ValueError: with the argument, the SEG index and what was
      expected, wherever the node would crash or silently misbehave.
  """
  shape = validate.check_image_shape(image_shape, "image_shape")
  opts = validate.options(node_axis_mixup=node_axis_mixup,
                          bucket_size=bucket_size, max_segments=max_segments)
  read = read_segs.read_segs(segs, shape, opts, with_crops=with_crops)
  return packing.pack(read, shape, with_crops=with_crops)


@dataclasses.dataclass(frozen=True)
class _Call:
  """A checked `segs_paste` call, ready for `paste` or `sharded_paste`.

  Attributes:
    image: `[N, H, W, C]` float JAX array in [0, 1]; with `place=False`, the
      caller's array as given (any kind, uint8 included).
    owned: whether `image` is the library's own (it may be donated).
    wait: whether `image` or `ref` may share the caller's memory, so that
      the call must wait for the paste before returning.
    ref: `[N', H, W, C]` reference images like `image`, or None.
    packed: the SEGS, packed for the image (numpy leaves).
    as_uint8: the image came as uint8 and the result goes back as uint8.
  """

  image: Any
  owned: bool
  wait: bool
  ref: Any
  packed: PackedSegs
  as_uint8: bool


def _prepare(image, segs, ref_image_opt, opts: validate.Options, *,
             place: bool = True) -> _Call:
  """Checks a node-style call's arrays and SEGS, then converts them.

  Everything is checked before anything reaches JAX. Then (with `place`)
  the transfer of the image and reference starts before the SEGS are
  packed: XLA copies a host array on its own threads while they are.

  Args:
    image: `[N, H, W, C]` float in [0, 1] or uint8, numpy, torch or JAX.
    segs: torch-style SEGS, or a list of them (one per image).
    ref_image_opt: optional reference images.
    opts: checked options (`validate.options`).
    place: convert the image and reference to JAX arrays here (False: the
      caller places them, e.g. shard by shard on a mesh).

  Raises:
    TypeError, ValueError: naming the argument (and SEG index) on bad input,
      before any array is converted.
  """
  shape = validate.check_image(image, "image")
  if ref_image_opt is not None:
    validate.check_ref_image(ref_image_opt, shape)
  read = read_segs.read_segs(segs, shape, opts,
                             with_crops=ref_image_opt is None)
  as_uint8 = arrays.dtype_of(image) == np.uint8
  owned = wait = False
  ref = ref_image_opt
  if place:
    image, owned, wait = arrays.to_unit_float(image)
    if ref is not None:
      ref, _, wait_ref = arrays.to_unit_float(
          ref[:shape[0]] if ref.shape[0] > shape[0] else ref)
      wait = wait or wait_ref
  # read by the paste only: the crops and masks go to XLA without a copy
  packed = packing.pack(read, shape, with_crops=ref_image_opt is None,
                        paged=True)
  return _Call(image, owned, wait, ref, packed, as_uint8)
