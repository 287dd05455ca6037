"""Resampling filters as per-axis weight matrices, for traced sizes.

Resizing a region whose size is only known at run time, inside a buffer of
static size, to a target whose placement is also traced cannot use a
resize of static shapes. Here one axis of such a resize is a `[out, in]`
matrix built from the traced sizes (as `feather.axis_matrix` builds the
node's blur): applying it is a matrix product, with no data-dependent
shapes and no branches.

The convention is Pillow's: output pixel `t` of a target interval of
length `n_out` samples the source interval of length `n_in` around the
centre `c = (t + 0.5) * n_in / n_out` (source pixel `j` spans `[j, j + 1)`);
source pixel `j` weighs `k((j + 0.5 - c) / f)` with `f = max(n_in / n_out,
1)`, so a filter of support `a` reaches `a * f` source pixels: widened when
downscaling, which is the antialiasing. The weights are normalised to sum
to 1 over the taps that lie inside the source interval, so nothing outside
it is ever read (the edges are not padded, as in Pillow).

Tap offsets are counted in integers (`tap_offsets`), so that a resize
between intervals of equal length puts every tap at an exact integer
offset: the kernel is then exactly 1 and 0, and the resize the identity,
bit for bit, at every size.

Three forms of one axis, the same weights in each:

- `axis_weights`: the dense `[out, in]` matrix (a matrix product applies
  it). Every output reads the whole input: cheap on matrix units and for
  short axes, a waste on long ones.
- `axis_band`: for each output pixel, the first of a static number of
  consecutive taps (`taps`) and their weights: a gather reads only them.
  Static taps need a bound on the stretch `n_in / n_out`.
- `axis_spread`: the transpose of that: for each input pixel, the first of
  `taps` consecutive outputs it reaches and its weights there, scattered
  (added) into the outputs, then divided by each output's total weight.
  It needs a bound on `n_out / n_in` instead: the way back from a model,
  where a small region gathers the whole model crop (its stretch is
  unbounded) but every model pixel reaches a bounded number of outputs.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

# name -> support (the kernel is zero at and beyond it)
SUPPORT = {"linear": 1.0, "cubic": 2.0, "lanczos3": 3.0, "lanczos5": 5.0}
METHODS = tuple(SUPPORT)
_CUBIC_A = -0.5  # Keys' cubic, as Pillow's BICUBIC and jax.image's "cubic"


def _sin_pi(x):
  """`sin(pi x)`, exactly 0 at integers (so that a Lanczos kernel at an
  integer offset is exactly 0, and a resize by 1 exactly the identity)."""
  n = jnp.round(x)
  sign = 1 - 2 * jnp.mod(n, 2)
  return sign * jnp.sin(np.pi * (x - n))


def _sinc(x):
  safe = jnp.where(x == 0, 1.0, x)
  return jnp.where(x == 0, 1.0, _sin_pi(safe) / (np.pi * safe))


def kernel(method: str, x):
  """The filter `method` at offsets `x` (in filter units), any shape."""
  ax = jnp.abs(x)
  if method == "linear":
    return jnp.maximum(1.0 - ax, 0.0)
  if method == "cubic":
    a = _CUBIC_A
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return jnp.where(ax < 1, near, jnp.where(ax < 2, far, 0.0))
  support = SUPPORT[method]  # lanczos
  return jnp.where(ax < support, _sinc(x) * _sinc(x / support), 0.0)


def tap_offsets(t, j, dst_start, dst_size, src_start, src_size, dtype):
  """The offset, in filter units, of input sample `j` from output `t`'s
  centre (module docstring), counted in int32 and divided once: exactly
  an integer wherever it is one (`n_in == n_out` above all).

  `2 * n_out * (j + 0.5 - c)` is the integer `(2 (j - src_start) + 1) n_out
  - (2 (t - dst_start) + 1) n_in`; dividing it by `2 max(n_in, n_out)`
  (twice `n_out` times the widening) gives the offset, as an exact
  quotient plus a remainder's fraction. Exact while `4 * n_in * n_out`
  stays below 2**31 for `t`, `j` inside their intervals
  (`trace_checks.model_size` keeps it so).
  """
  n_in = src_size
  n_out = jnp.maximum(dst_size, 1)
  num = (2 * (j - src_start) + 1) * n_out - (2 * (t - dst_start) + 1) * n_in
  den = 2 * jnp.maximum(jnp.maximum(n_in, n_out), 1)
  whole = jnp.floor_divide(num, den)
  return whole.astype(dtype) + (num - whole * den).astype(dtype) / den.astype(
      dtype)


def _tap_weights(t, j, dst_start, dst_size, src_start, src_size, method,
                 dtype):
  """Unnormalised weights of input `j` for output `t` (any broadcast
  shapes), 0 outside either interval."""
  offset = tap_offsets(t, j, dst_start, dst_size, src_start, src_size, dtype)
  inside = ((j >= src_start) & (j < src_start + src_size)
            & (t >= dst_start) & (t < dst_start + dst_size))
  return jnp.where(inside, kernel(method, offset), 0.0).astype(dtype)


def _normalise(weights, total):
  return jnp.where(total != 0, weights / jnp.where(total != 0, total, 1), 0)


def _columns(*values):
  return tuple(jnp.asarray(v)[..., None, None] for v in values)


def axis_weights(out_length: int, in_length: int, dst_start, dst_size,
                 src_start, src_size, method: str, dtype=jnp.float32):
  """One axis of a resize between two traced intervals, as matrices.

  Row `t` holds the weights with which output sample `t` takes the input
  samples `0 .. in_length - 1`: for `t` in `[dst_start, dst_start +
  dst_size)`, the source interval `[src_start, src_start + src_size)`
  resampled to `dst_size` samples (module docstring), the input outside
  that interval weighing 0; rows outside the target interval are 0.

  Args:
    out_length: static, the output buffer's length.
    in_length: static, the input buffer's length.
    dst_start, dst_size: int `[...]` (traced), the target interval.
    src_start, src_size: int `[...]` (traced), the source interval; all
      four broadcast together to the batch shape `[...]`.
    method: one of `METHODS`.
    dtype: float32, or float64 (under x64).

  Returns:
    `[..., out_length, in_length]` of `dtype`.
  """
  ds, dn, ss, sn = _columns(dst_start, dst_size, src_start, src_size)
  t = jnp.arange(out_length, dtype=jnp.int32)[:, None]
  j = jnp.arange(in_length, dtype=jnp.int32)[None, :]
  weights = _tap_weights(t, j, ds, dn, ss, sn, method, dtype)
  return _normalise(weights, jnp.sum(weights, axis=-1, keepdims=True))


def band_taps(method: str, max_stretch: float) -> int:
  """Static taps that hold every nonzero weight of an output (`axis_band`)
  or every output an input reaches (`axis_spread`), for a stretch (`n_in /
  n_out`, resp. `n_out / n_in`) of at most `max_stretch`: the open window
  `2 * support * max(stretch, 1)` long holds at most its ceiling of
  integers; one more absorbs rounding in the window's start."""
  return math.ceil(2 * SUPPORT[method] * max(max_stretch, 1.0)) + 1


