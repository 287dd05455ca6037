"""Colour matching: a pasted crop takes the tone of the pixels it replaces.

Three methods, each from weighted statistics of the crop `x` and of a
reference `r` (in the paste: the frame's pixels under the crop's window),
with the same weights `w` for both (a face mask):

- "lowfreq": `x + G(w (r - x)) / G(w)`, `G` a Gaussian blur of sigma
  `LOWFREQ_SIGMA * sqrt(h * w)` of the crop's real size: the reference's
  low frequencies under the crop's detail (FaceFusion's idea, in the
  normalised-convolution form that ignores pixels of weight 0).
- "rct": Reinhard's transfer in CIELAB (D65, sRGB companding, the values
  `skimage.color.rgb2lab` computes): per channel `(x - mu_x) s_r / s_x +
  mu_r`, L clipped to [0, 100] and a, b to [-127, 127], back to sRGB as
  `skimage.color.lab2rgb` does.
- "mkl": the linear Monge-Kantorovich map of the RGB means and covariances,
  `(x - mu_x) T + mu_r`, `T = A^-1/2 (A^1/2 B A^1/2)^1/2 A^-1/2` (Pitie and
  Kokaram 2007), `A` the crop's covariance and `B` the reference's.

The result is mixed with the crop by `strength` and clipped to [0, 1]. All
of it is straight-line `jnp` (the 3x3 square roots are one batched `eigh`):
no loop, no branch, every value traced but the method.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from segspaste_jax._src import types
from segspaste_jax._src.validate import check_choice, check_strength

METHODS = types.COLOR_MATCHES[1:]  # lowfreq, rct, mkl

# "none" and METHODS: what the paste's `color_match` takes.
COLOR_MATCHES = types.COLOR_MATCHES

# lowfreq's default sigma, in units of sqrt(h * w) of the crop's real size:
# a cell of about a sixteenth of a face, as FaceFusion's coarsest level.
LOWFREQ_SIGMA = 1 / 16
# lowfreq blurs on a grid of at most this many cells per axis (area means
# of f x f pixels), blurs there and interpolates back bilinearly: the
# blur's cost no longer grows with sigma or the crop's size.
_COARSE = 64
# Guards: the Lab standard deviation's floor (rct), the covariance's ridge
# (mkl), and the normalised convolution's denominator (lowfreq).
_RCT_EPS = 0.1
_MKL_EPS = 1e-4
_LOWFREQ_EPS = 1e-6

_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = (0.95047, 1.0, 1.08883)  # CIE 1931 2-degree observer


# ----------------------------------------------------------------------------
# sRGB <-> CIELAB, as scikit-image computes it (with finite gradients).

def _mix3(m, c, offset=None):
  """`c @ m.T (+ offset)` over the last axis, `m` `[..., 3, 3]` and
  `offset` `[..., 3]` (static or traced, broadcasting against `c`), as
  three broadcast products: no matrix unit (full float32 precision on
  every backend; a contraction over three channels is no work for one,
  and XLA:CPU runs it far slower as a dot) and no stacking of channels
  (XLA:CPU would evaluate the concatenation element by element inside a
  fused loop)."""
  m = jnp.asarray(m, c.dtype)
  out = sum(c[..., j:j + 1] * m[..., :, j] for j in range(3))
  return out if offset is None else out + jnp.asarray(offset, c.dtype)


def _pow(x, e: float, floor: float):
  """`max(x, floor) ** e` as `exp(e log x)`: one fused pair of
  transcendentals where XLA:CPU runs `pow` and `cbrt` element by element."""
  return jnp.exp(e * jnp.log(jnp.maximum(x, floor)))


# CIELAB from f(X), f(Y), f(Z) (and back) as linear maps plus offsets.
_LAB_FROM_F = np.array([[0.0, 116.0, 0.0], [500.0, -500.0, 0.0],
                        [0.0, 200.0, -200.0]])
_F_FROM_LAB = np.linalg.inv(_LAB_FROM_F)


def rgb_to_lab(rgb):
  """sRGB `[..., 3]` in [0, 1] to CIELAB (D65), as `skimage.color.rgb2lab`."""
  lin = jnp.where(rgb > 0.04045, _pow((rgb + 0.055) / 1.055, 2.4, 0.04),
                  rgb / 12.92)
  xyz = _mix3(_XYZ_FROM_RGB / np.asarray(_WHITE_D65)[:, None], lin)
  f = jnp.where(xyz > 0.008856, _pow(xyz, 1 / 3, 0.008856),
                7.787 * xyz + 16 / 116)
  return _mix3(_LAB_FROM_F, f, (-16.0, 0.0, 0.0))


def lab_to_rgb(lab):
  """CIELAB (D65) `[..., 3]` to sRGB in [0, 1], as `skimage.color.lab2rgb`
  (which sets a negative `f(Z)` to 0 and clips the result)."""
  f = _mix3(_F_FROM_LAB, lab, _F_FROM_LAB @ np.array([16.0, 0.0, 0.0]))
  f = jnp.maximum(f, jnp.asarray([-np.inf, -np.inf, 0.0], lab.dtype))
  xyz = jnp.where(f > 0.2068966, f * f * f, (f - 16 / 116) / 7.787)
  lin = _mix3(_RGB_FROM_XYZ * np.asarray(_WHITE_D65)[None, :], xyz)
  rgb = jnp.where(lin > 0.0031308,
                  1.055 * _pow(lin, 1 / 2.4, 0.0031308) - 0.055, 12.92 * lin)
  return jnp.clip(rgb, 0, 1)


# ----------------------------------------------------------------------------
# Weighted statistics and the symmetric square root.

def _stats(x, w, cov: bool):
  """Weighted mean `[..., k]` and variances `[..., k]` (or covariance
  `[..., k, k]`) of `x` `[..., h, w, k]` under weights `w` `[..., h, w,
  1]` (zero for zero weights), as `E[x x'] - E[x] E[x]'`.

  The sums over pixels are matrix products over the flattened pixels:
  what XLA:CPU reduces fastest, at full precision on every backend.
  """
  lead = jnp.broadcast_shapes(x.shape[:-3], w.shape[:-3])
  flat = lambda a: jnp.broadcast_to(a, lead + a.shape[-3:]).reshape(
      lead + (-1, a.shape[-1]))
  hi = lax.Precision.HIGHEST
  wf, xf = flat(w), flat(x)
  total = jnp.sum(wf, axis=(-2, -1))[..., None]
  scale = 1 / jnp.where(total > 0, total, 1)
  mean = jnp.einsum("...n,...nk->...k", wf[..., 0], xf, precision=hi) * scale
  if not cov:
    second = jnp.einsum("...n,...nk->...k", wf[..., 0], xf * xf,
                        precision=hi) * scale
    return mean, jnp.maximum(second - mean * mean, 0)
  second = jnp.einsum("...ni,...nj->...ij", wf * xf, xf, precision=hi)
  return mean, (second * scale[..., None]
                - mean[..., :, None] * mean[..., None, :])


def _every(x, stride: int):
  """Every `stride`-th row and column of `[..., h, w, k]`."""
  return x if stride == 1 else x[..., ::stride, ::stride, :]


@jax.custom_jvp
def _sqrt_pair(a):
  """`(A^1/2, A^-1/2)` of symmetric positive definite `[..., 3, 3]`.

  By `eigh`; the derivative is the closed form in the eigenbasis,
  `dS_ij = dA_ij / (s_i + s_j)`, which stays finite where eigenvalues
  repeat (a grey crop), unlike the derivative of `eigh` itself.
  """
  s, u, ut = _eig_sqrt(a)
  return (u * s[..., None, :]) @ ut, (u / s[..., None, :]) @ ut


def _eig_sqrt(a):
  lam, u = jnp.linalg.eigh(0.5 * (a + jnp.swapaxes(a, -1, -2)))
  # Both matrices square-rooted (A + ridge, and A^1/2 (B + ridge) A^1/2)
  # have eigenvalues of at least ridge^2: the floor only catches rounding.
  s = jnp.sqrt(jnp.maximum(lam, 0.5 * _MKL_EPS ** 2))
  return s, u, jnp.swapaxes(u, -1, -2)


@_sqrt_pair.defjvp
def _sqrt_pair_jvp(primals, tangents):
  (a,), (da,) = primals, tangents
  s, u, ut = _eig_sqrt(a)
  d = ut @ (0.5 * (da + jnp.swapaxes(da, -1, -2))) @ u
  si, sj = s[..., :, None], s[..., None, :]
  d_sqrt = d / (si + sj)
  out = ((u * sj) @ ut, (u / sj) @ ut)
  return out, (u @ d_sqrt @ ut, u @ (-d_sqrt / (si * sj)) @ ut)


def _mm(a, b):
  return jnp.matmul(a, b, precision=lax.Precision.HIGHEST)


# ----------------------------------------------------------------------------
# The methods, each as a fit (small statistics from the crop `x`, the
# reference `r` and the weights `w`) and an apply (those statistics used on
# every pixel of `x`): `x`, `r` `[..., h, w, 3]`, `w` `[..., h, w, 1]`.

def _rct_fit(x, r, w, stride: int):
  # both images' statistics in one pass (the channels side by side)
  both = jnp.concatenate([rgb_to_lab(_every(x, stride)),
                          rgb_to_lab(_every(r, stride))], axis=-1)
  m, v = _stats(both, _every(w, stride), cov=False)
  mx, vx, mr, vr = m[..., :3], v[..., :3], m[..., 3:], v[..., 3:]
  gain = jnp.sqrt((vr + _RCT_EPS ** 2) / (vx + _RCT_EPS ** 2))
  return gain, mr - mx * gain  # lab' = lab * gain + offset


def _rct_apply(x, params):
  gain, offset = (p[..., None, None, :] for p in params)
  lab = rgb_to_lab(x) * gain + offset
  lo = jnp.asarray([0.0, -127.0, -127.0], lab.dtype)
  hi = jnp.asarray([100.0, 127.0, 127.0], lab.dtype)
  return lab_to_rgb(jnp.clip(lab, lo, hi))


def _mkl_fit(x, r, w, stride: int):
  # both images' statistics in one pass (the channels side by side)
  both = jnp.concatenate([_every(x, stride), _every(r, stride)], axis=-1)
  m, cov = _stats(both, _every(w, stride), cov=True)
  mx, a = m[..., :3], cov[..., :3, :3]
  mr, b = m[..., 3:], cov[..., 3:, 3:]
  ridge = _MKL_EPS * jnp.eye(3, dtype=x.dtype)
  a_half, a_inv_half = _sqrt_pair(a + ridge)
  mid, _ = _sqrt_pair(_mm(_mm(a_half, b + ridge), a_half))
  t = _mm(_mm(a_inv_half, mid), a_inv_half)
  # x' = (x - mx) t + mr = x t + offset
  offset = mr - jnp.einsum("...i,...ij->...j", mx, t,
                           precision=lax.Precision.HIGHEST)
  return t, offset


def _mkl_apply(x, params):
  t, offset = params  # x t + offset
  return _mix3(jnp.swapaxes(t, -1, -2)[..., None, None, :, :], x,
               offset[..., None, None, :])


def _coarse_axis(n: int) -> tuple[int, int]:
  """`(cells, f)`: the coarse grid's length and pixels per cell along an
  axis of `n` pixels."""
  f = -(-n // _COARSE)
  return -(-n // f), f


def _gauss_matrix(cells: int, sigma):
  """`[..., cells, cells]` Gaussian weights of sigma `sigma` `[...]`."""
  d = jnp.arange(cells, dtype=sigma.dtype)
  d = d[:, None] - d[None, :]
  return jnp.exp(-0.5 * (d / sigma[..., None, None]) ** 2)


def _pool(a, f: int, axis: int):
  """Means of `f` consecutive samples along `axis` (a multiple of `f`
  long): the axis split in two (a free reshape) and its `f` phases added
  as static slices, which XLA:CPU fuses with whatever produces `a`; it
  reduces a split axis, or sums strided slices, several times slower."""
  axis = axis % a.ndim
  if f == 1:
    return a
  split = a.reshape(a.shape[:axis] + (a.shape[axis] // f, f)
                    + a.shape[axis + 1:])
  parts = [lax.index_in_dim(split, k, axis + 1, keepdims=False)
           for k in range(f)]
  return sum(parts[1:], parts[0]) / f


def _phase_weights(f: int) -> np.ndarray:
  """`[3, f]`: bilinear `f`-fold upsampling's weights on the previous, own
  and next cell for each of a cell's `f` output samples (cell `i`'s centre
  at sample `(i + 0.5) f - 0.5`)."""
  weights = np.zeros((3, f))
  for k in range(f):
    pos = (k + 0.5) / f - 0.5
    lo = int(np.floor(pos))  # -1 or 0
    weights[1 + lo, k] += 1 - (pos - lo)
    weights[2 + lo, k] += pos - lo
  return weights


def _neighbours(a, axis: int):
  """`a` shifted by one cell back and forth along `axis`, clamped: three
  static slices of `a` padded by its edge cells."""
  cells = a.shape[axis]
  pads = [(1, 1) if k == axis else (0, 0) for k in range(a.ndim)]
  padded = jnp.pad(a, pads, mode="edge")
  return tuple(lax.slice_in_dim(padded, k, k + cells, axis=axis)
               for k in range(3))


def _upsample(a, f: int, n: int, axis: int, stacked: bool = False):
  """Bilinear `f`-fold upsampling along `axis` (clamped at the ends), cut
  to `n` samples.

  Each output sample mixes its cell with the previous or the next one, by
  a static weight per phase (`_phase_weights`). Two equal forms, for
  XLA:CPU's sake:

  - `stacked=False`: the three neighbour arrays, each repeated `f` times (a
    broadcast and a free reshape) and weighted. Elementwise work that XLA
    fuses into its consumer, which stays a contiguous loop when `axis` is
    the rows (whole rows are repeated): the form for the last pass.
  - `stacked=True`: the `f` phases computed apart and stacked, which XLA
    writes out as an array of its own: the form for the first pass, along
    the columns, on the small array of coarse rows (fused into a consumer,
    the stacking becomes a select per element).
  """
  axis = axis % a.ndim
  if f == 1:
    return lax.slice_in_dim(a, 0, n, axis=axis)
  cells = a.shape[axis]
  near = _neighbours(a, axis)
  weights = _phase_weights(f)
  if stacked:
    out = jnp.stack([sum(b * float(weights[j, k])  # weak: keeps a's dtype
                         for j, b in enumerate(near)) for k in range(f)],
                    axis=axis + 1)
  else:
    shape = [1] * (a.ndim + 1)
    shape[axis + 1] = f
    out = sum(jnp.expand_dims(b, axis + 1)
              * jnp.asarray(wt, a.dtype).reshape(shape)
              for b, wt in zip(near, weights))
  full = a.shape[:axis] + (cells * f,) + a.shape[axis + 1:]
  return lax.slice_in_dim(out.reshape(full), 0, n, axis=axis)


def _lowfreq_fit(x, r, w, sigma):
  """The coarse shift `G(w (r - x)) / G(w)` `[..., cells, cells, 3]`; `w`
  `[..., h, w, 1]` raw weights, `sigma` `[...]` in pixels.

  The blur runs on the coarse grid: area means of `f x f` cells, a
  Gaussian there whose variance, added to the cells' own (`f^2 / 12`) and
  the bilinear interpolation's (`f^2 / 6`), makes `sigma^2` (at least half
  a cell), and (in `_lowfreq_apply`) bilinear interpolation back.
  """
  h, wd = x.shape[-3:-1]
  (ch, fh), (cw, fw) = _coarse_axis(h), _coarse_axis(wd)

  def cells(a):  # weights pooled at their own (unbroadcast) shape
    pads = [(0, 0)] * (a.ndim - 3) + [(0, ch * fh - h), (0, cw * fw - wd),
                                      (0, 0)]
    return _pool(_pool(jnp.pad(a, pads), fh, -3), fw, -2)

  num = cells(w * (r - x))
  lead = num.shape[:-3]
  planes = jnp.concatenate(
      [num, jnp.broadcast_to(cells(w), lead + num.shape[-3:-1] + (1,))], -1)
  sigma = jnp.broadcast_to(sigma, lead).astype(x.dtype)

  def coarse_sigma(f):
    return jnp.sqrt(jnp.maximum((sigma / f) ** 2 - 0.25, 0.25))

  gr = _gauss_matrix(ch, coarse_sigma(fh))
  gc = _gauss_matrix(cw, coarse_sigma(fw))
  low = jnp.einsum("...ij,...jlk,...ml->...imk", gr, planes, gc,
                   precision=lax.Precision.HIGHEST)
  return low[..., :-1] / (low[..., -1:] + _LOWFREQ_EPS)


def _lowfreq_apply(x, shift):
  h, wd = x.shape[-3:-1]
  fh, fw = _coarse_axis(h)[1], _coarse_axis(wd)[1]
  return x + _upsample(_upsample(shift, fw, wd, -2, stacked=True), fh, h, -3)


# ----------------------------------------------------------------------------
# The traceable step: fit, apply, and both at once.

class Fit(NamedTuple):
  """What `fit` learns for `apply` (small arrays, leading axes batched).

  Attributes:
    params: the method's statistics (lowfreq: the coarse shift; rct: Lab
      gain and offset; mkl: the 3x3 map and offset).
    has_weight: `[...]` bool: the weights were not all zero.
  """

  params: tuple
  has_weight: jax.Array


def _colour(c: int) -> int:
  """How many of `c` channels are colour (the rest is alpha)."""
  return 1 if c == 1 else 3


def fit(x, r, w, method: str, sigma=None, size=None,
        stride: int = 1) -> Fit:
  """The colour step's statistics (inputs assumed valid; see `match`)."""
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  k = _colour(x.shape[-1])
  x, r = x[..., :k], r[..., :k]
  lead = jnp.broadcast_shapes(x.shape[:-3], r.shape[:-3], w.shape[:-2])
  x = jnp.broadcast_to(x, lead + x.shape[-3:])
  r = jnp.broadcast_to(r, lead + x.shape[-3:])
  # the weights keep their own leading shape (often one for every frame)
  w = w[..., None].astype(x.dtype)
  if x.shape[-1] == 1:  # grey: matched as the RGB image (g, g, g)
    x, r = jnp.repeat(x, 3, -1), jnp.repeat(r, 3, -1)
  total = jnp.sum(w, axis=(-3, -2, -1))
  has_weight = jnp.broadcast_to(total > 0, lead)
  if method == "lowfreq":
    if sigma is None:
      hw = x.shape[-3:-1] if size is None else size
      sigma = LOWFREQ_SIGMA * jnp.sqrt(
          jnp.asarray(hw[0], x.dtype) * jnp.asarray(hw[1], x.dtype))
    sigma = jnp.maximum(jnp.asarray(sigma, x.dtype), 1e-3)
    return Fit((_lowfreq_fit(x, r, w, sigma),), has_weight)
  return Fit((_rct_fit if method == "rct" else _mkl_fit)(x, r, w, stride),
             has_weight)


