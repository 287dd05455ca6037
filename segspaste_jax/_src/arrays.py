"""numpy, torch and JAX arrays at the library's edge.

What comes in is read without being modified, and what the paste works on
is the library's own: a host array (numpy, a memmap) is copied into a new
JAX array by `jax.device_put(..., may_alias=False)`, which copies before it
returns; a torch tensor comes in by DLPack, on its own device (no trip
through host memory for a GPU tensor), and is copied there. A JAX array is used as it
is (JAX arrays are immutable). So a caller may overwrite or free its input
as soon as a call returns, and a result it holds is never written again.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_torch(x) -> bool:
  """Whether `x` is a torch tensor (without importing torch)."""
  return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def is_array(x) -> bool:
  """Whether `x` looks like an array: numpy, torch, JAX, a memmap."""
  return hasattr(x, "shape") and hasattr(x, "dtype")


def dtype_of(x) -> np.dtype | str:
  """`x`'s dtype as numpy names it; a string for torch dtypes numpy lacks
  ("bfloat16", "complex32", ...)."""
  if is_torch(x):
    name = str(x.dtype).removeprefix("torch.")
    try:
      return np.dtype(name)
    except TypeError:
      return name
  return np.dtype(x.dtype)


def to_numpy(x, name: str) -> np.ndarray:
  """Views numpy, torch or JAX arrays as numpy without modifying them.

  A torch tensor on another device, or in bfloat16, is copied to a CPU
  float32 tensor first; a JAX array is copied to the host.

  Raises:
    TypeError: `x` is not an array.
  """
  if isinstance(x, np.ndarray):
    return x
  if is_torch(x):
    x = x.detach().cpu()
    if str(x.dtype) == "torch.bfloat16":
      x = x.float()
    return x.numpy()
  if is_array(x) and hasattr(x, "__array__"):
    return np.asarray(x)
  raise TypeError(f"{name}: expected a numpy, torch or JAX array, "
                  f"got {type(x).__name__}")


def to_device(x):
  """`x` as a JAX array that no caller can write to: `(array, owned)`.

  `owned` is True when the array is a new copy that only the library holds
  (it may be donated); False for the caller's own JAX array, used as is.
  A torch tensor comes in by DLPack, on its own device, and is copied there
  (the copy is waited for, so the caller may overwrite its tensor as soon
  as the call returns); numpy arrays and memmaps are copied by
  `jax.device_put(..., may_alias=False)`, which copies before returning.
  """
  if isinstance(x, jax.Array):
    return x, False
  if is_torch(x):
    shared = _from_dlpack(x.detach())
    if shared is not None:
      return jax.block_until_ready(jnp.array(shared, copy=True)), True
    x = to_numpy(x, "array")
  return jax.device_put(np.asarray(x), may_alias=False), True


def _from_dlpack(tensor):
  """A JAX array sharing a torch tensor's memory (on its device, no copy),
  or None where DLPack cannot carry it."""
  if not tensor.is_contiguous():
    tensor = tensor.contiguous()
  try:
    return jax.dlpack.from_dlpack(tensor)
  except (TypeError, RuntimeError, BufferError, ValueError):
    return None


def to_torch(array, like=None):
  """A JAX array as a torch tensor on `like`'s device (default: the array's).

  By DLPack, without a copy where torch can share the memory; else through
  a numpy copy (on the host).
  """
  import torch  # pylint: disable=import-outside-toplevel

  try:
    tensor = torch.from_dlpack(array)
  except (TypeError, RuntimeError, BufferError, AttributeError):
    tensor = torch.from_numpy(np.array(array))
  if like is not None and tensor.device != like.device:
    tensor = tensor.to(like.device)
  return tensor


# x / 255 for every byte, divided once here in IEEE float32: XLA's own
# division may differ from it in the last bit, and a table read is exact
# (and the same on every backend and on the host).
_UNIT_FLOATS = np.arange(256, dtype=np.float32) / np.float32(255)


@jax.jit
def unit_float(x):
  """uint8 pixels in [0, 255] as float32 in [0, 1]; floats unchanged."""
  if x.dtype == jnp.uint8:
    return jnp.asarray(_UNIT_FLOATS)[x]
  return x


@jax.jit
def from_unit_float(x):
  """Float pixels in [0, 1] as uint8: `round(x * 255)` clipped to [0, 255]."""
  return jnp.clip(jnp.round(x.astype(jnp.float32) * 255), 0, 255).astype(
      jnp.uint8)


def host_unit_float(x: np.ndarray) -> np.ndarray:
  """uint8 host pixels as float32 in [0, 1]; float arrays unchanged."""
  if x.dtype != np.uint8:
    return x
  return _UNIT_FLOATS[x]
