"""`segs_paste`: the node's `doit` as one function, SEGS in, JAX array out."""

from __future__ import annotations

import jax.numpy as jnp

from segspaste_jax import convert
from segspaste_jax.paste import paste


def segs_paste(image, segs, feather: int = 5, alpha=255, ref_image_opt=None,
               *, node_axis_mixup: bool = False, bucket_size: int | None = None,
               max_segments: int | None = None):
  """Pastes SEGS into an image batch, as the Impact Pack's SEGSPaste node.

  Same inputs as the node's `doit`, same picture out: each SEG's mask is
  feathered with a Gaussian blur (sigma 10, kernel `2 * feather + 1`), scaled
  by `alpha / 255` and used to blend the SEG's crop (or `ref_image_opt` cut at
  its crop region) into every frame, later SEGs over earlier ones. Input is
  checked on the host first; the paste itself is one compiled XLA program.

  Args:
    image: `[N, H, W, C]` float array in [0, 1] (numpy, torch or JAX),
      C in (1, 3, 4). Never modified.
    segs: torch-style SEGS `((H0, W0), [SEG, ...])`; scale-matched to the
      image when `(H0, W0)` differs from `(H, W)` and neither is 0.
    feather: int in 0..100.
    alpha: number in 0..255.
    ref_image_opt: optional `[N, H, W, C]` (or `[1, H, W, C]`) of the image's
      size and channels; when given, pasted pixels come from it.
    node_axis_mixup: reproduce the node's crop placement under a non-uniform
      scale match (see `pack_segs`).
    bucket_size: see `pack_segs`.
    max_segments: see `pack_segs`.

  Returns:
    `[N, H, W, C]` JAX array of `image`'s dtype.

  Raises:
    TypeError, ValueError: naming the argument (and SEG index) on bad input.
  """
  image = convert.check_image(image, "image")
  n, h, w, c = image.shape
  feather = convert.check_int(feather, "feather", 0, 100)
  alpha = convert.check_alpha(alpha)
  ref = None
  if ref_image_opt is not None:
    ref = convert.check_image(ref_image_opt, "ref_image_opt")
    if ref.shape[1:] != (h, w, c) or ref.shape[0] not in (1,) and (
        ref.shape[0] < n):
      raise ValueError(
          f"ref_image_opt: expected [N', {h}, {w}, {c}] with N' = 1 or "
          f"N' >= {n} (the image's frames), got shape {tuple(ref.shape)}")
    ref = jnp.asarray(ref[:n] if ref.shape[0] > n else ref)
  packed = convert.pack_segs(segs, image.shape, with_crops=ref is None,
                             node_axis_mixup=node_axis_mixup,
                             bucket_size=bucket_size, max_segments=max_segments)
  return paste(jnp.asarray(image), packed, feather=feather, alpha=alpha,
               ref_image=ref)
