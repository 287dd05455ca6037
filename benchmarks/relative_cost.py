"""Warm cost of `feather_mode="relative"` against the plain paste.

    python -m benchmarks.relative_cost [--workload W2] [--repeats 9]

The jitted `paste` on device-resident, pre-packed data (variant b of
`benchmarks.run`): the node's feathering (the workload's feather) against
the relative mode at a few feathers and grows, interleaved round by round
in one process; medians, and each one's ratio to the plain paste's median.
The relative rows share one compiled program (counted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax

import segspaste_jax
from benchmarks.harness import compile_counter, placed_workload
from benchmarks.workloads import WORKLOADS

# (label, keyword arguments of `paste`)
VARIANTS = (
    ("plain (node)", None),
    ("relative 5 %", dict(feather=5, feather_mode="relative")),
    ("relative 10 %, grow 5 %",
     dict(feather=10, grow=5, feather_mode="relative")),
    ("relative 3 %, grow -10 %",
     dict(feather=3, grow=-10, feather_mode="relative")),
)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workload", default="W2", choices=sorted(WORKLOADS))
  parser.add_argument("--repeats", type=int, default=9)
  args = parser.parse_args(argv)

  compiles = compile_counter()
  image, packed = placed_workload(args.workload)
  plain = dict(feather=WORKLOADS[args.workload][0])

  def run(kwargs):
    return segspaste_jax.paste(image, packed, **(kwargs or plain)
                               ).block_until_ready()

  first = {}
  for label, kwargs in VARIANTS:
    before = len(compiles)
    run(kwargs)
    first[label] = len(compiles) - before
  times = {label: [] for label, _ in VARIANTS}
  for _ in range(args.repeats):
    for label, kwargs in VARIANTS:
      start = time.perf_counter()
      run(kwargs)
      times[label].append(time.perf_counter() - start)
  base = statistics.median(times[VARIANTS[0][0]])
  device = jax.devices()[0]
  print(f"{args.workload} on {device.platform} ({device.device_kind}), "
        f"segspaste_jax {segspaste_jax.__version__}, {args.repeats} "
        f"interleaved rounds, load average "
        f"{os.getloadavg()[0]:.1f}")
  print("variant | compiles | warm ms (median) | min ms | ratio to plain")
  print("---|---|---|---|---")
  for label, _ in VARIANTS:
    median = statistics.median(times[label])
    print(f"{label} | {first[label]} | {median * 1e3:.1f} | "
          f"{min(times[label]) * 1e3:.1f} | {median / base:.2f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