def _window_start(pos, own_start, n_from, n_to, support: int, taps: int,
                  length: int):
  """First of `taps` consecutive samples on one side that hold every
  sample the filter reaches from sample `pos` (relative to its interval's
  start) of the other side, an interval of `n_from` resampled to `n_to`.

  `pos`'s centre lies at `c = own_start + (2 pos + 1) n_to / (2 n_from)`
  on this side and the filter reaches `support * max(n_to, n_from) /
  n_from` either way, so the window starts at `floor(c - 0.5 - reach)`:
  computed exactly in int32, so that every use of it agrees to the sample
  (a float start may round one way where weights are gathered and the
  other where they are totalled). Kept inside `[0, length)`: moving it
  inward trades taps outside the buffer, which weigh 0, for others that
  do too.
  """
  n_from = jnp.maximum(n_from, 1)
  num = ((2 * pos + 1) * n_to - n_from
         - 2 * support * jnp.maximum(n_to, n_from))
  start = own_start + jnp.floor_divide(num, 2 * n_from)
  return jnp.clip(start, 0, max(length - taps, 0)).astype(jnp.int32)


def tile_window(taps: int, tile: int, max_stretch: float) -> int:
  """Samples a tile of `tile` consecutive outputs (`axis_band`) or inputs
  (`axis_spread`) reaches: each next sample's window starts at most
  `max_stretch` later (rounded up once over the tile), and is `taps`
  long."""
  return taps + math.ceil((tile - 1) * max(max_stretch, 0.0))


