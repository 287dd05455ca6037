"""JAX's persistent compilation cache, as the CLI and the ComfyUI node use it.

The library itself never changes JAX's settings; its surfaces do, so that a
restarted ComfyUI server or a second `segspaste-jax` run loads its compiled
programs from disk instead of waiting for XLA. Library users get the same
with JAX's own one-liner (see README):

    jax.config.update("jax_compilation_cache_dir", "/path/to/cache")

`enable()` leaves a cache directory the user configured alone (the
`jax_compilation_cache_dir` setting or the `JAX_COMPILATION_CACHE_DIR`
variable); otherwise it uses `SEGSPASTE_JAX_COMPILE_CACHE` (a folder, or
`0`/`off` to disable it) or, by default, `segspaste_jax/xla` in the user's
cache folder, and lowers JAX's minimum compile time for caching to 0 so that
sub-second CPU compiles are kept too.
"""

from __future__ import annotations

import os
import pathlib
import sys

import jax

ENV_VAR = "SEGSPASTE_JAX_COMPILE_CACHE"
_OFF = ("0", "off", "false", "no", "none")


def default_dir() -> pathlib.Path:
  """`segspaste_jax/xla` in the platform's per-user cache folder."""
  if sys.platform == "win32":
    base = (os.environ.get("LOCALAPPDATA")
            or pathlib.Path.home() / "AppData" / "Local")
  elif sys.platform == "darwin":
    base = pathlib.Path.home() / "Library" / "Caches"
  else:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "segspaste_jax" / "xla"


def enable() -> str | None:
  """Turns the persistent compilation cache on for this process.

  Returns:
    The cache folder in use (the user's own if they configured one), or
    None where `SEGSPASTE_JAX_COMPILE_CACHE` turns it off.
  """
  configured = jax.config.jax_compilation_cache_dir
  if configured:
    return configured
  chosen = os.environ.get(ENV_VAR, "").strip()
  if chosen.lower() in _OFF:
    return None
  path = pathlib.Path(chosen).expanduser() if chosen else default_dir()
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError:
    return None  # a read-only home: run without the cache
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return str(path)
