"""Aligned faces: crops warped to a model's template and pasted back.

A face is described by a 2 x 3 matrix `A` (image to crop, OpenCV's
`warpAffine` convention): crop pixel `(x', y')` shows the image at
`A^-1 (x', y')`; pixel centres lie at integer coordinates.

`crop_aligned` samples every face of every frame at once (bilinear, zeros
off the image). `paste_aligned` warps each crop back and blends it into a
static window around the face, read with `lax.dynamic_slice` and written
with `lax.dynamic_update_slice` at a traced position, faces in order
(later on top) by code unrolled at trace time over the static face count.
On GPUs and TPUs the program is straight-line, no loop or branch (frames
are a `vmap`); on the CPU, per-frame matrices walk the frames with a scan
(`platform.form_of` decides, as for the box paste).

The crop's quad is the image region that `A` maps into the crop's pixel
area, `-0.5 <= x' <= w - 0.5`, `-0.5 <= y' <= h - 0.5`. Inside it the
pasted pixels are the crop's, bilinearly interpolated with the sample
position clamped to the pixel centres (the crop's border pixels are
repeated over the outer half pixel), so nothing from off the crop is mixed
in; outside it the image is left as it is. The blend weight is built in
crop space (`relative.relative_weights`, the box paste's relative ramp,
with nothing past the crop: the mask feathered relative to the face's
size) and warped with the crop.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segspaste_jax._src import platform
from segspaste_jax._src import relative
from segspaste_jax._src import trace_checks as checks

# Host-computed windows are rounded up to this multiple, so that faces of
# about the same size share one compiled program.
_WINDOW_STEP = 32


def _crop_weights(masks, size, feather, grow):
  """The masks `[..., h, w]` feathered relative to their size: the box
  paste's relative ramp, with nothing past the crop (`outside="zero"`: a
  mask that reaches the crop's border has its edge there)."""
  return relative.relative_weights(masks, jnp.array(size, jnp.int32),
                                   feather, grow, outside="zero")


def _whole_crop_weights(size, feather, grow):
  """`_crop_weights` of a mask of ones, `[h, w]`, for a static crop size:
  the blur of a rectangle with nothing past it is `(1 - ty)(1 - tx)` for
  the 1-D tails `t` past either end, so no matrix product is needed."""
  h, w = size
  lengths = relative.scales(jnp.float32(h * w), feather, grow)
  sigma1 = lengths[-1]
  ty = relative.tails(h, h, sigma1)[:, None]
  tx = relative.tails(w, w, sigma1)[None, :]
  out, span = relative.from_blur(
      (1 - ty) * (1 - tx), ty + tx - ty * tx, jnp.ones((h, w)),
      jnp.asarray(feather, jnp.float32), grow, lengths)
  return out * relative.border((h, w), (0, 0), (h, w), span)


def _inverse(m):
  """`[..., 2, 3]` affine matrices inverted (a singular one gives a finite,
  meaningless matrix; the host checks reject concrete ones)."""
  a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
  d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
  det = a * e - b * d
  det = jnp.where(det == 0, 1, det)
  ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
  return jnp.stack([jnp.stack([ia, ib, -(ia * c + ib * f)], -1),
                    jnp.stack([id_, ie, -(id_ * c + ie * f)], -1)], -2)


def _apply(m, x, y):
  """`m @ (x, y, 1)` for `[2, 3]` `m`, broadcasting `x` and `y`."""
  return (m[0, 0] * x + m[0, 1] * y + m[0, 2],
          m[1, 0] * x + m[1, 1] * y + m[1, 2])


def _sample_zeros(img, x, y):
  """Bilinear samples of `img` `[H, W, C]` at `(x, y)`, zeros off it."""
  hh, ww, c = img.shape
  # Far-off positions read zeros anyway; bounding them keeps int32 safe.
  x = jnp.clip(x, -2, ww + 1)
  y = jnp.clip(y, -2, hh + 1)
  x0, y0 = jnp.floor(x), jnp.floor(y)
  fx, fy = x - x0, y - y0
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
  flat = img.reshape(hh * ww, c)
  out = 0
  for dy, wy in ((0, 1 - fy), (1, fy)):
    for dx, wx in ((0, 1 - fx), (1, fx)):
      yi, xi = y0 + dy, x0 + dx
      valid = (yi >= 0) & (yi < hh) & (xi >= 0) & (xi < ww)
      index = jnp.clip(yi, 0, hh - 1) * ww + jnp.clip(xi, 0, ww - 1)
      out = out + flat[index] * jnp.where(valid, wy * wx, 0)[..., None]
  return out


