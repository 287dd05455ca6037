"""numpy, torch and JAX arrays at the library's edge.

What comes in is read without being modified, and nothing the caller holds
is read after a call returns: a host array (numpy, a memmap) is copied into
a buffer of the library's own (`host_empty`) before it goes to JAX; a torch
tensor comes in by DLPack, on its own device (no trip through host memory
for a GPU tensor), and the call that reads it waits for the paste before it
returns; a JAX array is used as it is (JAX arrays are immutable).

(`jax.device_put(x, may_alias=False)` would be the one-line copy, but with
JAX 0.10 on the CPU it still shares a 64-byte aligned numpy array, and the
transfer is asynchronous: overwriting the array right after the call
changed the result.)
"""

from __future__ import annotations

import math
import mmap

import jax
import jax.numpy as jnp
import numpy as np

from segspaste_jax._src import platform


_HEAP_MAX_BYTES = 32 << 20  # glibc's largest mmap threshold on 64 bits
# host_empty's heap arrays up to here; larger ones are mapped with huge
# pages, which pack faster from there on (BENCHMARKS.md, 0.3.1)
_HEAP_ZEROS_MAX_BYTES = 16 << 20


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


def host_empty(shape, dtype) -> np.ndarray:
  """A new, zero-filled host array of the library's own.

  Below `_HEAP_ZEROS_MAX_BYTES`, a plain `np.zeros` array: its memory comes
  from the C library's heap, reused from call to call, and XLA's CPU client
  copies it on the transfer where it is not 64-byte aligned (numpy does not
  align to 64), which costs less than fresh pages. From there on an
  anonymous memory mapping: zero pages until written, page aligned so that
  XLA's CPU client uses it in place instead of copying it, and with
  transparent huge pages where the kernel offers them (as numpy asks for
  its own large arrays), so that a fresh 200 MB buffer costs about 100 page
  faults instead of 50,000. Only the library writes to it, and only before
  handing it to JAX.
  """
  dtype = np.dtype(dtype)
  count = math.prod(shape)
  size = max(count * dtype.itemsize, 1)
  if size < _HEAP_ZEROS_MAX_BYTES:
    return np.zeros(shape, dtype)
  if hasattr(mmap, "MAP_PRIVATE"):  # POSIX; a shared mapping gets no THP
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
  else:
    memory = mmap.mmap(-1, size)
  if hasattr(mmap, "MADV_HUGEPAGE"):
    memory.madvise(mmap.MADV_HUGEPAGE)
  return np.frombuffer(memory, dtype, count=count).reshape(shape)


def own_copy(x) -> np.ndarray:
  """A copy of host array `x` in `host_empty` memory."""
  x = np.asarray(x)
  copy = host_empty(x.shape, x.dtype)
  np.copyto(copy, x)
  return copy


def to_device(x, own: bool = False):
  """`x` as a JAX array for the paste: `(array, owned, wait)`.

  `own=True` says that `x` is a host array of the library's own, which
  nobody writes again (a `host_empty` buffer): it goes to the device as it
  is, with nothing to wait for. Otherwise:

  - JAX array: used as is; `owned` False (the caller keeps it), `wait`
    False (it is immutable).
  - torch tensor on a GPU (or other device): shared by DLPack on that
    device, no copy; `wait` True: the caller's tensor is read by the
    program, so the call must wait for it before returning.
  - torch tensor on the CPU: viewed as numpy by DLPack (`np.from_dlpack`),
    then as a host array below. (A JAX array imported by DLPack on the CPU
    made the persistent compilation cache miss in every new process.)
  - numpy array, memmap, anything else, from 32 MiB up: copied into
    `host_empty` memory and put on the default device. `owned` (it may be
    donated) on an accelerator, where that copy is a device buffer; not on
    the CPU, where XLA uses the host copy in place and donating it would
    copy it again.
  - smaller host arrays: handed to `jax.device_put` as they are, `wait`
    True (XLA's CPU client reads an aligned one in place, and copies
    others asynchronously); below the C library's largest heap block,
    XLA's own copy comes from memory used before and costs less than a
    fresh mapping. `owned` True: the result may be donated. Where it is
    XLA's copy, the paste then writes into it, saving a second buffer;
    where it shares the caller's memory, XLA copies it rather than write
    there (`tests/test_purity.py` checks both).
  """
  if isinstance(x, jax.Array):
    return x, False, False
  if own:
    return _put_own(np.asarray(x)) + (False,)
  if is_torch(x):
    x = x.detach()
    shared = _from_dlpack(x) if x.device.type != "cpu" else None
    if shared is not None:
      return shared, False, True
    x = _host_view(x)
  x = np.asarray(x)
  if x.nbytes < _HEAP_MAX_BYTES:
    return jax.device_put(x), True, True
  return _put_own(own_copy(x)) + (False,)


def _put_own(x: np.ndarray) -> tuple[jax.Array, bool]:
  """A host array of the library's own on the default device, and whether
  the result may be donated (on an accelerator, where it is a device copy;
  not on the CPU, where XLA uses a mapped `host_empty` array in place and
  would copy it first: only the streamed chunks under
  `_HEAP_ZEROS_MAX_BYTES` come here as heap arrays, which XLA copies)."""
  on_device = jax.device_put(x)
  return on_device, platform.form_of(on_device) == "accelerator"


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
