"""`segs_paste` end to end on chosen workloads: one line of JSON.

    python -m benchmarks.end_to_end [--workloads W2,W4] [--repeats 9]

Times `segs_paste(image, segs, feather=...)` followed by `np.asarray` (numpy
in, numpy out), after one warm-up call, and prints the median in ms per
workload with the path of the `segspaste_jax` it imported. Meant for
comparing two checkouts in alternating fresh processes:

    for run in 1 2 3 4 5; do for tree in /path/a /path/b; do
      (cd "$tree" && PYTHONPATH="$tree" python -m benchmarks.end_to_end)
    done; done
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workloads", default="W2,W4")
  parser.add_argument("--repeats", type=int, default=9)
  args = parser.parse_args(argv)
  out = {"segspaste_jax": segspaste_jax.__file__}
  for name in args.workloads.split(","):
    image, segs = make_workload(name, 0)
    feather = WORKLOADS[name][0]
    np.asarray(segspaste_jax.segs_paste(image, segs, feather=feather))
    times = []
    for _ in range(args.repeats):
      start = time.perf_counter()
      np.asarray(segspaste_jax.segs_paste(image, segs, feather=feather))
      times.append(time.perf_counter() - start)
    out[name] = round(statistics.median(times) * 1e3, 1)
  print(json.dumps(out))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