def _clamped_taps(x, y, size):
  """Where a bilinear sample clamped to the pixel centres of an `h x w`
  image (`h, w >= 2`) reads: the top-left tap and the two fractions."""
  hh, ww = size
  x = jnp.clip(x, 0, ww - 1)
  y = jnp.clip(y, 0, hh - 1)
  x0 = jnp.clip(jnp.floor(x), 0, ww - 2)
  y0 = jnp.clip(jnp.floor(y), 0, hh - 2)
  return y0.astype(jnp.int32), x0.astype(jnp.int32), x - x0, y - y0


def _sample_clamped(img, taps):
  """Bilinear samples of `img` `[h, w, ...]` at `taps` (`_clamped_taps`):
  one 2 x 2 patch read per sample, combined as lerps so that a constant
  reads back exactly (a mask of ones stays exactly 1)."""
  y0, x0, fx, fy = taps
  rest = img.shape[2:]

  def patch(i, j):
    zeros = (jnp.zeros((), jnp.int32),) * len(rest)
    return lax.dynamic_slice(img, (i, j) + zeros, (2, 2) + rest)

  p = jax.vmap(jax.vmap(patch))(y0, x0)  # [..., 2, 2, *rest]
  fx = fx.reshape(fx.shape + (1,) * len(rest))
  fy = fy.reshape(fy.shape + (1,) * len(rest))
  return _lerp2(p, fx, fy, len(rest))


def _lerp2(p, fx, fy, rest: int):
  """`p` `[..., 2, 2, *rest]` combined bilinearly."""
  tail = (slice(None),) * rest
  v00, v01 = p[(Ellipsis, 0, 0) + tail], p[(Ellipsis, 0, 1) + tail]
  v10, v11 = p[(Ellipsis, 1, 0) + tail], p[(Ellipsis, 1, 1) + tail]
  top = v00 + fx * (v01 - v00)
  bottom = v10 + fx * (v11 - v10)
  return top + fy * (bottom - top)


@functools.partial(jax.jit, static_argnames=("size", "supersample"))
def _crop_core(image, matrices, size, supersample):
  h, w = size
  k = supersample
  img = image.astype(jnp.float32)
  inv = _inverse(matrices.astype(jnp.float32))
  per_frame = inv.ndim == 4
  # Sample positions in crop pixels: the centres, or a k x k grid over each
  # crop pixel whose samples are averaged (a box prefilter).
  ys = (jnp.arange(h * k, dtype=jnp.float32) + 0.5) / k - 0.5
  xs = (jnp.arange(w * k, dtype=jnp.float32) + 0.5) / k - 0.5

  def one(frame, m):
    x, y = _apply(m, xs[None, :], ys[:, None])
    out = _sample_zeros(frame, x, y)
    if k > 1:
      out = out.reshape(h, k, w, k, -1).mean(axis=(1, 3))
    return out

  over_frames = jax.vmap(one, in_axes=(0, 0 if per_frame else None))
  return jax.vmap(over_frames, in_axes=(None, 0))(img, inv)


def crop_aligned(image, matrices, *, size, supersample: int = 1):
  """Cuts every face of every frame, warped to a model's template.

  Crop pixel `(x', y')` of face `s` in frame `n` is the image at
  `A^-1 (x', y')` for `A = matrices[s]` (or `matrices[s, n]`): what
  `cv2.warpAffine(frame, A, (w, h))` gives with a constant zero border.
  Pixel centres lie at integer coordinates; bilinear, zeros off the image.
  One compiled program for all matrices of a shape (they are traced);
  differentiable with respect to the image and the matrices.

  Shrinking: with `supersample=1` every crop pixel is one bilinear sample,
  like OpenCV's, so a face more than about twice the crop's size in the
  image aliases (fine detail folds into moire, edges stair). With
  `supersample=k` every crop pixel is the mean of `k x k` bilinear samples
  spread evenly over its area (a box prefilter as wide as a crop pixel),
  which antialiases faces up to about `2 k` times the crop's size, at `k^2`
  times the work, still one program.

  Args:
    image: `[N, H, W, C]` floating or integer frames.
    matrices: `[S, 2, 3]` float (one per face, used in every frame) or
      `[S, N, 2, 3]` (one per face and frame), image to crop (e.g.
      `similarity_from_landmarks`).
    size: static `(h, w)`, the crop's size (the model's input).
    supersample: static int >= 1, samples per crop pixel along each axis.

  Returns:
    `[S, N, h, w, C]` float32 in the image's value scale.

  Raises:
    TypeError, ValueError: naming the argument, for wrong shapes or dtypes,
      a bad `size` or `supersample`, or (concrete matrices, checked on the
      host) a singular or non-finite matrix.
  """
  image = checks.image(image)
  size = _size(size, low=1)
  supersample = checks.python_int(supersample, "supersample")
  if supersample < 1:
    raise ValueError(f"supersample: expected an int >= 1, got {supersample}")
  matrices = _matrices(matrices, image.shape[0])
  return _crop_core(image, matrices, size=size, supersample=supersample)


