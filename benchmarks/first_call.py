"""Where one workload's first call goes, and its warm paste, on any backend.

    python -m benchmarks.first_call [--workload W3] [--repeats 10]

Prints, for the jitted `paste` on device-resident packed data: the first
call's tracing, lowering and compiling (from `jax.monitoring`) and its wall
time, then the medians of the warm call into a new batch (variant b of
`benchmarks.run`) and into a donated one (variant e). Environment
variables such as `XLA_FLAGS` apply as usual, so that compiler settings
can be compared process by process.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import jax
import jax.monitoring

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workload", default="W3", choices=sorted(WORKLOADS))
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args(argv)

  events = collections.defaultdict(float)
  jax.monitoring.register_event_duration_secs_listener(
      lambda name, secs, **kw: events.__setitem__(
          name.rsplit("/", 1)[-1], events[name.rsplit("/", 1)[-1]] + secs))
  jax.block_until_ready(jax.numpy.zeros(1))  # backend up before timing
  events.clear()

  feather = WORKLOADS[args.workload][0]
  image, segs = make_workload(args.workload)
  packed = jax.device_put(segspaste_jax.pack_segs(segs, image.shape))
  image = jax.device_put(image)
  jax.block_until_ready((packed, image))

  def fresh():
    return jax.block_until_ready(image + 0)

  def run_b():
    return segspaste_jax.paste(image, packed, feather=feather
                               ).block_until_ready()

  def run_e(buffer):
    return segspaste_jax.paste(buffer, packed, feather=feather,
                               donate_image=True).block_until_ready()

  start = time.perf_counter()
  run_b()
  first = time.perf_counter() - start
  print(f"{args.workload} on {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), jax {jax.__version__}")
  print(f"first call of paste: {first:.2f} s; "
        + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(events.items())
                    if v >= 0.005))
  run_e(fresh())

  times = {"b": [], "e": [], "copy": []}
  for _ in range(args.repeats):
    start = time.perf_counter()
    out = run_b()
    times["b"].append(time.perf_counter() - start)
    del out
    buffer = fresh()
    start = time.perf_counter()
    out = run_e(buffer)
    times["e"].append(time.perf_counter() - start)
    del out, buffer
    start = time.perf_counter()
    out = fresh()
    times["copy"].append(time.perf_counter() - start)
    del out
  print("warm medians: " + ", ".join(
      f"{k} {statistics.median(v) * 1e3:.3f} ms" for k, v in times.items())
        + f" ({args.repeats} each; copy: `image + 0`)")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