def apply(x, learned: Fit, method: str, strength):
  """`x` `[..., h, w, C]` (C 1, 3 or 4) matched by what `fit` learned,
  mixed with itself by `strength` (scalar or `[...]`) and clipped to [0,
  1]; `x` itself where the weights were all zero. Alpha passes through."""
  lead = learned.has_weight.shape
  x = jnp.broadcast_to(x, lead + x.shape[-3:])
  k = _colour(x.shape[-1])
  x, alpha = x[..., :k], x[..., k:]
  grey = k == 1
  rgb = jnp.repeat(x, 3, -1) if grey else x
  if method == "lowfreq":
    matched = _lowfreq_apply(rgb, learned.params[0])
  else:
    matched = (_rct_apply if method == "rct" else _mkl_apply)(
        rgb, learned.params)
  if grey:
    matched = jnp.mean(matched, axis=-1, keepdims=True)
  s = jnp.broadcast_to(jnp.asarray(strength, x.dtype), lead)
  out = jnp.clip(x + s[..., None, None, None] * (matched - x), 0, 1)
  out = jnp.where(learned.has_weight[..., None, None, None], out, x)
  return jnp.concatenate([out, alpha], axis=-1)


def match(x, r, w, method: str, strength, sigma=None, size=None,
          stride: int = 1):
  """The colour step as a traceable function (inputs assumed valid).

  Args:
    x: `[..., h, w, C]` float, the crops (C 1, 3 or 4: alpha passes
      through, in [0, 1]).
    r: `[..., h, w, C']` float (broadcasting against `x`), the reference;
      its first channels are read, as many as `x` has colour channels.
    w: `[..., h, w]` float >= 0 (broadcasting), the weights.
    method: static, one of `METHODS`.
    strength: float scalar or `[...]` (traced), 0..1.
    sigma: lowfreq's sigma in pixels, scalar or `[...]` (traced), or None
      for `LOWFREQ_SIGMA * sqrt(size[0] * size[1])`.
    size: `(h, w)` int scalars (traced): the crops' real size, for the
      default sigma; None: the arrays' `h, w`.
    stride: static: rct and mkl take their statistics from every
      `stride`-th row and column only.

  Returns:
    `[..., h, w, C]` of the broadcast leading shape, colour in [0, 1].
  """
  return apply(x, fit(x, r, w, method, sigma, size, stride), method,
               strength)