def aligned_window(matrices, size, image_hw) -> tuple[int, int]:
  """The static window `paste_aligned` needs for these faces.

  The largest extent, over faces and frames, of the image pixels inside a
  crop's quad (the crop's pixel area `[-0.5, w - 0.5] x [-0.5, h - 0.5]`
  mapped back by `A^-1`), plus a pixel of margin, rounded up to a multiple
  of 32 (so that faces of similar size share one compiled program) and cut
  to the image. Pass it as `paste_aligned(..., window=...)` under `jit`,
  e.g. computed once from the largest face a video will show.

  Args:
    matrices: concrete `[S, 2, 3]` or `[S, N, 2, 3]` image-to-crop matrices.
    size: `(h, w)`, the crops' size.
    image_hw: `(H, W)`, the frames' size.

  Returns:
    `(window_h, window_w)` Python ints.
  """
  size = _size(size, low=1)
  image_hw = _size(image_hw, low=1, name="image_hw")
  m = _concrete(matrices)
  if m is None:
    raise TypeError("matrices: aligned_window needs concrete matrices, got "
                    "traced ones (call it outside jit)")
  if m.ndim not in (3, 4) or m.shape[-2:] != (2, 3):
    raise ValueError(f"matrices: expected [S, 2, 3] or [S, N, 2, 3], got "
                     f"shape {m.shape}")
  _check_invertible(m)
  return _window(m, size, image_hw)


def _extents(m: np.ndarray, size) -> tuple[np.ndarray, np.ndarray]:
  """Per face (`[S]`, the largest over its frames), the `(rows, columns)`
  its quad covers in the image, + 1 margin, as int64 arrays."""
  if m.shape[0] == 0:
    return np.ones(0, np.int64), np.ones(0, np.int64)
  inv = np.asarray(_inverse(jnp.asarray(m, jnp.float32)), np.float64)
  corners = _corners(size)
  x = (inv[..., 0, :2] @ corners.T) + inv[..., 0, 2:]
  y = (inv[..., 1, :2] @ corners.T) + inv[..., 1, 2:]
  rows = np.ceil(y.max(-1)) - np.floor(y.min(-1)) + 2
  cols = np.ceil(x.max(-1)) - np.floor(x.min(-1)) + 2
  big = 2 ** 30
  per_face = lambda a: np.minimum(a.reshape(m.shape[0], -1).max(-1),
                                  big).astype(np.int64)
  return per_face(rows), per_face(cols)


