"""The one door: checks and converts a node-style call's arguments.

`segs_paste` (with or without a mesh), `stream_segs_paste`, the CLI and the
ComfyUI node all come through `prepare` (streaming through its parts,
`check_scalars` and `validate.check_ref_image`, for the frames it reads as
they arrive). Everything is checked before anything reaches JAX; then the
image and the reference become the library's own JAX arrays
(`arrays.to_device`), so the caller may overwrite its inputs as soon as the
call returns.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from segspaste_jax._src import arrays, packing, validate
from segspaste_jax._src.types import PackedSegs


@dataclasses.dataclass(frozen=True)
class Call:
  """A checked call, ready for `paste` or `sharded_paste`.

  Attributes:
    image: `[N, H, W, C]` float JAX array in [0, 1]; with `place=False`, the
      caller's array as given (any kind, uint8 included).
    owned: whether `image` is the library's own copy (it may be donated).
    wait: whether `image` or `ref` shares the caller's memory (a torch
      tensor), so that the call must wait for the paste before returning.
    ref: `[N', H, W, C]` reference images like `image`, or None.
    packed: the SEGS, packed for the image (numpy leaves).
    feather: int in 0..100.
    alpha: number in 0..255.
    as_uint8: the image came as uint8 and the result goes back as uint8.
    feather_mode, rgba_mode: see `paste`.
  """

  image: Any
  owned: bool
  wait: bool
  ref: Any
  packed: PackedSegs
  feather: int
  alpha: float
  as_uint8: bool
  feather_mode: str = "node"
  rgba_mode: str = "composite"

  @property
  def modes(self) -> dict:
    """The keyword arguments `paste` and `sharded_paste` take for them."""
    return dict(feather_mode=self.feather_mode, rgba_mode=self.rgba_mode)


def check_scalars(feather, alpha) -> tuple[int, float]:
  """The node's `feather` (int 0..100) and `alpha` (0..255)."""
  return validate.check_int(feather, "feather", 0, 100), validate.check_alpha(
      alpha)


def prepare(image, segs, feather, alpha, ref_image_opt=None, *,
            feather_mode: str = "node", rgba_mode: str = "composite",
            node_axis_mixup: bool = False, bucket_size: int | None = None,
            max_segments: int | None = None, place: bool = True) -> Call:
  """Checks a node-style call and converts its arrays.

  Args:
    image: `[N, H, W, C]` float in [0, 1] or uint8, numpy, torch or JAX.
    segs: torch-style SEGS.
    feather, alpha: the node's scalars.
    ref_image_opt: optional reference images.
    feather_mode, rgba_mode: see `paste`.
    node_axis_mixup, bucket_size, max_segments: see `pack_segs`.
    place: convert the image and reference to JAX arrays here (False: the
      caller places them, e.g. shard by shard on a mesh).

  Raises:
    TypeError, ValueError: naming the argument (and SEG index) on bad input,
      before any array is converted.
  """
  shape = validate.check_image(image, "image")
  feather, alpha = check_scalars(feather, alpha)
  validate.check_modes(feather_mode, rgba_mode)
  if ref_image_opt is not None:
    validate.check_ref_image(ref_image_opt, shape)
  packed = packing.pack_segs(segs, shape, with_crops=ref_image_opt is None,
                             node_axis_mixup=node_axis_mixup,
                             bucket_size=bucket_size,
                             max_segments=max_segments)
  as_uint8 = arrays.dtype_of(image) == np.uint8
  owned = wait = False
  ref = ref_image_opt
  if place:
    image, owned, wait = to_unit_float(image)
    if ref is not None:
      ref, _, wait_ref = to_unit_float(ref[:shape[0]] if ref.shape[0]
                                       > shape[0] else ref)
      wait = wait or wait_ref
  return Call(image, owned, wait, ref, packed, feather, alpha, as_uint8,
              feather_mode, rgba_mode)


def to_unit_float(x, own: bool = False) -> tuple[jax.Array, bool, bool]:
  """`x` as a float JAX array in [0, 1]: `(array, owned, wait)` as
  `arrays.to_device(x, own)` says (uint8 becomes a new float array of our
  own)."""
  x, owned, wait = arrays.to_device(x, own)
  if x.dtype == np.uint8:
    return arrays.unit_float(x), True, wait
  return x, owned, wait
