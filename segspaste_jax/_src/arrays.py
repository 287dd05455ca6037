"""numpy, torch and JAX arrays at the library's edge.

What comes in is read without being modified, and nothing the caller holds
is read after a call returns (`to_device`): a host array (numpy, a memmap,
a CPU torch tensor viewed as numpy) goes to JAX with `jax.device_put`, which
copies it, or on the CPU may share it where it is aligned, and the call that
reads it waits for its paste before returning; a torch tensor on a device
comes in by DLPack, on its own device (no trip through host memory), and is
waited for in the same way; a JAX array is used as it is (JAX arrays are
immutable).
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


def to_device(x, own: bool = False):
  """`x` as a JAX array for the paste: `(array, owned, wait)`.

  `owned`: the array may be donated to the paste (it is no JAX array the
  caller holds); `wait`: it may share memory the caller can write (or, with
  `own`, that nobody writes again but which is read until the paste runs),
  so a call that pastes it must wait for the result before returning.

  - JAX array: used as is; not owned (the caller keeps it), no wait (it is
    immutable).
  - torch tensor on a GPU (or other device): shared by DLPack on that
    device, no copy; not owned; wait.
  - host arrays (numpy, a memmap, a CPU torch tensor viewed as numpy by
    DLPack): `jax.device_put`, owned and wait. XLA copies the array, or on
    the CPU shares an aligned one; a shared array donated to the paste is
    copied by XLA rather than written (`tests/test_purity.py` checks both).
    (A JAX array imported by DLPack on the CPU made the persistent
    compilation cache miss in every new process, hence the numpy view.)

  Args:
    x: the array.
    own: `x` is a host array of the library's own that nobody writes again
      (a streamed chunk): nothing to wait for.
  """
  if isinstance(x, jax.Array):
    return x, False, False
  if is_torch(x):
    x = x.detach()
    shared = _from_dlpack(x) if x.device.type != "cpu" else None
    if shared is not None:
      return shared, False, True
    x = _host_view(x)
  return jax.device_put(np.asarray(x)), True, not own


def _host_view(tensor) -> np.ndarray:
  """A CPU torch tensor as numpy, by DLPack where numpy can take its dtype."""
  try:
    return np.from_dlpack(tensor.contiguous())
  except (TypeError, RuntimeError, BufferError, ValueError):
    return to_numpy(tensor, "array")  # bfloat16: as float32


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


def to_unit_float(x, own: bool = False) -> tuple[jax.Array, bool, bool]:
  """`x` as a float JAX array in [0, 1]: `(array, owned, wait)` as
  `to_device(x, own)` says (uint8 becomes a new float array of our own)."""
  x, owned, wait = to_device(x, own)
  if x.dtype == np.uint8:
    return unit_float(x), True, wait
  return x, owned, wait