def _window(m: np.ndarray, size, image_hw) -> tuple[int, int]:
  """`aligned_window` for matrices already checked."""
  rows, cols = _extents(m, size)
  need = (int(rows.max(initial=1)), int(cols.max(initial=1)))
  return tuple(min(image_hw[k], -(-need[k] // _WINDOW_STEP) * _WINDOW_STEP)
               for k in range(2))


def _corners(size) -> np.ndarray:
  h, w = size
  return np.array([(-0.5, -0.5), (w - 0.5, -0.5), (-0.5, h - 0.5),
                   (w - 0.5, h - 0.5)])


@functools.partial(jax.jit, static_argnames=("window", "form"))
def _paste_core(image, crops, matrices, masks, feather, grow, gain, window,
                form):
  n, hh, ww, c = image.shape
  s, _, h, w, _ = crops.shape
  win_h, win_w = window
  compute = jnp.promote_types(image.dtype, jnp.float32)
  a = matrices.astype(jnp.float32)
  if a.ndim == 3:  # one matrix for every frame: placed and sampled once
    a = a[:, None]
  inv = _inverse(a)
  # Each window's corner: the top-left of the face's quad, moved inside.
  corners = jnp.asarray(_corners((h, w)), jnp.float32)
  cx = (inv[..., 0, :1] * corners[:, 0] + inv[..., 0, 1:2] * corners[:, 1]
        + inv[..., 0, 2:])
  cy = (inv[..., 1, :1] * corners[:, 0] + inv[..., 1, 1:2] * corners[:, 1]
        + inv[..., 1, 2:])
  tops = jnp.clip(jnp.floor(cy.min(-1)), 0, hh - win_h).astype(jnp.int32)
  lefts = jnp.clip(jnp.floor(cx.min(-1)), 0, ww - win_w).astype(jnp.int32)
  # Blend weights in crop space, feathered relative to the face's size.
  if masks is None:  # the whole crop
    weights = _whole_crop_weights((h, w), feather, grow)[None, None]
    weights = jnp.broadcast_to(weights * gain, (s, 1, h, w))
  else:
    weights = _crop_weights(masks, (h, w), feather, grow) * gain
  rows = jnp.arange(win_h, dtype=jnp.int32)[:, None]
  cols = jnp.arange(win_w, dtype=jnp.int32)[None, :]
  zero = jnp.zeros((), jnp.int32)

  def face(crop, weight, m, y0, x0):
    """Crop `[F, h, w, C]` and weight `[F', h, w]` warped into the window
    at `(y0, x0)` by `m`: `[F, win_h, win_w, C]`, `[F', win_h, win_w]`."""
    x, y = _apply(m, (x0 + cols).astype(jnp.float32),
                  (y0 + rows).astype(jnp.float32))
    inside = (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)
    taps = _clamped_taps(x, y, (h, w))
    pasted = jax.vmap(_sample_clamped, in_axes=(0, None))(crop, taps)
    weight = jax.vmap(_sample_clamped, in_axes=(0, None))(weight, taps)
    return pasted, jnp.where(inside, weight, 0)

  def blend(frames, pasted, weight, corner):
    """Blends `[F, win_h, win_w, C]` pixels into `frames` `[F, H, W, C]`
    with weight `[F or 1, win_h, win_w]` at the window's `corner`."""
    under = lax.dynamic_slice(frames, corner, (frames.shape[0], win_h, win_w,
                                               c))
    weight = weight[..., None].astype(compute)
    out = (1 - weight) * under + weight * pasted.astype(compute)
    return lax.dynamic_update_slice(frames, out, corner)

  def one_frame(frame, crop, weight, m, y0, x0):
    """Every face into frames `[F, H, W, C]` with one window per face for
    all of them (crops `[S, F, h, w, C]`, weights `[S, F or 1, h, w]`,
    matrices `[S, 2, 3]`, corners `[S]`)."""
    for i in range(s):  # unrolled while tracing: later faces on top
      pasted, wt = face(crop[i], weight[i], m[i], y0[i], x0[i])
      frame = blend(frame, pasted, wt, (zero, y0[i], x0[i], zero))
    return frame

  frames = image.astype(compute)
  crops = crops.astype(jnp.promote_types(crops.dtype, jnp.float32))
  if a.shape[1] == 1:  # every frame at once, one window per face
    frames = one_frame(frames, crops, weights, a[:, 0], tops[:, 0],
                       lefts[:, 0])
  else:
    # A window per face and frame. Accelerators: a `vmap` over frames
    # (straight-line; the windows are written with a scatter). XLA:CPU
    # writes a vmapped window slowly, so there a scan walks the frames and
    # each window is an in-place update of one frame.
    per = lambda x: x.shape[1] == n
    xs = (frames[:, None],
          jnp.swapaxes(crops, 0, 1)[:, :, None] if per(crops) else None,
          jnp.swapaxes(weights, 0, 1)[:, :, None] if per(weights) else None,
          jnp.swapaxes(a, 0, 1), tops.T, lefts.T)
    shared = (None, None if per(crops) else crops,
              None if per(weights) else weights, None, None, None)

    def step(args):
      args = [x if y is None else y for x, y in zip(args, shared)]
      return one_frame(*args)[0]

    if form == "cpu":
      frames = lax.map(step, xs)
    else:
      frames = jax.vmap(step)(xs)
  if jnp.issubdtype(image.dtype, jnp.integer):
    info = jnp.iinfo(image.dtype)
    frames = jnp.clip(jnp.round(frames), info.min, info.max)
  return frames.astype(image.dtype)


def paste_aligned(image, crops, matrices, *, masks=None, feather=4.0,
                  grow=-5.0, alpha=255, window=None):
  """Warps aligned crops back into every frame and blends them in.

  Each crop is warped back by the inverse of its matrix (bilinear, the
  crop's pixels only, see the module's notes) and blended with a weight
  built in crop space: the mask (default: the whole crop) feathered
  relative to the face's size, so the edge scales with the face, then
  scaled by `alpha / 255`. The feathering is `relative_blur_mask`'s with
  zeros past the crop: a mask reaching the crop's border (the whole crop)
  has its edge there. Faces are blended in order, later ones on top.
  Each face's work happens in a static window around it, written back with
  `lax.dynamic_update_slice` at a traced position.

  The defaults (`feather=4`, `grow=-5`) give the edge facexlib's
  restoration helper pastes with: the 50 % level 5 % of the face's size
  inside the crop's border, a ramp about 4 % wide. `feather=0, grow=0` is a
  hard edge: inside the crop's quad the crop's pixels, outside it the image
  unchanged bit for bit. For every `feather > 0` the weight is zero on the
  crop's border, so no seam shows where the warped crop ends.

  Args:
    image: `[N, H, W, C]` floating or integer frames.
    crops: `[S, N or 1, h, w, C]` float, in the image's value scale (a
      model's output on `crop_aligned`'s crops); `h, w >= 2`.
    matrices: `[S, 2, 3]` or `[S, N, 2, 3]` float image-to-crop matrices,
      those the crops were cut with.
    masks: `[S, h, w]` or `[S, N or 1, h, w]` float in [0, 1] in crop space
      (e.g. a face parsing mask), or None for the whole crop.
    feather: float >= 0 (may be traced): the edge's 10 %-90 % ramp width
      in per cent of the face's size (`sqrt` of the mask's area, in crop
      pixels, so the same per cent in the image); the edge is the mask's
      0.5 level.
    grow: float in -100..100 (may be traced): moves the edge's 50 % level
      outward (+) or inward (-), in per cent of the face's size (with
      `feather = 0`: a hard edge there).
    alpha: 0..255 (may be traced), the crops' opacity.
    window: None, or static `(h, w)` Python ints: the window each face is
      blended in. None computes it on the host from concrete matrices
      (`aligned_window`); under `jit` (traced matrices) it must be given,
      and pixels of a face outside its window are not pasted.

  Returns:
    `[N, H, W, C]` of the image's dtype (integers rounded and clipped).

  Raises:
    TypeError, ValueError: naming the argument (and face), for wrong shapes
      or dtypes; traced matrices without `window`; and, where concrete, a
      singular or non-finite matrix, a window too small for a face, or
      `feather`, `grow`, `alpha` out of range.
  """
  image = checks.image(image)
  n, hh, ww, c = image.shape
  crops = checks.float_array(crops, "crops", "[S, N or 1, h, w, C]")
  if crops.ndim != 5 or crops.shape[1] not in (1, n):
    raise ValueError(f"crops: expected [S, N or 1, h, w, C] with N = {n}, "
                     f"got shape {crops.shape}")
  s, _, h, w, cc = crops.shape
  if cc != c:
    raise ValueError(f"crops: expected {c} channels (the image's), got "
                     f"{cc}")
  if h < 2 or w < 2:
    raise ValueError(f"crops: expected crops of at least 2 x 2 pixels, got "
                     f"{h} x {w}")
  matrices = _matrices(matrices, n)
  if matrices.shape[0] != s:
    raise ValueError(f"matrices: expected one per crop ({s}), got shape "
                     f"{matrices.shape}")
  masks = _masks(masks, s, n, (h, w))
  feather = _scalar(feather, "feather", 0, None)
  grow = _scalar(grow, "grow", -100, 100)
  gain = _scalar(alpha, "alpha", 0, 255) / 255
  concrete = _concrete(matrices)
  if window is None:
    if concrete is None:
      raise ValueError("window: traced matrices need a static window=(h, w) "
                       "(under jit the face's extent is unknown; compute it "
                       "outside with aligned_window)")
    window = _window(concrete, (h, w), (hh, ww))  # checked by _matrices
  else:
    window = _size(window, low=1, name="window")
    window = (min(window[0], hh), min(window[1], ww))
    if concrete is not None:
      # The margin pixel of `_extents` is for float rounding only.
      rows, cols = _extents(concrete, (h, w))
      short = (((rows - 1 > window[0]) & (window[0] < hh))
               | ((cols - 1 > window[1]) & (window[1] < ww)))
      if short.any():
        i = int(np.argmax(short))
        raise ValueError(
            f"window: {window} is too small for face {i}, whose crop "
            f"covers {rows[i] - 1} x {cols[i] - 1} pixels of the image")
  return _paste_core(image, crops, matrices, masks, feather, grow, gain,
                     window=window, form=platform.form_of(image))


def _size(value, low: int, name: str = "size") -> tuple[int, int]:
  if not isinstance(value, (tuple, list)) or len(value) != 2:
    raise TypeError(f"{name}: expected (h, w), two Python ints, got "
                    f"{value!r}")
  out = tuple(checks.python_int(v, name, " (h, w)") for v in value)
  if min(out) < low:
    raise ValueError(f"{name}: expected (h, w) >= {low}, got {out}")
  return out


def _concrete(value):
  """The value as a float64 numpy array, or None when traced."""
  if isinstance(value, jax.core.Tracer):
    return None
  return np.asarray(value, np.float64)


def _matrices(value, frames: int):
  m = checks.as_array(value, "matrices", "an array [S, 2, 3] or [S, N, 2, 3]")
  if m.ndim not in (3, 4) or m.shape[-2:] != (2, 3) or (
      m.ndim == 4 and m.shape[1] != frames):
    raise ValueError(f"matrices: expected [S, 2, 3] or [S, N, 2, 3] with N "
                     f"= {frames}, got shape {m.shape}")
  checks.real(m, "matrices")
  concrete = _concrete(m)
  if concrete is not None:
    _check_invertible(concrete)
  return m.astype(jnp.float32)


def _check_invertible(m: np.ndarray) -> None:
  if not np.isfinite(m).all():
    bad = np.argwhere(~np.isfinite(m).all(axis=(-2, -1)))[0]
    raise ValueError(f"matrices: matrix {tuple(int(i) for i in bad)} is not "
                     "finite")
  det = m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]
  scale = np.abs(m[..., :, :2]).max(axis=(-2, -1))
  singular = np.abs(det) <= 1e-12 * np.maximum(scale, 1e-30) ** 2
  if singular.any():
    bad = np.argwhere(singular)[0]
    raise ValueError(f"matrices: matrix {tuple(int(i) for i in bad)} is "
                     "singular (its 2 x 2 part has determinant "
                     f"{det[tuple(bad)]:.3g}); expected an invertible "
                     "image-to-crop transform")


def _masks(value, faces: int, frames: int, size):
  h, w = size
  if value is None:
    return None
  m = checks.float_array(value, "masks", "[S, h, w] or [S, N or 1, h, w]")
  if m.ndim == 3:
    m = m[:, None]
  if (m.ndim != 4 or m.shape[0] != faces or m.shape[1] not in (1, frames)
      or m.shape[2:] != (h, w)):
    raise ValueError(f"masks: expected [S, h, w] or [S, N or 1, h, w] = "
                     f"[{faces}, ({frames} or 1,) {h}, {w}] (the crops' "
                     f"size), got shape {value.shape}")
  return m.astype(jnp.float32)


def _scalar(value, name: str, low, high):
  """A float32 scalar, range-checked where concrete."""
  a = checks.as_array(value, name, "a number")
  if a.ndim != 0 or not (jnp.issubdtype(a.dtype, jnp.floating)
                         or jnp.issubdtype(a.dtype, jnp.integer)):
    raise TypeError(f"{name}: expected a real scalar, got {value!r}")
  if not isinstance(a, jax.core.Tracer):
    v = float(a)
    if not math.isfinite(v) or v < low or (high is not None and v > high):
      bound = f"{low}..{high}" if high is not None else f">= {low}"
      raise ValueError(f"{name}: expected {bound}, got {v}")
  return a.astype(jnp.float32)
