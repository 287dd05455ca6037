"""`segs_paste`: the node's `doit` as one function, SEGS in, JAX array out."""

from __future__ import annotations

import numpy as np

from segspaste_jax import convert, workspace
from segspaste_jax.paste import paste, paste_into
from segspaste_jax.shard import sharded_paste


def segs_paste(image, segs, feather: int = 5, alpha=255, ref_image_opt=None,
               *, node_axis_mixup: bool = False, bucket_size: int | None = None,
               max_segments: int | None = None, mesh=None):
  """Pastes SEGS into an image batch, as the Impact Pack's SEGSPaste node.

  Same inputs as the node's `doit`, same picture out: each SEG's mask is
  feathered with a Gaussian blur (sigma 10, kernel `2 * feather + 1`), scaled
  by `alpha / 255` and used to blend the SEG's crop (or `ref_image_opt` cut at
  its crop region) into every frame, later SEGs over earlier ones. Input is
  checked on the host first; the paste itself is one compiled XLA program.

  Args:
    image: `[N, H, W, C]` float array in [0, 1], or uint8 in [0, 255]
      (numpy, torch or JAX), C in (1, 3, 4). Never modified.
    segs: torch-style SEGS `((H0, W0), [SEG, ...])`; scale-matched to the
      image when `(H0, W0)` differs from `(H, W)` and neither is 0.
    feather: int in 0..100.
    alpha: number in 0..255.
    ref_image_opt: optional `[N, H, W, C]` (or `[1, H, W, C]`) of the image's
      size and channels, finite (float in [0, 1] or uint8 in [0, 255]);
      when given, pasted pixels come from it.
    node_axis_mixup: reproduce the node's crop placement under a non-uniform
      scale match (see `pack_segs`).
    bucket_size: see `pack_segs`.
    max_segments: see `pack_segs`.
    mesh: optional `jax.sharding.Mesh` with a `"frames"` axis (e.g.
      `frames_mesh()`): the frames are split across its devices (see
      `sharded_paste`).

  Returns:
    `[N, H, W, C]` JAX array of `image`'s dtype; blended in float32 (or
    float64), uint8 results rounded.

  Raises:
    TypeError, ValueError: naming the argument (and SEG index) on bad input.
  """
  image = convert.check_image(image, "image")
  as_uint8 = image.dtype == np.uint8
  n, h, w, c = image.shape
  feather = convert.check_int(feather, "feather", 0, 100)
  alpha = convert.check_alpha(alpha)
  ref = None
  if ref_image_opt is not None:
    ref = convert.check_image(ref_image_opt, "ref_image_opt")
    if ref.shape[1:] != (h, w, c) or 1 < ref.shape[0] < n:
      raise ValueError(
          f"ref_image_opt: expected [N', {h}, {w}, {c}] with N' = 1 or "
          f"N' >= {n} (the image's frames), got shape {tuple(ref.shape)}")
    ref = convert.to_unit_float(ref[:n] if ref.shape[0] > n else ref)
    # Pasted pixels must be finite, as crops must: the blend multiplies the
    # reference by the mask, and 0 * NaN would leak outside the crop region.
    convert.check_finite(np.asarray(ref), "ref_image_opt")
  # Every check (pack_segs's included) runs before anything reaches JAX.
  packed = convert.pack_segs(segs, image.shape, with_crops=ref is None,
                             node_axis_mixup=node_axis_mixup,
                             bucket_size=bucket_size, max_segments=max_segments,
                             zero_padding=False)
  image = convert.to_unit_float(image)  # uint8: / 255, float32
  if mesh is not None:  # host arrays: each process reads only its shards
    out = sharded_paste(image, packed, feather=feather, alpha=alpha,
                        ref_image=ref, mesh=mesh)
  else:
    # Host arrays go to the jitted paste as they are: it shares aligned
    # ones (the packed crops and masks) without copying them.
    ref = None if ref is None else convert.for_xla(ref)
    if workspace.worth_it(image.shape, image.dtype):
      out = _paste_reusing_output(image, packed, feather, alpha, ref)
    else:
      out = paste(convert.for_xla(image, pooled=True), packed,
                  feather=feather, alpha=alpha, ref_image=ref)
  return convert.from_unit_float(out) if as_uint8 else out


def _paste_reusing_output(image, packed, feather, alpha, ref):
  """`paste` into a kept XLA buffer, handed back without a copy.

  On the CPU backend a fresh XLA output faults its pages in one by one; a
  kept buffer does not (see `segspaste_jax.workspace`). The result shares
  the buffer, which is pasted into again once the caller drops the result.
  Waits for the paste to finish.
  """
  buffer = workspace.take(image.shape, image.dtype)
  if (isinstance(image, np.ndarray) and buffer.dtype == image.dtype
      and not convert.xla_shares(image)):
    # An unaligned host image (numpy's own memory) goes straight into the
    # buffer, on a few threads: no aligned copy first, no copy in XLA.
    # (Aligned ones, torch's, XLA reads in place and copies a little faster.)
    view = workspace.host_view(buffer)
    convert.parallel_copy(view, image)
    del view  # before the donation
    result = paste(buffer, packed, feather=feather, alpha=alpha,
                   ref_image=ref, donate_image=True)
  else:
    result = paste_into(buffer, convert.for_xla(image, pooled=True), packed,
                        feather=feather, alpha=alpha, ref_image=ref)
  return workspace.lend(result)  # shares the buffer: no copy out
