"""Frames sharded across devices: `paste` over a `jax.sharding.Mesh`.

Frames are independent in SEGSPaste (each frame only reads its own crop,
mask and reference frames), so the batch splits over a mesh axis named
`"frames"` with no communication at all: `jax.shard_map` runs the ordinary
`paste` on every device's share of the frames. Per-frame crops, masks and
reference frames are split the same way as the image; everything shared by
all frames (single-frame crops and masks, regions, sizes) is replicated.

jax.Array shards must tile an axis evenly, so a frame count that is not a
multiple of the device count is padded up to one for the computation (the
padding frames are zeros and are dropped again).

Arrays are put on the mesh with `jax.make_array_from_callback`, which reads
from each process's host copy only the shards that process's devices hold:
the same call works unchanged on several hosts after
`jax.distributed.initialize()`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from segspaste_jax._src import arrays, platform, trace_checks
from segspaste_jax._src.paste import paste_core, static_args
from segspaste_jax._src.validate import check_color, check_grow, check_modes
from segspaste_jax._src.types import ARRAY_FIELDS, PackedSegs

AXIS = "frames"


def frames_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh with one axis, `"frames"`, over `devices`.

  Args:
    devices: the devices to spread frames over; default `jax.devices()`,
      every device of every process (all hosts, after
      `jax.distributed.initialize()`).

  Returns:
    A `jax.sharding.Mesh` of shape
    `{"frames": len(devices)}`.
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.sharding.Mesh(np.asarray(devices), (AXIS,),
                           axis_types=(AxisType.Auto,))


def _padded_frames(frames: int, mesh) -> int:
  count = mesh.shape[AXIS]
  return -(-frames // count) * count


def _place(x, mesh, spec: P, frame_axis: int | None, frames: int):
  """`x` as a global array on `mesh`, its frame axis cut or padded to `frames`.

  Host arrays (numpy, torch, memmaps) are read shard by shard through
  `make_array_from_callback`, so no process touches frames it does not
  hold; each shard is copied out of the caller's array before it goes to
  its device. Padding frames are zeros.
  """
  if frame_axis is None:
    shape = tuple(x.shape)
  else:
    shape = tuple(frames if a == frame_axis else s
                  for a, s in enumerate(x.shape))
  sharding = NamedSharding(mesh, spec)
  if isinstance(x, jax.Array) and x.is_fully_addressable:
    if shape != x.shape:
      x = x[(slice(None),) * frame_axis + (slice(0, frames),)]
      pad = [(0, 0)] * x.ndim
      pad[frame_axis] = (0, frames - x.shape[frame_axis])
      x = jnp.pad(x, pad)
    return jax.device_put(x, sharding)
  if isinstance(x, jax.Array):  # already global (multi-host): must fit
    if shape != x.shape:
      raise ValueError(f"expected a global array of shape {shape} for a "
                       f"mesh of {mesh.shape[AXIS]} devices, got {x.shape}")
    return jax.device_put(x, sharding)
  if arrays.is_torch(x):  # torch, viewed as numpy as everywhere else
    x = arrays.to_numpy(x, "array")
  real = x.shape[frame_axis] if frame_axis is not None else None

  def read(index):
    if frame_axis is None:
      return np.array(x[index])
    cut = index[frame_axis]
    start, stop, _ = cut.indices(frames)
    inside = list(index)
    inside[frame_axis] = slice(min(start, real), min(stop, real))
    block = np.array(x[tuple(inside)])
    pad = [(0, 0)] * block.ndim
    pad[frame_axis] = (0, (stop - start) - block.shape[frame_axis])
    return np.pad(block, pad) if pad[frame_axis][1] else block

  return jax.make_array_from_callback(shape, sharding, read)


def _per_frame(x) -> bool:
  return x.shape[1] > 1


def sharded_paste(image, packed: PackedSegs, *, feather: int = 5, alpha=255,
                  ref_image=None, feather_mode: str = "node",
                  rgba_mode: str = "composite", grow=0.0,
                  color_match: str = "none", color_strength=1.0,
                  mesh=None) -> jax.Array:
  """`paste` with the frames split across the devices of a mesh.

  Same inputs, same values as `paste`; each device pastes its own frames
  (`jax.shard_map` over the mesh axis `"frames"`, no communication).

  Args:
    image: `[N, H, W, C]` float array in [0, 1] (or uint8 in [0, 255]):
      host (numpy, torch, memmap: each process reads only its devices'
      frames) or a JAX array.
    packed: `PackedSegs` from `pack_segs` for this image's shape (host or
      device arrays). Per-frame crops `[S, Fc, B, B, C]` (Fc > 1) and masks
      `[S, N, B, B]` are split over frames like the image; single-frame ones
      and the per-segment fields are replicated.
    feather: int in 0..100 (a number for `feather_mode="relative"`).
    alpha: scalar in [0, 255].
    ref_image: optional `[N, H, W, C']` (split like the image) or
      `[1, H, W, C']` (replicated).
    feather_mode, rgba_mode, grow, color_match, color_strength: see
      `paste`.
    mesh: a `jax.sharding.Mesh` with an axis `"frames"` (other axes, if any,
      replicate); default `frames_mesh()`, all devices.

  Returns:
    `[N, H, W, C]` JAX array of `image`'s dtype (float32 for uint8), split
    over the `"frames"` axis when N is a multiple of its size; otherwise
    the padded result is cut back to N frames and comes back replicated on
    every device (a JAX
    array cannot hold uneven shards).
  """
  soft = check_modes(feather_mode, rgba_mode)
  grow = check_grow(grow, feather_mode)
  check_color(color_match, color_strength)
  relative = feather_mode == "relative"
  trace_checks.paste_args(image, packed, ref_image, allow_uint8=True)
  mesh = frames_mesh() if mesh is None else mesh
  if AXIS not in mesh.shape:
    raise ValueError(f"mesh: expected an axis named {AXIS!r}, got axes "
                     f"{tuple(mesh.shape)}")
  n = image.shape[0]
  padded = _padded_frames(n, mesh)
  split, whole = P(AXIS), P()
  image = _place(image, mesh, split, 0, padded)
  packed = packed.strip_meta()
  specs = {f: whole for f in ARRAY_FIELDS}
  arrays = {}
  if packed.per_image:  # every field has an image axis: split like frames
    for field in ARRAY_FIELDS:
      specs[field] = split
      arrays[field] = _place(getattr(packed, field), mesh, split, 0, padded)
  for field in ("crops", "masks"):
    x = getattr(packed, field)
    if field not in arrays and _per_frame(x):
      specs[field] = P(None, AXIS)
      arrays[field] = _place(x, mesh, specs[field], 1, padded)
  for field, spec in specs.items():
    if field not in arrays:
      arrays[field] = _place(getattr(packed, field), mesh, spec, None, 0)
  packed = PackedSegs(**arrays)
  packed_specs = PackedSegs(**specs)
  ref_spec = None
  if ref_image is not None:
    ref_spec = split if ref_image.shape[0] > 1 else whole
    ref_image = _place(ref_image, mesh, ref_spec, 0 if ref_spec == split
                       else None, padded)
  form = platform.form_of_devices(mesh.devices.flat)
  return _sharded(image, packed,
                  jnp.asarray(feather,
                              jnp.float32 if relative else jnp.int32),
                  jnp.asarray(alpha, jnp.float32), ref_image,
                  jnp.asarray(soft), jnp.asarray(grow, jnp.float32),
                  jnp.asarray(color_strength, jnp.float32),
                  frames=n, mesh=mesh, packed_specs=packed_specs,
                  ref_spec=ref_spec, rgba_mode=rgba_mode,
                  color_match=color_match,
                  **static_args(form, feather, relative))


@functools.partial(jax.jit, static_argnames=("frames", "mesh", "packed_specs",
                                             "ref_spec", "form", "rgba_mode",
                                             "relative", "color_match"))
def _sharded(image, packed, feather, alpha, ref_image, soft, grow, strength,
             *, frames, mesh, packed_specs, ref_spec, form, rgba_mode,
             color_match, relative=False):
  def local(image, packed, feather, alpha, ref_image, soft, grow, strength):
    image = arrays.unit_float(image)
    ref_image = None if ref_image is None else arrays.unit_float(ref_image)
    return paste_core(image, packed, feather, alpha, ref_image, soft, grow,
                      form=form, rgba_mode=rgba_mode, relative=relative,
                      color_match=color_match, color_strength=strength)

  out = jax.shard_map(local, mesh=mesh,
                      in_specs=(P(AXIS), packed_specs, P(), P(), ref_spec,
                                P(), P(), P()),
                      out_specs=P(AXIS))(image, packed, feather, alpha,
                                         ref_image, soft, grow, strength)
  if out.shape[0] == frames:
    return out
  out = jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P()))
  return out[:frames]
