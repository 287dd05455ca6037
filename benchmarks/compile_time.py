"""First-call time (tracing and compiling included) against segment count.

    python -m benchmarks.compile_time [--segments 8,32,64] [--runs 3]

Each measurement runs in a fresh interpreter (no in-memory or persistent
compilation cache), pasting S segments of 64-128 px into one 1024 x 1024
RGB frame at feather 5 through `segs_paste`, and reports the first call,
its compile time from `jax.monitoring` and the second (warm) call: medians
over `--runs` fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys, time
import jax, jax.monitoring, numpy as np
compile_s = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, secs, **kw: compile_s.append(secs)
    if name.endswith("backend_compile_duration") else None)
import segspaste_jax
from benchmarks.workloads import make_segs
count = int(sys.argv[1])
rng = np.random.default_rng(count)
image = rng.random((1, 1024, 1024, 3), dtype=np.float32)
segs = make_segs(rng, 1, 1024, 1024, count, (64, 128), False)
jax.block_until_ready(jax.numpy.zeros(1))  # the backend up before timing
start = time.perf_counter()
segspaste_jax.segs_paste(image, segs, feather=5).block_until_ready()
first = time.perf_counter() - start
start = time.perf_counter()
segspaste_jax.segs_paste(image, segs, feather=5).block_until_ready()
warm = time.perf_counter() - start
print("RESULT" + json.dumps({"first": first, "compile": sum(compile_s),
                             "warm": warm}))
"""


def _measure(count: int) -> dict:
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR",)}
  proc = subprocess.run([sys.executable, "-c", _CHILD, str(count)],
                        capture_output=True, text=True, env=env, check=True)
  line = [t for t in proc.stdout.splitlines() if t.startswith("RESULT")][-1]
  return json.loads(line[len("RESULT"):])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--segments", default="8,32,64")
  parser.add_argument("--runs", type=int, default=3)
  args = parser.parse_args(argv)
  counts = [int(c) for c in args.segments.split(",")]
  print("segments | first call s | of which compile s | warm call ms")
  print("---|---|---|---")
  for count in counts:
    runs = [_measure(count) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{count} | {med['first']:.2f} | {med['compile']:.2f} | "
          f"{med['warm'] * 1e3:.1f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
