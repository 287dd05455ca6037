"""Feathering that scales with the mask: `feather_mode="relative"`.

The node blurs every mask with sigma 10 px, whatever its size. Here the
ramp's width is a share of the mask's own size, `sqrt(area)`, and its 50 %
level can be moved off the mask's edge (`grow`), as face tools do (a few
per cent of `sqrt(area)`, eroded inward or grown outward).

The definition, for a mask `m` of real size `h x w` and `s = sqrt(area)`
(`area` the sum of `m` over its real extent, taken as at least 1 pixel).
The mask's edge is its 0.5 level: the steps below read `e = clip(10 (m -
0.5) + 0.5, 0, 1)` (0 below 0.45, 1 above 0.55), so that a soft mask, or
one whose inside stops short of 1, still has an edge to measure from; its
values past that shape the result only through `area`.

1. `sigma = feather / 100 * s / RISE` (`RISE` = 2.5631: the 10 %-90 % rise of
   a Gaussian-blurred step, in sigmas) and `g = grow / 100 * s`, in pixels.
2. `b` = `e` blurred by a Gaussian of `sigma1 = max(sigma, (|g| + 3 sigma) /
   4)`, the mask read as constant over each pixel's square and extended past
   its real extent by its edge pixels: entry `(k, j)` of the blur along an
   axis of length `n` is the Gaussian's mass over pixel `j`'s span `[j -
   1/2, j + 1/2]` around `k` (the first and last pixels take the tails). A
   binary mask with a straight edge at `x0` thus blurs to exactly `Phi((x0
   - x) / sigma1)` at pixel centres `x` (`Phi` the normal CDF). (`sigma1`
   is at least 0.001 px, where the blur is the identity.)
3. `d = sigma1 * ndtri(b)` is the signed distance to the mask's 50 % edge
   (positive inside; exact at a straight edge, `b` clipped to `[1e-20, 1 -
   1e-7]`, so distances saturate at about `-9 sigma1` and `+5 sigma1`: the
   larger `sigma1` keeps the grown edge and 3 sigma of ramp either side of
   it within that reach). Above one half `ndtri(b)` is read as `-ndtri(1 -
   b)` from the complement `1 - e` blurred on its own, so that float32
   keeps its relative precision near 1.
4. The ramp is `Phi((d + g) / sigma)`: 10 %-90 % wide `feather / 100 * s`
   across a straight edge, its 50 % level `g` pixels outside the mask's
   (inside for `grow < 0`).
5. Times a border factor: `smoothstep(dist / span)`, `dist` the distance to
   the nearest pixel of the `h x w` rectangle's border ring, `span =
   max(feather / 100 * s, 1)` px: 0 on the ring, so a mask that reaches its
   crop's edge never leaves a seam.

With `outside="zero"` (the aligned paste's crops) step 2 reads zeros past
the real extent instead of the edge pixels: the rectangle's border is an
edge of any mask that reaches it, and a mask of ones gets the ramp along
its border, moved by `grow` like any other edge.

`feather = 0` gives a hard edge: the mask `m` itself where `grow = 0`,
else 1 where `d + g > 0` and 0 elsewhere (no border factor). An empty mask
(`area = 0`) gives zero weights. Curved edges are approximate (a blur
rounds corners: a convex mask's grown edge falls slightly short of `g`).

`feather` and `grow` are traced: one compiled program for all their values.
The blur is two dense `[n, n]` matrix products per mask, built from the
traced sigma (`jax.scipy.special.ndtr`), with no branch.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy import special

from segspaste_jax._src.validate import check_number

RISE = 2.5631031310892007  # 10 %-90 % width of Phi, in sigmas: 2 ndtri(0.9)
# b is clipped to [_LOW, 1 - _TOP] for ndtri, read as 1 - (its complement
# clipped to [_TOP, ...]) above one half: float32 resolves both
_LOW, _TOP = 1e-20, 1e-7
_REACH = 4.0  # how far inside (in sigma1) the distances are trusted
_MIN_SIGMA = 1e-3  # a blur this narrow is the identity at pixel centres


def blur_matrix(n, length: int, sigma, dtype=jnp.float32,
                outside: str = "edge"):
  """The blur along one axis: `[..., length, length]`.

  Entry `(k, j)`: the mass of a Gaussian of `sigma` centred on pixel `k`
  over pixel `j`'s span `[j - 1/2, j + 1/2]`, and past the real pixels
  (`j >= n`) zero. `outside` says what lies beyond the real extent:
  "edge", the first and last real pixels (`0` and `n - 1`) repeated, so
  they take the tails beyond them and rows sum to 1 for `k < n`; "zero",
  nothing, so the tails are lost.

  Each boundary `x = (j - 1/2 - k) / sigma` between pixels `j - 1` and `j`
  gets its tail mass `t = Phi(-|x|)` (one `ndtr` per entry), and each
  pixel's mass is a difference of tails on its side of the centre, or one
  minus both where it holds the centre: no difference of two numbers near
  1, so masses far out keep their relative precision.

  Args:
    n: int32 scalar (traced), the real length (>= 1).
    length: static, the bucket's length.
    sigma: float `[...]` (traced), > 0.
    dtype: the result's dtype.
    outside: static, "edge" or "zero".
  """
  sigma = jnp.asarray(sigma, dtype)[..., None, None]
  k = jnp.arange(length, dtype=dtype)[:, None]
  j = jnp.arange(length + 1)[None, :]  # boundary j: left of pixel j
  x = (j.astype(dtype) - 0.5 - k) / sigma
  t = special.ndtr(-jnp.abs(x))
  if outside == "edge":
    # the outer boundaries of pixels 0 and n - 1 sit at -inf and +inf: no
    # tail beyond them (x keeps the right sign there for every k < n)
    t = jnp.where((j == 0) | (j == n), 0.0, t)
  elif outside != "zero":
    raise ValueError(f"outside: expected 'edge' or 'zero', got {outside!r}")
  lo, hi = x[..., :-1], x[..., 1:]
  t_lo, t_hi = t[..., :-1], t[..., 1:]
  mass = jnp.where(lo >= 0, t_lo - t_hi,
                   jnp.where(hi <= 0, t_hi - t_lo, 1 - t_lo - t_hi))
  return jnp.where(j[:, :-1] < n, mass, 0.0).astype(dtype)


def real_extent(shape, size):
  """`[rows, cols]` bool of static `shape`: True in the `size[0] x
  size[1]` top-left corner (`size` traced)."""
  return ((jnp.arange(shape[0]) < size[0])[:, None]
          & (jnp.arange(shape[1]) < size[1])[None, :])


def scales(area, feather, grow, dtype=jnp.float32):
  """Step 1's lengths in pixels, for masks of `area` `[...]`: `(width,
  sigma, g, sigma1)`, each `[...]` (`width` the 10 %-90 % rise)."""
  side = jnp.sqrt(jnp.maximum(area, 1.0))
  width = jnp.asarray(feather, dtype) / 100 * side
  sigma = width / RISE
  g = jnp.asarray(grow, dtype) / 100 * side
  sigma1 = jnp.maximum(jnp.maximum(sigma, (jnp.abs(g) + 3 * sigma) / _REACH),
                       _MIN_SIGMA)
  return width, sigma, g, sigma1


def tails(n, length: int, sigma, dtype=jnp.float32):
  """`[..., length]`: the mass of a Gaussian of `sigma` centred on pixel `k`
  that falls past the real extent `[-1/2, n - 1/2]` (zero for `k >= n`):
  what `blur_matrix(..., outside="zero")`'s row `k` lacks of 1."""
  sigma = jnp.asarray(sigma, dtype)[..., None]
  k = jnp.arange(length, dtype=dtype)
  t = special.ndtr(-(k + 0.5) / sigma) + special.ndtr(-(n - 0.5 - k) / sigma)
  return jnp.where(jnp.arange(length) < n, t, 0.0).astype(dtype)


def from_blur(b, c, mask, feather, grow, lengths):
  """Steps 3-4: the ramp from `b` `[..., H, W]`, the mask's edge blurred
  by `sigma1`, and `c = 1 - b` summed on its own (so that both keep their
  relative precision in float32: `ndtri` is steep near 0 and 1); `mask`
  itself is the result for `feather = grow = 0`.

  Args:
    b, c: `[..., H, W]` float, in [0, 1], `b + c = 1` up to rounding.
    mask: `[..., H, W]` float (or broadcasting to it).
    feather, grow: float scalars (traced), as for `ramp`.
    lengths: `scales(area, feather, grow)`.

  Returns:
    `(weights, span)` as for `ramp`, before zeroing past the real extent
    or for empty masks.
  """
  width, sigma, g, sigma1 = lengths
  # ndtri(clip(b, _LOW, 1 - _TOP)), read from the smaller of b and c
  z = jnp.where(b <= c, special.ndtri(jnp.clip(b, _LOW, 0.5)),
                -special.ndtri(jnp.clip(c, _TOP, 0.5)))
  d = sigma1[..., None, None] * z
  shifted = d + g[..., None, None]
  soft = feather > 0
  safe_sigma = jnp.where(soft, sigma, 1.0)[..., None, None]
  out = jnp.where(soft, special.ndtr(shifted / safe_sigma),
                  jnp.where(grow == 0, mask, (shifted > 0).astype(b.dtype)))
  span = jnp.where(soft, jnp.maximum(width, 1.0), 0.0)
  return out, span


def ramp(mask, size, feather, grow, outside: str = "edge"):
  """The relative ramp before the border factor (steps 1-4 above).

  Args:
    mask: `[..., Hb, Wb]` float, real content in `[..., :size[0],
      :size[1]]`.
    size: int32 `(h, w)`, traced.
    feather: float scalar (traced), 0..100.
    grow: float scalar (traced), -100..100.
    outside: static: what the blur reads past the real extent, "edge" (the
      edge pixels repeated, step 2) or "zero" (an empty mask: a mask that
      reaches the rectangle's border has an edge there).

  Returns:
    `(weights, span)`: `[..., Hb, Wb]` in [0, 1], zero outside `[:h, :w]`;
    `span` `[...]`, the border factor's width in pixels (0 where `feather`
    is 0: no border factor).
  """
  dtype = jnp.promote_types(mask.dtype, jnp.float32)
  hb, wb = mask.shape[-2:]
  inside = real_extent((hb, wb), size)
  mask = jnp.where(inside, jnp.clip(mask.astype(dtype), 0, 1), 0)
  area = jnp.sum(mask, axis=(-2, -1))
  feather = jnp.asarray(feather, dtype)
  lengths = scales(area, feather, grow, dtype)
  sigma1 = lengths[-1]
  rows = blur_matrix(size[0], hb, sigma1, dtype, outside)
  cols = blur_matrix(size[1], wb, sigma1, dtype, outside)
  edge = jnp.where(inside, jnp.clip(10 * (mask - 0.5) + 0.5, 0, 1), 0)
  # the edge and its complement blurred apart: sums of non-negative terms
  both = jnp.stack([edge, jnp.where(inside, 1 - edge, 0)], axis=-3)
  both = jnp.einsum("...uj,...cjl,...vl->...cuv", rows, both, cols,
                    precision=lax.Precision.HIGHEST)
  b, c = both[..., 0, :, :], both[..., 1, :, :]
  if outside == "zero":  # the complement holds the mass past the extent
    ty = tails(size[0], hb, sigma1, dtype)[..., :, None]
    tx = tails(size[1], wb, sigma1, dtype)[..., None, :]
    c = c + ty + tx - ty * tx
  out, span = from_blur(b, c, mask, feather, grow, lengths)
  out = jnp.where(inside & (area > 0)[..., None, None], out, 0)
  return out, span


def border(window, shift, size, span):
  """The border factor of a window of an `h x w` rectangle.

  `smoothstep(dist / span)` with `dist = min(u, h - 1 - u, v, w - 1 - v)`
  for rectangle pixel `(u, v)`: 0 on the border ring, 1 from `span` pixels
  inward. `span <= 0` gives all ones.

  Args:
    window: static `(rows, cols)` of the result.
    shift: int32 `(dy, dx)`: entry `(u, v)` is rectangle pixel `(u + dy, v +
      dx)`.
    size: int32 `(h, w)` of the rectangle.
    span: float `[...]` (traced), pixels.

  Returns:
    `[..., rows, cols]` float32 (float64 for a float64 `span`).
  """
  span = jnp.asarray(span)
  dtype = jnp.promote_types(span.dtype, jnp.float32)

  def dist(count, offset, n):
    i = jnp.arange(count) + offset
    return jnp.minimum(i, n - 1 - i).astype(dtype)

  d = jnp.minimum(dist(window[0], shift[0], size[0])[:, None],
                  dist(window[1], shift[1], size[1])[None, :])
  safe = jnp.where(span > 0, span, 1.0)[..., None, None]
  t = jnp.clip(d / safe, 0, 1)
  return jnp.where(span[..., None, None] > 0, t * t * (3 - 2 * t), 1.0)


def relative_weights(mask, size, feather, grow, outside: str = "edge"):
  """Feathers masks relative to their size (`feather_mode="relative"`).

  See the module's docstring for the definition.

  Args:
    mask: `[..., Hb, Wb]` float in [0, 1], real content in `[..., :size[0],
      :size[1]]` (anything past it is ignored).
    size: int32 `(h, w)`, traced.
    feather: float scalar (traced), 0..100: the ramp's 10 %-90 % width
      across a straight mask edge, in per cent of `sqrt(area)`, `area` the
      mask's sum over its real extent. An empty mask gives zero weights.
    grow: float scalar (traced), -100..100, per cent of `sqrt(area)`: moves
      the ramp's 50 % level outward (positive) or inward (negative) off the
      mask's edge. With `feather = 0`: a hard edge at that level (the mask
      itself for `grow = 0`).
    outside: static: what the blur reads past the real extent: "edge" (the
      box paste: the mask's edge pixels repeated, so a mask reaching its
      crop's border has no edge there) or "zero" (the aligned paste: the
      crop ends there, so that border is an edge of the mask).

  Returns:
    `[..., Hb, Wb]` float32 (float64 for float64 masks under x64) weights
    in [0, 1], zero outside `[:h, :w]` and, for every `feather > 0`, on the
    border ring of the `h x w` rectangle.
  """
  mask = jnp.asarray(mask)
  out, span = ramp(mask, size, feather, grow, outside)
  return out * border(mask.shape[-2:], (0, 0), size, span).astype(out.dtype)


def pasted_span(span, mask_hw, ref_hw):
  """The border factor's width `span` (mask pixels) in pasted pixels, for a
  mask of `mask_hw` resized to `ref_hw` (the geometric mean of the two
  axes' scales)."""
  scale = jnp.sqrt((ref_hw[0] * ref_hw[1]).astype(span.dtype)
                   / jnp.maximum(mask_hw[0] * mask_hw[1], 1).astype(
                       span.dtype))
  return span * scale


def segment_weights(mask, mask_hw, ref_hw, window, shift, feather, grow):
  """One segment's relative ramp and its border factor, as both paste
  forms take them.

  Args:
    mask: `[Fm, Hb, Wb]` float, real content in `[:, :mask_hw[0],
      :mask_hw[1]]`.
    mask_hw, ref_hw: int32 `(h, w)`: the mask's and the pasted pixels'
      real sizes (the ramp is resized from one to the other by the
      caller).
    window: static `(rows, cols)` of the paste's window.
    shift: int32 `(dy, dx)`: window pixel `(u, v)` shows pasted pixel
      `(u + dy, v + dx)`.
    feather, grow: float scalars (traced), per cent.

  Returns:
    `(ramp [Fm, Hb, Wb], border [rows, cols])`: the ramp at the mask's
    size, and the border factor over the window, its width the ramp's
    span in pasted pixels.
  """
  r, span = ramp(mask, mask_hw, feather, grow)
  return r, border(window, shift, ref_hw, pasted_span(span, mask_hw, ref_hw))


def relative_blur_mask(mask, feather, *, grow=0.0) -> jax.Array:
  """Feathers masks relative to their size (`feather_mode="relative"`).

  The ramp's 10 %-90 % width across a straight edge is `feather` per cent
  of `sqrt(area)` (`area` the mask's sum), its 50 % level `grow` per cent
  of `sqrt(area)` outside the mask's 0.5 level (inside for negative
  values), and the result is 0 on the mask's border ring for `feather > 0`
  (see `relative_weights`). `feather` and `grow` are traced: one program
  per mask shape.

  Args:
    mask: `[h, w]` or `[..., h, w]` float array, values in [0, 1].
    feather: number in 0..100 (0: a hard edge).
    grow: number in -100..100.

  Returns:
    float32 weights of `mask`'s shape (float64 for float64 masks under
    x64), in [0, 1]; each `[h, w]` slice feathered on its own.
  """
  mask = jnp.asarray(mask)
  if not jnp.issubdtype(mask.dtype, jnp.floating):
    raise TypeError(f"mask: expected a float array, got dtype {mask.dtype}")
  if mask.ndim < 2 or 0 in mask.shape[-2:]:
    raise ValueError(f"mask: expected a non-empty [h, w] or [..., h, w], "
                     f"got shape {mask.shape}")
  for value, name, bound in ((feather, "feather", 0), (grow, "grow", -100)):
    if not isinstance(value, jax.core.Tracer):
      check_number(value, name, bound, 100)
  return _relative_jit(mask, feather, grow)


@jax.jit
def _relative_jit(mask, feather, grow):
  h, w = mask.shape[-2:]
  return relative_weights(mask, (jnp.int32(h), jnp.int32(w)), feather, grow)
