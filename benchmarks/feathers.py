"""Warm paste time and compiles across feathers, on one workload's layout.

    python -m benchmarks.feathers [--workload W1] [--feathers 0,1,3,5,...]

For each feather: the number of XLA compiles its first call took (from
`jax.monitoring`) and the median warm time of the jitted `paste` on
device-resident, pre-packed data (variant b of `benchmarks.run`), the
feathers interleaved round by round. Uses only the public API, so the same
script times another checkout of the library for comparison
(`PYTHONPATH=/path/to/checkout python -m benchmarks.feathers`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

import segspaste_jax
from benchmarks.harness import compile_counter, placed_workload
from benchmarks.workloads import WORKLOADS

DEFAULT = "0,1,3,4,5,6,7,10,11,25,50,51,75,100"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workload", default="W1", choices=sorted(WORKLOADS))
  parser.add_argument("--feathers", default=DEFAULT)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args(argv)
  feathers = [int(f) for f in args.feathers.split(",")]

  compiles = compile_counter()
  image, packed = placed_workload(args.workload)

  def run(feather):
    return segspaste_jax.paste(image, packed, feather=feather
                               ).block_until_ready()

  first = {}
  for feather in feathers:
    before = len(compiles)
    start = time.perf_counter()
    run(feather)
    first[feather] = (len(compiles) - before, time.perf_counter() - start)
  times = {f: [] for f in feathers}
  for _ in range(args.repeats):
    for feather in feathers:
      start = time.perf_counter()
      run(feather)
      times[feather].append(time.perf_counter() - start)
  print(f"{args.workload} on {jax.default_backend()}, segspaste_jax "
        f"{getattr(segspaste_jax, '__version__', '?')}")
  print("feather | compiles | first call s | warm ms")
  print("---|---|---|---")
  for feather in feathers:
    count, seconds = first[feather]
    print(f"{feather} | {count} | {seconds:.2f} | "
          f"{statistics.median(times[feather]) * 1e3:.2f}")
  print(f"compiles in all: {sum(c for c, _ in first.values())}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