def match_color(crops, reference, *, method: str = "lowfreq", weights=None,
                strength=1.0, sigma=None) -> jax.Array:
  """Matches crops' colours to a reference's (the pixels they replace).

  Works under `jax.jit`, `jax.vmap` and `jax.grad` (finite gradients for
  every method, flat and grey crops included); leading axes batch, e.g.
  `[S, N]` as `crop_segs` gives. Statistics are weighted by `weights`, the
  same for crops and reference; where a crop's weights are all zero, or
  `strength` is 0, the crop comes back unchanged.

  Args:
    crops: `[..., h, w, C]` float in [0, 1], C 1, 3 or 4. With C 4, alpha
      passes through untouched; C 1 is read as grey and matched as the RGB
      image `(g, g, g)`, the result's mean over channels kept.
    reference: `[..., h, w, C]` float in [0, 1], the crops' shape.
    method: "lowfreq" (the reference's low frequencies under the crop's
      detail: `x + G(w (r - x)) / G(w)`, `G` a Gaussian blur of sigma
      `sigma`), "rct" (mean and standard deviation per CIELAB channel,
      D65) or "mkl" (the linear Monge-Kantorovich map of the RGB mean and
      covariance). Static.
    weights: optional `[..., h, w]` in [0, 1] (broadcasting against the
      crops' leading axes): which pixels the statistics come from, e.g. a
      face mask, zero past a region's real size. None: all pixels alike.
    strength: number or array broadcasting to the leading axes, in [0, 1]
      (traced): the result is `crop + strength (matched - crop)`, clipped
      to [0, 1].
    sigma: lowfreq's blur in pixels, number or array broadcasting to the
      leading axes (traced), > 0; None: `sqrt(h * w) / 16`. The blur runs
      on a grid of at most 64 cells per axis, so it is at least about half
      a cell (`max(h, w) / 128` pixels).

  Returns:
    `[..., h, w, C]` float of the crops' dtype (float32 at least), in
    [0, 1].

  Raises:
    ValueError, TypeError: naming the argument, at trace time.
  """
  method = check_choice(method, "method", METHODS)
  crops, reference = jnp.asarray(crops), jnp.asarray(reference)
  for name, a in (("crops", crops), ("reference", reference)):
    if not jnp.issubdtype(a.dtype, jnp.floating):
      raise TypeError(f"{name}: expected a float array in [0, 1], got "
                      f"dtype {a.dtype}")
    if a.ndim < 3 or a.shape[-1] not in (1, 3, 4) or 0 in a.shape[-3:-1]:
      raise ValueError(f"{name}: expected [..., h, w, C] with C 1, 3 or 4, "
                       f"got shape {a.shape}")
  if reference.shape != crops.shape:
    raise ValueError(f"reference: expected the crops' shape {crops.shape}, "
                     f"got {reference.shape}")
  if weights is not None:
    weights = jnp.asarray(weights)
    if (not jnp.issubdtype(weights.dtype, jnp.floating)
        and weights.dtype != bool):
      raise TypeError(f"weights: expected a float array in [0, 1], got "
                      f"dtype {weights.dtype}")
    try:
      jnp.broadcast_shapes(weights.shape, crops.shape[:-1])
    except ValueError:
      weights = None
      ok = False
    else:
      ok = weights.ndim >= 2 and weights.shape[-2:] == crops.shape[-3:-1]
    if not ok:
      raise ValueError(f"weights: expected [..., h, w] broadcasting to "
                       f"{crops.shape[:-1]}")
  check_strength(strength)
  if sigma is not None and not isinstance(sigma, jax.core.Tracer):
    value = np.asarray(sigma)
    if not np.issubdtype(value.dtype, np.number) or value.dtype == bool:
      raise TypeError(f"sigma: expected a positive number, got {sigma!r}")
    if not (np.all(np.isfinite(value)) and np.all(value > 0)):
      raise ValueError(f"sigma: expected a positive number, got {sigma}")
  return _match_jit(crops, reference, weights, strength, sigma,
                    method=method)


@functools.partial(jax.jit, static_argnames="method")
def _match_jit(crops, reference, weights, strength, sigma, *, method):
  dtype = jnp.promote_types(crops.dtype, jnp.float32)
  x, r = crops.astype(dtype), reference.astype(dtype)
  w = (jnp.ones(x.shape[:-1], dtype) if weights is None
       else weights.astype(dtype))
  return match(x, r, w, method, strength, sigma)
