"""What the paste benchmarks share: a compile counter and a placed workload.

Public API only, so a script built on these times another checkout of the
library as well (`PYTHONPATH=/path/to/checkout python -m benchmarks.X`).
"""

from __future__ import annotations

import jax
import jax.monitoring

import segspaste_jax
from benchmarks.workloads import make_workload


def compile_counter() -> list[float]:
  """A list that every XLA compile from now on appends its seconds to."""
  compiles = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, secs, **kw: compiles.append(secs)
      if name.endswith("backend_compile_duration") else None)
  return compiles


def placed_workload(name: str):
  """Workload `name` as variant b of `benchmarks.run` takes it: `(image,
  packed)`, the image and its packed SEGS on the default device."""
  image, segs = make_workload(name)
  packed = jax.device_put(segspaste_jax.pack_segs(segs, image.shape))
  return jax.device_put(image), packed