def axis_band(out_length: int, in_length: int, tile: int, window: int,
              dst_start, dst_size, src_start, src_size, method: str,
              dtype=jnp.float32):
  """`axis_weights` in tiles of `tile` output rows, each reading `window`
  consecutive inputs (a gather of the windows and small matrix products
  apply it).

  Requires `window >= tile_window(band_taps(method, s), tile, s)` for the
  largest stretch `s = src_size / dst_size` of any interval pair given,
  and `window <= in_length`.

  Returns:
    `(start [..., T], weights [..., T, tile, window])`, `T = ceil(
    out_length / tile)`: output `i * tile + u` is `sum_w weights[..., i,
    u, w] * x[start[..., i] + w]`, equal to that row of `axis_weights`.
  """
  ds, dn, ss, sn = _columns(dst_start, dst_size, src_start, src_size)
  tiles = -(-out_length // tile)
  first = jnp.arange(tiles, dtype=jnp.int32)[:, None] * tile  # [T, 1]
  start = _window_start(first - ds, ss, dn, sn, int(SUPPORT[method]), window,
                        in_length)  # [..., T, 1]
  t = (first + jnp.arange(tile, dtype=jnp.int32))[..., None]  # [T, tile, 1]
  j = start[..., None] + jnp.arange(window, dtype=jnp.int32)  # [..., T, 1, w]
  ds, dn, ss, sn = (v[..., None] for v in (ds, dn, ss, sn))
  weights = _tap_weights(t, j, ds, dn, ss, sn, method, dtype)
  weights = _normalise(weights, jnp.sum(weights, axis=-1, keepdims=True))
  return start[..., 0], weights


def axis_spread(out_length: int, in_length: int, tile: int, window: int,
                dst_start, dst_size, src_start, src_size, method: str,
                dtype=jnp.float32):
  """`axis_weights` in tiles of `tile` input rows, each reaching `window`
  consecutive outputs (small matrix products make each tile's part, added
  into the outputs at the windows, then divided by each output's total
  weight).

  Requires `window >= tile_window(band_taps(method, s), tile, s)` for the
  largest `s = dst_size / src_size` of any interval pair given, and
  `window <= out_length`.

  Returns:
    `(start [..., T], weights [..., T, window, tile], total [...,
    out_length])`, `T = ceil(in_length / tile)`: output `t` is the sum
    over tiles `i` and `w` with `start[..., i] + w = t` of `sum_u
    weights[..., i, w, u] * x[i * tile + u]`, divided by `total[t]` where
    that is not 0 (0 where it is): row `t` of `axis_weights` applied.
  """
  ds, dn, ss, sn = _columns(dst_start, dst_size, src_start, src_size)
  tiles = -(-in_length // tile)
  first = jnp.arange(tiles, dtype=jnp.int32)[:, None] * tile  # [T, 1]
  start = _window_start(first - ss, ds, sn, dn, int(SUPPORT[method]), window,
                        out_length)  # [..., T, 1]
  j = (first + jnp.arange(tile, dtype=jnp.int32))[:, None, :]  # [T, 1, tile]
  t = start[..., None] + jnp.arange(window, dtype=jnp.int32)[:, None]
  ds, dn, ss, sn = (v[..., None] for v in (ds, dn, ss, sn))
  weights = _tap_weights(t, j, ds, dn, ss, sn, method, dtype)
  total = _scatter_add(jnp.zeros(weights.shape[:-3] + (out_length,), dtype),
                       t[..., 0], jnp.sum(weights, axis=-1))
  return start[..., 0], weights, total


def _scatter_add(total, index, weights):
  """`total[..., index[..., i, w]] += weights[..., i, w]` over the batch."""
  batch = total.shape[:-1]
  flat_total = total.reshape((-1, total.shape[-1]))
  flat_index = jnp.broadcast_to(index, weights.shape).reshape(
      (flat_total.shape[0], -1))
  flat_weights = weights.reshape((flat_total.shape[0], -1))
  rows = jnp.arange(flat_total.shape[0])[:, None]
  return flat_total.at[rows, flat_index].add(flat_weights).reshape(
      batch + total.shape[-1:])
