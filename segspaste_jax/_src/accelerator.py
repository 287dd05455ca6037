"""The accelerator form of the paste: straight-line code for GPUs and TPUs.

The masks of all segments are feathered, resized to the pasted pixels' size
and cut to their windows at once (`vmap` of two matrix products per
segment), then the segments are blended in list order by code unrolled at
trace time over the static slot count: no loop, no branch, so nothing waits
on a predicate read back to the host. Padding slots and segments with
nothing to paste blend with a zero mask, and their window is written back
unchanged. One SEGS per image (`PackedSegs.per_image`) is a `vmap` of the
same over images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from segspaste_jax._src import feather as feather_lib
from segspaste_jax._src import geometry as geo_lib
from segspaste_jax._src import relative as relative_lib
from segspaste_jax._src.types import PackedSegs


def paste(image, packed: PackedSegs, how: geo_lib.Blend, ref_image):
  """The paste of `paste_core`, accelerator form.

  Args:
    image: `[N, H, W, C]` float.
    packed: `PackedSegs` (one SEGS, or one per image with a leading image
      axis).
    how: the shared `geometry.Blend`.
    ref_image: `[N or 1, H, W, C']` float, or None.

  Returns:
    `[N, H, W, C]` of `image`'s dtype.
  """
  if packed.per_image:
    return _per_image(image, packed, how, ref_image)
  n, h, w, _ = image.shape
  window = geo_lib.window_size(packed.masks.shape[-1], (h, w))
  geo = geo_lib.geometry(packed, (h, w), window, ref_image is not None)
  crops = geo_lib.frames_of(packed.crops, n)

  # Feathering, resizing and cutting every segment's masks to its window
  # does not depend on the order: all segments at once.
  def one(mask, mask_hw, ref_hw, dy, dx):
    mask = mask.astype(how.compute)
    if how.relative:  # the ramp at the mask's size, then resized and cut
      r, edge = relative_lib.segment_weights(mask, mask_hw, ref_hw, window,
                                             (dy, dx), how.feather, how.grow)
      return edge * feather_lib.feathered_window(r, mask_hw, ref_hw, (dy, dx),
                                                 window, jnp.int32(0))
    m = feather_lib.feathered_window(mask, mask_hw, ref_hw, (dy, dx), window,
                                     how.feather)
    return m * feather_lib.edge_ramp(window, (dy, dx), ref_hw, how.feather,
                                     how.soft)

  masks = jax.vmap(one)(packed.masks, geo.mask_hw, geo.ref_hw, geo.dy, geo.dx)
  masks = masks * jnp.where(geo.active, how.gain, 0)[:, None, None, None]
  frames = image
  for i in range(masks.shape[0]):  # unrolled while tracing: in list order
    ref = geo_lib.pasted_window(i, geo, crops, ref_image, window)
    inside = geo_lib.inside(window, geo.dy[i], geo.dx[i], geo.ref_hw[i])
    frames = geo_lib.blend_window(frames, geo.ys[i], geo.xs[i], masks[i], ref,
                                  inside, how, size=geo.ref_hw[i])
  return frames


def _per_image(image, packed: PackedSegs, how, ref_image):
  """Every image alone with its own SEGS (a batch of one), `vmap` over
  images; a single reference frame is shared by all of them."""
  shared_ref = ref_image is not None and ref_image.shape[0] == 1

  def one(args):
    img, p, ref = args
    ref = ref_image if shared_ref else None if ref is None else ref[None]
    return paste(img[None], p, how, ref)[0]

  refs = (None if ref_image is None or shared_ref
          else ref_image[:image.shape[0]])
  return jax.vmap(one)((image, packed, refs))
