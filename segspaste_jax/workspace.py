"""Reused output buffers for `segs_paste` on the CPU backend.

A paste that returns a new batch writes all of it. On the CPU backend XLA
takes every output buffer fresh from glibc `malloc`, which serves blocks over
32 MiB with a new `mmap` and returns them with `munmap` when freed: each
call then faults its whole output in, 4 KiB at a time. On a 2-core VM a
200 MB batch costs about 60 ms of page faults for 10 ms of work (numpy's
own allocations ask for transparent huge pages and fault about 20x less).

So for large batches `segs_paste` keeps its XLA output buffers: it copies
a host image into one on a few threads (through a numpy view of its memory,
while nothing else holds it), pastes into it in place (donated: only the
segments' windows are written) and hands it back as the result without a
copy (`lend`: a JAX array over a read-only numpy view of the buffer). Once
the caller drops that result, the next call of the same shape pastes into
the same buffer again (`take`); while the caller holds it, it is never
written to, and the next call takes another buffer (up to
`HOST_PER_SHAPE` per shape are kept).

Nothing here runs where it would not pay: on other backends (device memory
is pooled), for batches under 32 MiB (glibc reuses those), when glibc was
told to keep freed memory (`segspaste_jax.host_memory.keep_freed_memory`),
or when the environment variable `SEGSPASTE_JAX_REUSE_OUTPUT` is `0`.
(With glibc's huge pages, `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, fresh
XLA outputs fault far less, but reusing still measured faster: W2 103
against 154 ms.)

The host side has the same problem with every large numpy array it makes
fresh: the aligned copy of an unaligned numpy image, the packed crops and
masks. Freed, they go back to the system; made again, they fault
again (on this project's VMs the cost of faulting freshly freed huge pages
varied by 10x from run to run). `host_buffer` hands out numpy buffers from a
small pool instead, each reused once nothing else refers to it: not the JAX
array that shares its memory, not a numpy view of it.

`release()` drops the kept buffers (device and host); at most `MAX_KEPT`
shapes are kept on each side, the least recently used dropped first.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import os
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np

from segspaste_jax import host_memory

try:  # jaxlib's own entry point; private, so optional
  from jax._src.lib import _jax as _jaxlib  # pylint: disable=g-import-not-at-top
  _collect_garbage = _jaxlib.collect_garbage
except (ImportError, AttributeError):
  _collect_garbage = None

ENV_VAR = "SEGSPASTE_JAX_REUSE_OUTPUT"
MIN_BYTES = 32 << 20  # glibc's largest dynamic mmap threshold
MAX_KEPT = 2
HOST_PER_SHAPE = 3  # buffers kept per shape: in use, held by callers, free

_lock = threading.Lock()
_kept: collections.OrderedDict = collections.OrderedDict()


def worth_it(shape, dtype) -> bool:
  """Whether `segs_paste` should paste a batch of this shape into a kept
  buffer (see the module docstring)."""
  if os.environ.get(ENV_VAR, "").strip() == "0":
    return False
  if jax.default_backend() != "cpu":
    return False
  if int(np.prod(shape)) * np.dtype(dtype).itemsize < MIN_BYTES:
    return False
  return not host_memory.is_applied()


def take(shape, dtype) -> jax.Array:
  """A buffer of `shape` and `dtype` to donate: a kept one, or a new one.

  A kept buffer is one that `lend` handed out earlier and that nothing
  refers to any more (the caller dropped the result that shares it).
  """
  dtype = jax.dtypes.canonicalize_dtype(dtype)  # float64 -> 32 without x64
  key = _key(shape, dtype)
  _collect_released()
  with _lock:
    entries = _kept.get(key, [])
    entry = next((e for e in entries if e.free()), None)
    if entry is not None:
      entries.remove(entry)
  if entry is None or entry.buffer.is_deleted():
    return jnp.empty(shape, dtype)
  # Returning drops `entry` and its view, the buffer's last external
  # reference: the buffer is donatable again.
  return entry.buffer


def lend(result: jax.Array) -> jax.Array:
  """`result` as a JAX array the caller may keep; its buffer stays pooled.

  The returned array shares `result`'s memory (through a read-only numpy
  view, no copy). Once the caller drops it, `take` hands the buffer out
  again; until then it is left alone. Waits for `result`.
  """
  key = _key(result.shape, result.dtype)
  entry = _Lent(result, np.asarray(result))  # waits
  entry.count = sys.getrefcount(entry.view)  # as seen when only we hold it
  lent = jax.device_put(entry.view)
  if lent.unsafe_buffer_pointer() != entry.view.ctypes.data:
    return result  # copied after all (not expected on CPU): nothing to pool
  with _lock:
    entries = _kept.pop(key, [])
    _kept[key] = entries
    entries.append(entry)
    if len(entries) > HOST_PER_SHAPE:
      # the oldest: its memory stays with whoever still holds the result
      del entries[0]
    while len(_kept) > MAX_KEPT:
      _kept.popitem(last=False)
  return lent


@dataclasses.dataclass(eq=False)
class _Lent:
  buffer: jax.Array  # the XLA buffer
  view: np.ndarray  # numpy view of it, shared by the lent array
  count: int = 0  # the view's reference count when only the pool holds it

  def free(self) -> bool:
    return sys.getrefcount(self.view) == self.count


def _collect_released() -> None:
  """Lets go of the numpy arrays that dropped JAX arrays still hold.

  jaxlib releases a zero-copy array's numpy memory lazily (on its next
  garbage pass); until then the pools would think it is still in use.
  """
  if _collect_garbage is not None:
    _collect_garbage()


def _key(shape, dtype) -> tuple:
  return tuple(int(d) for d in shape), np.dtype(dtype).str


def host_view(buffer: jax.Array) -> np.ndarray:
  """A writable numpy view of a taken CPU buffer's memory.

  Only for a buffer from `take` that is about to be donated: nothing else
  holds it, and the view must be dropped before the donation. Waits until
  whatever computes the buffer is done.
  """
  buffer.block_until_ready()
  nbytes = buffer.size * buffer.dtype.itemsize
  raw = (ctypes.c_char * nbytes).from_address(buffer.unsafe_buffer_pointer())
  return np.frombuffer(raw, buffer.dtype).reshape(buffer.shape)


@dataclasses.dataclass
class _HostEntry:
  array: np.ndarray  # what callers get: an aligned view of `base`
  base: np.ndarray   # the allocation; JAX's zero-copy arrays hold this
  counts: tuple = ()

  def refcounts(self) -> tuple:
    return sys.getrefcount(self.array), sys.getrefcount(self.base)


_host: collections.OrderedDict = collections.OrderedDict()


def host_empty(shape, dtype) -> np.ndarray:
  """`host_buffer` for buffers of 8 MiB and more, a fresh one below."""
  if int(np.prod(shape)) * np.dtype(dtype).itemsize < MIN_BYTES // 4:
    return _aligned_empty(shape, dtype)
  return host_buffer(shape, dtype)


def host_buffer(shape, dtype) -> np.ndarray:
  """A 64-byte aligned numpy buffer that nothing else refers to (junk-filled).

  From the pool when one of `shape` and `dtype` is free, else new (and
  pooled, up to `HOST_PER_SHAPE` per shape).
  """
  key = _key(shape, dtype)
  _collect_released()
  with _lock:
    entries = _host.pop(key, [])
    _host[key] = entries
    while len(_host) > MAX_KEPT * HOST_PER_SHAPE:
      _host.popitem(last=False)
    for entry in entries:
      if entry.refcounts() == entry.counts:
        return entry.array
    if len(entries) >= HOST_PER_SHAPE:
      return _aligned_empty(shape, dtype)
    entry = _new_entry(shape, dtype)
    entries.append(entry)
    return entry.array


def _aligned_empty(shape, dtype) -> np.ndarray:
  # at call time: convert imports this module
  from segspaste_jax.convert import aligned_zeros  # pylint: disable=g-import-not-at-top
  return aligned_zeros(shape, dtype, zero=False)


def _new_entry(shape, dtype) -> _HostEntry:
  array = _aligned_empty(shape, dtype)
  entry = _HostEntry(array, array.base)
  del array
  entry.counts = entry.refcounts()  # as seen when only the pool holds it
  return entry


def release() -> None:
  """Drops every kept buffer (their memory goes back to the system)."""
  with _lock:
    _kept.clear()
    _host.clear()


def kept_bytes() -> int:
  """Bytes held in kept buffers now (device and host), not counting the
  ones that results a caller still holds share."""
  _collect_released()
  with _lock:
    return (sum(e.buffer.nbytes for entries in _kept.values()
                for e in entries if e.free())
            + sum(e.base.nbytes for entries in _host.values()
                  for e in entries))
