"""Host allocator tuning for XLA's CPU backend (glibc only).

On the CPU backend every call that returns a new batch gets a fresh output
buffer from glibc `malloc`. Buffers over 32 MiB are served by `mmap` and
handed back with `munmap` when freed, so every call faults its output in
page by page: a 200 MB batch is 49,152 minor faults, about 60 ms on a
2-core VM, against about 10 ms for the work itself. (glibc's
`glibc.malloc.hugetlb=1` tunable shortens the faults with transparent huge
pages, but it is read only at process start.)

`keep_freed_memory()` asks glibc, through `mallopt`, to serve large blocks
from its heap and keep freed memory for reuse instead: no `mmap` for large
blocks (`M_MMAP_MAX = 0`), one arena shared by all threads so that XLA's
worker threads reuse what the main thread freed and vice versa
(`M_ARENA_MAX = 1`), and freed memory at the top of the heap kept up to a
limit (`M_TRIM_THRESHOLD`). The second call of a workload then finds its
output's pages already mapped.

The price: the process keeps up to `trim_threshold` bytes of freed memory
instead of returning it, and threads allocating at the same time share one
arena's lock. Both settings are process-wide, so this is the caller's
choice: `segspaste_jax` applies it at import only when the environment
variable `SEGSPASTE_JAX_KEEP_FREED_MEMORY` is set to `1`, and
`segspaste_jax.keep_freed_memory()` applies it on request. It works best
before JAX first runs anything (threads already running keep their arenas).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

ENV_VAR = "SEGSPASTE_JAX_KEEP_FREED_MEMORY"
DEFAULT_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int


@functools.lru_cache(maxsize=1)
def _libc():
  if platform.system() != "Linux":
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return None
  del gnu_get_libc_version
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  mallopt.restype = ctypes.c_int
  return libc


_applied = False


def keep_freed_memory(trim_threshold: int = DEFAULT_TRIM_THRESHOLD) -> bool:
  """Makes glibc keep freed large blocks for reuse (process-wide).

  Args:
    trim_threshold: bytes of free memory at the top of the heap that glibc
      keeps instead of returning to the system; at most `2**31 - 1`.

  Returns:
    True if glibc accepted the settings; False where the C library is not
    glibc (macOS, Windows, musl), where nothing is changed.

  Raises:
    ValueError: `trim_threshold` is not in `0 .. 2**31 - 1`.
  """
  global _applied
  trim_threshold = int(trim_threshold)
  if not 0 <= trim_threshold <= 2**31 - 1:
    raise ValueError("trim_threshold: expected 0 .. 2**31 - 1 bytes, got "
                     f"{trim_threshold}")
  libc = _libc()
  if libc is None:
    return False
  ok = all(libc.mallopt(option, value) == 1 for option, value in (
      (_M_ARENA_MAX, 1), (_M_TRIM_THRESHOLD, trim_threshold),
      (_M_MMAP_MAX, 0)))
  _applied = _applied or ok
  return ok


def is_applied() -> bool:
  """Whether `keep_freed_memory` has succeeded in this process."""
  return _applied


def apply_from_environment() -> bool:
  """Applies `keep_freed_memory()` if `SEGSPASTE_JAX_KEEP_FREED_MEMORY=1`."""
  if os.environ.get(ENV_VAR, "").strip() == "1":
    return keep_freed_memory()
  return False
