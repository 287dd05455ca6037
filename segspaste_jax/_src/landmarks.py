"""Landmarks to transforms: the least-squares similarity onto a template.

For points `p_k` and template points `q_k` (k = 1..K), the similarity
`q = s R p + t` (rotation `R`, uniform scale `s > 0`, translation `t`, no
reflection) that minimises `sum_k |q_k - s R p_k - t|^2` is Umeyama's (1991)
estimate, the one `skimage.transform.SimilarityTransform` computes and
insightface's `norm_crop` uses. In the plane it has a closed form: centred
on the means, with `p = x + iy` as complex numbers, `s R = a + ib` where
`a + ib = sum conj(p_k) q_k / sum |p_k|^2`, and `t = mean(q) - s R
mean(p)`. No SVD, no branch: straight-line code, batched, differentiable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from segspaste_jax._src import trace_checks as checks


def _similarity(points, template):
  """`points` `[..., K, 2]`, `template` `[K, 2]`, both float32."""
  p_mean = points.mean(axis=-2, keepdims=True)
  q_mean = template.mean(axis=-2)
  p = points - p_mean
  q = template - q_mean
  px, py = p[..., 0], p[..., 1]
  qx, qy = q[..., 0], q[..., 1]
  norm = jnp.sum(px * px + py * py, axis=-1)
  # (a + ib) = sum conj(p) q / sum |p|^2. All points equal (norm 0): the
  # linear part is zero, a finite, singular matrix (the host check raises
  # before this for concrete points).
  safe = jnp.where(norm > 0, norm, 1)
  a = jnp.where(norm > 0, jnp.sum(px * qx + py * qy, axis=-1) / safe, 0)
  b = jnp.where(norm > 0, jnp.sum(px * qy - py * qx, axis=-1) / safe, 0)
  mx, my = p_mean[..., 0, 0], p_mean[..., 0, 1]
  tx = q_mean[0] - (a * mx - b * my)
  ty = q_mean[1] - (b * mx + a * my)
  return jnp.stack([jnp.stack([a, -b, tx], axis=-1),
                    jnp.stack([b, a, ty], axis=-1)], axis=-2)


_similarity_jit = jax.jit(_similarity)


def similarity_from_landmarks(points, template):
  """The least-squares similarity mapping face landmarks onto a template.

  Umeyama's estimate (rotation, uniform scale, translation; no reflection),
  what `skimage.transform.SimilarityTransform.estimate(points, template)`
  returns. The matrices are what `crop_aligned` and `paste_aligned` take:
  `A @ (x, y, 1)` is the template (crop) position of image pixel `(x, y)`,
  OpenCV's `warpAffine` convention (insightface's `M`, facexlib's
  `affine_matrices`).

  Args:
    points: `[..., K, 2]` float `(x, y)` in image pixels, `K >= 2` (five
      landmarks: eyes, nose tip, mouth corners, in the template's order),
      any leading batch axes (`[S, K, 2]` faces, `[S, N, K, 2]` faces per
      frame).
    template: `[K, 2]` float `(x, y)` in crop pixels, e.g.
      `FACE_TEMPLATES["ffhq_512"]`.

  Returns:
    `[..., 2, 3]` float32 matrices, image coordinates to template
    coordinates.

  Raises:
    TypeError, ValueError: for arrays that are not floating or integer
      `[..., K, 2]` / `[K, 2]`, different `K`, `K < 2`, or (for concrete
      input, checked on the host) a set of points that are all equal (no
      similarity fits them) or not finite, naming the argument and the
      batch index. Under `jit` (traced points) all-equal points give a
      finite matrix with a zero linear part, which `crop_aligned` and
      `paste_aligned` reject when it is concrete.
  """
  points = _points(points, "points")
  template = _points(template, "template")
  if template.ndim != 2:
    raise ValueError(f"template: expected [K, 2], got shape "
                     f"{template.shape}")
  if points.shape[-2] != template.shape[0]:
    raise ValueError(f"points: expected [..., {template.shape[0]}, 2] (as "
                     f"many points as template), got shape {points.shape}")
  if template.shape[0] < 2:
    raise ValueError(f"template: expected at least 2 points, got "
                     f"{template.shape[0]}")
  for name, value in (("points", points), ("template", template)):
    if not isinstance(value, jax.core.Tracer):
      _check_spread(np.asarray(value, np.float64), name)
  return _similarity_jit(points.astype(jnp.float32),
                         template.astype(jnp.float32))


def _points(value, name: str):
  a = checks.as_array(value, name, "an array [..., K, 2] of (x, y)")
  if a.ndim < 2 or a.shape[-1] != 2:
    raise ValueError(f"{name}: expected [..., K, 2] (x, y) points, got "
                     f"shape {a.shape}")
  return checks.real(a, name)


def _check_spread(a: np.ndarray, name: str) -> None:
  """All finite, and not all points of a set equal."""
  if not np.isfinite(a).all():
    bad = np.argwhere(np.atleast_1d(~np.isfinite(a).all(axis=(-2, -1))))
    where = tuple(int(i) for i in bad[0]) if a.ndim > 2 else ()
    raise ValueError(f"{name}: expected finite coordinates, got NaN or inf "
                     f"in the set at index {where}")
  spread = np.abs(a - a.mean(axis=-2, keepdims=True)).max(axis=(-2, -1))
  scale = np.abs(a).max(axis=(-2, -1))
  flat = spread <= 1e-6 * np.maximum(scale, 1)
  if flat.any():
    bad = np.argwhere(np.atleast_1d(flat))[0]
    where = tuple(int(i) for i in bad) if a.ndim > 2 else ()
    raise ValueError(f"{name}: the points of the set at index {where} are "
                     "all equal; no similarity fits them")
