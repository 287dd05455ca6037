"""Times the paste with each colour-matching method against the plain paste.

Run from the repository root:

    python -m benchmarks.color_cost [--workload W2] [--repeats 7]
                                    [--methods none,lowfreq,rct,mkl]
                                    [--json PATH]

The jitted `paste` on device-resident, pre-packed inputs (variant b of
`benchmarks.run`), `color_match` each of the methods at strength 1. The
methods alternate within every round (none, lowfreq, rct, mkl, none, ...),
so a noisy shared machine slows them alike; medians of the warm calls are
reported, with each method's time over the plain paste's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload

METHODS = ("none", "lowfreq", "rct", "mkl")


def main(argv=None) -> int:
  """Command line entry point; returns the exit status."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workload", default="W2", choices=sorted(WORKLOADS))
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--json", default=None, help="also write the times here")
  args = parser.parse_args(argv)
  methods = [m.strip() for m in args.methods.split(",") if m.strip()]
  if not methods or any(m not in METHODS for m in methods):
    parser.error(f"--methods: choose from {METHODS}")
  if methods[0] != "none":
    methods.insert(0, "none")

  feather, description = WORKLOADS[args.workload]
  image, segs = make_workload(args.workload)
  packed = jax.device_put(segspaste_jax.pack_segs(segs, image.shape))
  image = jax.device_put(image)

  def run(method):
    return segspaste_jax.paste(image, packed, feather=feather,
                               color_match=method).block_until_ready()

  first = {}
  for m in methods:  # compile
    start = time.perf_counter()
    run(m)
    first[m] = time.perf_counter() - start
  times = {m: [] for m in methods}
  for _ in range(args.repeats):
    for m in methods:
      start = time.perf_counter()
      run(m)
      times[m].append(time.perf_counter() - start)
  medians = {m: statistics.median(t) for m, t in times.items()}

  print(f"{args.workload}: {description}; jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind}, {args.repeats} rounds, warm medians")
  print("| color_match | median ms | / plain | first call s |")
  print("|---|---|---|---|")
  for m in methods:
    print(f"| {m} | {medians[m] * 1e3:.1f} | "
          f"{medians[m] / medians['none']:.2f} | {first[m]:.2f} |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"workload": args.workload, "device":
                 jax.devices()[0].device_kind, "times_s": times,
                 "median_s": medians, "first_call_s": first}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
