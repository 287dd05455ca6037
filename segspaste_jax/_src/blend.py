"""The blend of pasted pixels into a frame: today's node's channel rules.

With `m` the feathered, resized window mask (`[..., 1]`, broadcast over
channels), the image's channels C1 and the pasted pixels' channels C2, the
Impact Pack (2025 on) blends:

| C1 <- C2 | colour                                   | alpha                 |
|----------|------------------------------------------|-----------------------|
| C <- C   | `(1 - m) x1 + m x2` (C 1, 3; 4 "legacy") | -                     |
| 4 <- 4   | `(1 - m) rgb1 + m rgb2`                  | `a1 + (a2 m)(1 - a1)` |
| 4 <- 3   | as 4 <- 4 with `a2 = 1`                  | `a1 (1 - m) + m`      |
| 3 <- 4   | `e = m a2`, then `(1 - e) rgb1 + e rgb2` | -                     |

`RGBA_MODES`: "composite" is today's node; "legacy" the node
before 2025, which blended an RGBA crop into an RGBA image like colour,
alpha included (the mixed rows are today's in both modes: the old node
crashed there).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from segspaste_jax._src.types import RGBA_MODES as RGBA_MODES
from segspaste_jax._src.types import compatible_channels as compatible_channels


def rule(image_channels: int, pasted_channels: int, rgba_mode: str) -> str:
  """The static blend rule for a channel pair (those that
  `compatible_channels` allows)."""
  if image_channels == 4 and rgba_mode == "composite":
    return "over"
  if image_channels == 3 and pasted_channels == 4:
    return "by_alpha"
  return "plain"  # C <- C, legacy 4 <- 4


def _mix(rule_name: str, m, under, ref):
  """The blend formula itself, no select (`ref` must be finite)."""
  if rule_name == "by_alpha":
    e = m * ref[..., 3:]
    return (1 - e) * under + e * ref[..., :3]
  if ref.shape[-1] < under.shape[-1]:  # 4 <- 3 (or legacy): opaque pixels
    ref = jnp.concatenate([ref, jnp.ones_like(ref[..., :1])], axis=-1)
  plain = (1 - m) * under + m * ref
  if rule_name == "plain":
    return plain
  a1, a2 = under[..., 3:], ref[..., 3:]
  is_alpha = jnp.arange(under.shape[-1]) == 3
  return jnp.where(is_alpha, a1 + (a2 * m) * (1 - a1), plain)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def blend(rule_name: str, m, under, ref, inside):
  """`_mix(rule_name, m, under, ref)` where `m != 0`, `under` where it is.

  Args:
    rule_name: static, from `rule`.
    m: `[..., 1]` float window mask, 0 wherever `inside` is False.
    under: `[..., C1]` float, the frame's window.
    ref: `[..., C2]` float, the pasted pixels, read only where `m != 0`:
      outside `inside` it may hold anything, NaN included.
    inside: `[..., 1]` bool, where the pasted pixels are real.

  Returns:
    `[..., C1]`. Every rule leaves `under` unchanged where `m == 0`, so the
    select changes no value; it keeps padding out. The derivatives are
    those of `_mix` with `ref` taken as 0 outside `inside`: the select alone
    would give a zero derivative with respect to a mask pixel at 0, and a
    mask that starts at 0 still learns.
  """
  del inside  # only the derivatives need it
  return jnp.where(m != 0, _mix(rule_name, m, under, ref), under)


@blend.defjvp
def _blend_jvp(rule_name, primals, tangents):
  m, under, ref, inside = primals
  d_m, d_under, d_ref, _ = tangents
  ref = jnp.where(inside, ref, 0)
  d_ref = jnp.where(inside, d_ref, 0)
  return jax.jvp(functools.partial(_mix, rule_name), (m, under, ref),
                 (d_m, d_under, d_ref))
