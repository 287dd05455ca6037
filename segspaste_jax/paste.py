"""The jit-compiled core: feather, resize and blend packed SEGS into frames.

Everything here is pure `jnp`/`lax` on fixed shapes. Per-segment sizes and
positions are traced values, so one compiled program serves every layout of
a bucket. Segments are applied in order with `lax.scan` (later ones land on
top of earlier ones, as in the node); frames are handled by broadcasting.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from segspaste_jax.feather import blur_padded, platform_of
from segspaste_jax.segs import PackedSegs


def _interpolation_matrix(n_in, n_out, length: int, dtype):
  """`[L, L]` matrix of torch's bilinear resize (align_corners=False).

  Row `i < n_out` holds the two weights that output `i` takes from inputs
  `floor(src)` and `floor(src) + 1` (clamped), `src = (i + 0.5) * n_in /
  n_out - 0.5` clamped below at 0; rows at and past `n_out` are zero.
  """
  scale = (jnp.maximum(n_in, 1).astype(jnp.float32)
           / jnp.maximum(n_out, 1).astype(jnp.float32))
  i = jnp.arange(length, dtype=jnp.float32)
  src = jnp.maximum(scale * (i + 0.5) - 0.5, 0.0)
  last = jnp.maximum(n_in - 1, 0)
  i0 = jnp.minimum(jnp.floor(src).astype(jnp.int32), last)
  i1 = jnp.minimum(i0 + 1, last)
  lam = jnp.clip(src - i0.astype(jnp.float32), 0.0, 1.0)
  cols = jnp.arange(length)[None, :]
  weights = ((1 - lam)[:, None] * (cols == i0[:, None])
             + lam[:, None] * (cols == i1[:, None]))
  keep = (jnp.arange(length) < n_out)[:, None]
  return jnp.where(keep, weights, 0.0).astype(dtype)


def _resize(masks, mask_hw, ref_hw):
  """Bilinear resize of `[F, B, B]` masks from `mask_hw` to `ref_hw`."""
  length = masks.shape[-1]
  rows = _interpolation_matrix(mask_hw[0], ref_hw[0], length, masks.dtype)
  cols = _interpolation_matrix(mask_hw[1], ref_hw[1], length, masks.dtype)
  return jnp.einsum("ij,fjk,lk->fil", rows, masks, cols,
                    precision=lax.Precision.HIGHEST)


def _prepare_mask(masks, mask_hw, ref_hw, shift, window, feather: int,
                  platform: str | None):
  """One segment's `[F, B, B]` masks, feathered, resized and cut to a window.

  The order is the node's: `tensor_gaussian_blur_mask` at the mask's own
  size first, the bilinear resize inside `tensor_paste` after (skipped, a
  real branch outside `vmap`, when the sizes already agree). The result is
  the `[F, *window]` part that lands on the image window, `shift` being
  the window's offset into the mask: cutting it here keeps the padding
  that the cut needs inside one fused loop.
  """
  masks = blur_padded(masks, mask_hw[0], mask_hw[1], feather, platform)
  same = (mask_hw[0] == ref_hw[0]) & (mask_hw[1] == ref_hw[1])
  cut = lambda m: _shifted_window(m, shift[0], shift[1], *window)
  return lax.cond(same, cut, lambda m: cut(_resize(m, mask_hw, ref_hw)),
                  masks)


def _shifted_window(a, dy, dx, height: int, width: int):
  """`out[..., u, v, :] = a[..., u + dy, v + dx, :]`, zero outside `a`.

  `a` is `[F, B, B]` or `[F, B, B, C]`; the result is `[F, height, width, ...]`.
  Padding by the window size on each side makes every clamped
  `dynamic_slice` start land either on the exact offset or wholly in zeros.
  """
  pads = [(0, 0), (height, height), (width, width)] + [(0, 0)] * (a.ndim - 3)
  padded = jnp.pad(a, pads)
  zero = jnp.zeros((), jnp.int32)  # one index type, with or without x64
  start = [zero, height + dy, width + dx] + [zero] * (a.ndim - 3)
  sizes = (a.shape[0], height, width) + a.shape[3:]
  return lax.dynamic_slice(padded, start, sizes)


# Windows of at least this many bytes are written in row classes (below).
_ROW_CLASS_MIN_BYTES = 4 << 20


def _window_heights(win_h: int, window_bytes: int) -> tuple[int, ...]:
  """Static window heights to choose from, ascending, the last `win_h`.

  On XLA:CPU writing a window costs about its row count (it is updated in
  place on one thread, row by row), so there a crop much shorter than the
  bucket gets a shorter window: 5/8, 6/8 or 7/8 of the bucket's rows,
  rounded up to 8. Small windows keep one height: each height is one more
  branch to run. (Other backends always use one height.)
  """
  if window_bytes < _ROW_CLASS_MIN_BYTES:
    return (win_h,)
  return tuple(sorted({min(win_h, -(-(win_h * k) // 64) * 8)
                       for k in range(5, 9)}))


@jax.custom_jvp
def _blend_window(mask, gain, under, ref, inside):
  """`(1 - m) * under + m * ref` with `m = mask * gain`, where `mask != 0`;
  `under` itself where `mask == 0`.

  `mask` is 0 wherever `inside` (the crop's own pixels) is False, so `ref`
  is never read there: the crop's padding may hold anything, NaN included.
  Selecting on the mask value costs less than selecting `ref` by position
  (`inside`, from iotas, for every pixel and channel): W2's in-place paste
  37 -> 31 ms. Where the mask is 0 the two agree exactly (finite `ref`).

  The derivatives are those of the blend with `ref` taken as 0 outside
  `inside` (`_blend_window_jvp`): the select on the mask value would give a
  zero derivative with respect to the mask where it is 0, and a mask
  that starts at 0 still learns.
  """
  del inside  # only the derivatives need it
  m = mask * gain
  return jnp.where(mask != 0, (1 - m) * under + m * ref, under)


@_blend_window.defjvp
def _blend_window_jvp(primals, tangents):
  mask, gain, under, ref, inside = primals
  d_mask, d_gain, d_under, d_ref, _ = tangents
  m = mask * gain
  ref = jnp.where(inside, ref, 0)
  d_ref = jnp.where(inside, d_ref, 0)
  d_m = d_mask * gain + mask * d_gain
  return (_blend_window(mask, gain, under, ref, inside),
          (1 - m) * d_under + m * d_ref + d_m * (ref - under))


def _inside(shape, dy, dx, size):
  """`[h, w]` bool: entry `(u, v)` is True where `(u + dy, v + dx)` lies in
  `[0, size[0]) x [0, size[1])`."""
  rows = jnp.arange(shape[0]) + dy
  cols = jnp.arange(shape[1]) + dx
  return (((rows >= 0) & (rows < size[0]))[:, None]
          & ((cols >= 0) & (cols < size[1]))[None, :])


def paste(image, packed: PackedSegs, *, feather: int = 5, alpha=255,
          ref_image=None, donate_image: bool = False):
  """Feathers each packed mask and blends its crop into every frame.

  The node's per-frame, per-segment loop as one XLA program: for each
  segment in order (`lax.scan`; later segments land on top), its masks are
  feathered at their own size, resized to the pasted pixels' size, scaled by
  `alpha / 255` and blended into all frames at once with
  `lax.dynamic_update_slice`, clipped at all four image edges. Works under
  `jax.jit`, `jax.vmap` and `jax.grad`; inputs are assumed valid
  (`segs_paste` and `pack_segs` check them).

  Args:
    image: `[N, H, W, C]` float array, values in [0, 1].
    packed: `PackedSegs` from `pack_segs` for this image's shape.
    feather: static int in 0..100, blur kernel size `2 * feather + 1`.
    alpha: scalar in [0, 255] (traced: differentiable), opacity.
    ref_image: optional `[N, H, W, C]` (or `[1, H, W, C]`); when given, the
      pasted pixels are cut from it at each crop region instead of taken from
      the crops, as the node's `ref_image_opt`.
    donate_image: paste into `image`'s own buffer instead of a new one; the
      caller's `image` is then deleted. Saves allocating and writing a whole
      new batch (on CPU, most of the time of a sparse paste); only for JAX
      arrays the caller no longer needs.

  Returns:
    `[N, H, W, C]` array of `image`'s dtype.
  """
  kernel = _paste_jit_donated if donate_image else _paste_jit
  return kernel(image, packed.strip_meta(), feather=int(feather), alpha=alpha,
                ref_image=ref_image, platform=platform_of(image))


def _paste_core(image, packed: PackedSegs, *, feather: int, alpha, ref_image,
                platform: str | None = None):
  n, h, w, c = image.shape
  bucket = packed.masks.shape[-1]
  win_h, win_w = min(bucket, h), min(bucket, w)
  compute = jnp.promote_types(image.dtype, jnp.float32)

  x1, y1, x2, y2 = (packed.regions[:, k].astype(jnp.int32) for k in range(4))
  if ref_image is None:
    oy, ox = y1, x1
    ref_hw = packed.crop_sizes.astype(jnp.int32)
    active = packed.valid & packed.has_crop
  else:
    # The node cuts ref_image[y1:y2, x1:x2]; Python slicing clips that at the
    # image's far edges, and here it is clipped at the near ones the same way.
    oy, ox = jnp.maximum(y1, 0), jnp.maximum(x1, 0)
    ref_hw = jnp.stack([jnp.clip(jnp.minimum(y2, h) - oy, 0),
                        jnp.clip(jnp.minimum(x2, w) - ox, 0)], axis=-1)
    active = packed.valid

  # Inactive segments never reach the blend (the cond below), so the gain
  # is one scalar.
  gain = jnp.asarray(alpha, compute) / 255
  crops = packed.crops
  if crops.shape[1] > 1:
    crops = crops[:, :n]  # crops may carry more frames than the image
  ys = jnp.clip(oy, 0, h - win_h)
  xs = jnp.clip(ox, 0, w - win_w)

  per_segment = (packed.mask_sizes.astype(jnp.int32), ref_hw, ys, xs, oy, ox)
  heights = _window_heights(win_h, n * win_h * win_w * c
                            * jnp.dtype(image.dtype).itemsize)

  def blend(frames, i, m, rows, start, shift):
    """Blends segment `i` into a `[n, rows, win_w]` window at `start`.

    `m` is the segment's mask cut to the bucket-sized window (its first
    `rows` rows are this window's); `shift` is the window's offset into the
    crop, or None where that is 0 (then the crop and the mask are cut by
    static slices).
    """
    ref_hw = lax.dynamic_index_in_dim(per_segment[1], i, keepdims=False)
    zero = jnp.zeros((), jnp.int32)
    corner = (zero, start[0], start[1], zero)
    dy, dx = (zero, zero) if shift is None else shift
    under = lax.dynamic_slice(frames, corner, (n, rows, win_w, c))
    under = under.astype(compute)
    if ref_image is None:
      crop = lax.dynamic_index_in_dim(crops, i, keepdims=False)
      ref = (crop[:, :rows, :win_w] if shift is None
             else _shifted_window(crop, dy, dx, rows, win_w))
    else:
      ref = lax.dynamic_slice(ref_image, corner,
                              (ref_image.shape[0], rows, win_w, c))
    # The mask is 0 outside the crop's (or region's) own pixels, whose
    # padding may hold anything (0 * inf is NaN): see `_blend_window`.
    inside = _inside((rows, win_w), dy, dx, ref_hw)[..., None]
    blended = _blend_window(m[:, :rows, :, None], gain, under,
                            ref.astype(compute), inside)
    return lax.dynamic_update_slice(frames, blended.astype(frames.dtype),
                                    corner)

  def segment(frames, i):
    # Big per-segment arrays are cut here, inside the branch, where the cut
    # fuses into its consumer; passed in as scan inputs they would be copied.
    mask_hw, ref_hw, ys, xs, oy, ox = (
        lax.dynamic_index_in_dim(a, i, keepdims=False) for a in per_segment)
    mask = lax.dynamic_index_in_dim(packed.masks, i, keepdims=False)
    # Padding may hold anything (`pack_segs(zero_padding=False)`): zero it.
    mask = jnp.where(_inside(mask.shape[-2:], 0, 0, mask_hw), mask, 0)
    prepare = lambda shift: _prepare_mask(mask.astype(compute), mask_hw,
                                          ref_hw, shift, (win_h, win_w),
                                          feather, platform)
    general = (ys - oy, xs - ox)

    def one_window(frames):
      return blend(frames, i, prepare(general), win_h, (ys, xs), general)

    def by_rows(frames):
      # The window: `heights[k]` rows from the pasted region's own corner
      # when they hold its rows and fit in the image ("aligned"); else the
      # bucket's rows, moved inside the image and shifted against the crop.
      k = jnp.sum(jnp.asarray(heights[:-1]) < ref_hw[0])
      rows = jnp.asarray(heights)[k]
      aligned = (oy >= 0) & (oy <= h - rows) & (ox >= 0) & (ox <= w - win_w)
      m = prepare(tuple(jnp.where(aligned, 0, d) for d in general))
      # One real branch per window height (XLA writes a window in place only
      # from a branch whose other side leaves the frames as they are).
      keep = lambda f, *_: f
      for j, rows_j in enumerate(heights):
        frames = lax.cond(
            aligned & (k == j),
            lambda f, m, r=rows_j: blend(f, i, m, r, (oy, ox), None),
            keep, frames, m)
      return lax.cond(
          ~aligned, lambda f, m: blend(f, i, m, win_h, (ys, xs), general),
          keep, frames, m)

    # Only XLA:CPU writes windows row by row on one thread; elsewhere every
    # branch is one more round trip for its predicate, for little gain.
    if len(heights) == 1 or platform == "other":
      return one_window(frames)
    if platform == "cpu":
      return by_rows(frames)
    return lax.platform_dependent(frames, cpu=by_rows, default=one_window)

  def step(frames, i):
    # Padding segments and skipped SEGs do no work at all (a real branch
    # outside vmap): their blur would otherwise dominate small layouts.
    # (Not alpha != 0: at alpha 0 the gradient with respect to alpha lives.)
    return lax.cond(active[i], segment, lambda f, _: f, frames, i), None

  out, _ = lax.scan(step, image, jnp.arange(active.shape[0]))
  return out


def _copy_into_core(buffer, image):
  """`image`, written into `buffer`."""
  # `buffer` stays a parameter (keep_unused) so that XLA writes there.
  return image.astype(buffer.dtype)


def paste_into(buffer, image, packed: PackedSegs, *, feather: int = 5,
               alpha=255, ref_image=None):
  """`paste`, written into `buffer` instead of a new array.

  `buffer` is a JAX array of the image's shape and dtype that the caller no
  longer needs: it is donated (deleted) and the result occupies its memory.
  This is how `segs_paste` reuses one output buffer from call to call on the
  CPU backend (see `segspaste_jax.workspace`).
  """
  # Two programs: a copy into the buffer, then the donated paste in place.
  # (One program starting its segment loop from `image` runs the loop in a
  # fresh buffer and copies that into `buffer` at the end.)
  platform = platform_of(buffer)  # before the copy deletes `buffer`
  return _paste_jit_donated(_copy_into_jit(buffer, image),
                            packed.strip_meta(), feather=int(feather),
                            alpha=alpha, ref_image=ref_image,
                            platform=platform)


_paste_jit = jax.jit(_paste_core, static_argnames=("feather", "platform"))
_copy_into_jit = jax.jit(_copy_into_core, donate_argnums=0, keep_unused=True)
_paste_jit_donated = jax.jit(_paste_core,
                             static_argnames=("feather", "platform"),
                             donate_argnums=0)
