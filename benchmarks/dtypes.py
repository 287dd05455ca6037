"""Times one workload with float32 and with bfloat16 (or float16) images.

Run from the repository root:

    python -m benchmarks.dtypes [--workload W2] [--dtypes float32,bfloat16]
                                [--repeats 7] [--json PATH]

Variants, as in `benchmarks.run`: (a) `segs_paste` end to end, host numpy in
and out; (b) the jitted `paste` on device-resident, pre-packed inputs. The
dtypes alternate within every round (a f32, a bf16, b f32, b bf16, ...), so
a noisy shared machine slows them alike; medians are reported. The paste
blends in float32 either way: a low-precision image halves the bytes read
and written, not the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload

DTYPES = {"float32": np.float32, "bfloat16": jnp.bfloat16,
          "float16": np.float16}


def main(argv=None) -> int:
  """Command line entry point; returns the exit status."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workload", default="W2", choices=sorted(WORKLOADS))
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--json", default=None, help="also write the times here")
  args = parser.parse_args(argv)
  names = [d.strip() for d in args.dtypes.split(",") if d.strip()]
  if not names or any(d not in DTYPES for d in names):
    parser.error(f"--dtypes: choose from {sorted(DTYPES)}")

  feather, description = WORKLOADS[args.workload]
  image32, segs = make_workload(args.workload)
  packed = jax.device_put(segspaste_jax.pack_segs(segs, image32.shape))
  images = {d: image32.astype(DTYPES[d]) for d in names}
  on_device = {d: jax.device_put(images[d]) for d in names}

  def run_a(d):
    out = segspaste_jax.segs_paste(images[d], segs, feather=feather)
    return np.asarray(out.block_until_ready())

  def run_b(d):
    return segspaste_jax.paste(on_device[d], packed,
                               feather=feather).block_until_ready()

  variants = {"a": run_a, "b": run_b}
  first = {}
  for d in names:  # compile, and check the dtypes agree
    start = time.perf_counter()
    out = run_a(d)
    first[d] = time.perf_counter() - start
    run_b(d)
    assert out.dtype == images[d].dtype
  reference = run_a(names[0]).astype(np.float32)
  max_diff = {d: float(np.abs(run_a(d).astype(np.float32) - reference).max())
              for d in names}

  times = {f"{v}/{d}": [] for v in variants for d in names}
  for _ in range(args.repeats):
    for v, fn in variants.items():
      for d in names:
        start = time.perf_counter()
        fn(d)
        times[f"{v}/{d}"].append(time.perf_counter() - start)
  medians = {k: statistics.median(t) for k, t in times.items()}

  print(f"{args.workload}: {description}; jax {jax.__version__} on "
        f"{jax.default_backend()}, {args.repeats} rounds")
  for v in variants:
    row = ", ".join(f"{d} {medians[f'{v}/{d}'] * 1e3:.1f} ms" for d in names)
    print(f"  ({v}) median: {row}")
  for d in names[1:]:
    print(f"  max |{d} - {names[0]}| = {max_diff[d]:.2e}; first call "
          f"{first[d]:.2f} s")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"workload": args.workload, "times_s": times,
                 "median_s": medians, "first_call_s": first,
                 "max_abs_diff_vs_first": max_diff}, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
