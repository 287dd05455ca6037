"""`segs_paste` end to end, step by step, against the OpenCV peers.

    python -m benchmarks.steps [--workloads W1,W2,W3,W4] [--repeats 9]

For each workload, in one process, after one warm-up round, rounds of:

  a: `segs_paste(image, segs, feather=...)` then `np.asarray` (numpy in,
     numpy out), the call as a user makes it;
  its steps, each timed to completion before the next starts (so their sum
  is more than `a`, where the transfer overlaps the reading and packing):
    checks: the image checked and the SEGS read and checked
      (`validate.check_image`, `read_segs.read_segs`);
    packing: `packing.pack` as `segs_paste` packs (`paged=True`);
    transfer: the image to JAX (`arrays.to_unit_float`), waited for;
    paste: the compiled paste as `segs_paste` calls it (donated where the
      image is the library's own), waited for;
    result: `np.asarray` of the result;
  p: `benchmarks.opencv_peer.peer_segs_paste`;
  q: `benchmarks.opencv_peer.peer_segs_paste_threaded`;
  d: `image.copy()`, the floor for anything that returns a new image,

interleaved (a, steps, p, q, d, a, ...), medians in ms, with `best/a` the
faster peer's time over ours (above 1: segspaste_jax is faster) and the
load average before and after. `shared`: XLA took the image without a
copy (numpy's large arrays start 16 bytes past a page, which XLA copies;
some land 64-byte aligned, which it shares, and the paste then copies
them). `faults`: the pages first touched (minor
page faults of the process) during the transfer and during `d`, each
against the image's size in 4 KiB pages: what a copy costs besides
moving the bytes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np

import segspaste_jax
from segspaste_jax._src import arrays, packing, paste, read_segs, validate
from benchmarks.opencv_peer import peer_segs_paste, peer_segs_paste_threaded
from benchmarks.workloads import WORKLOADS, make_workload

STEPS = ("checks", "packing", "transfer", "paste", "result")


def _faults() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _steps(image, segs, feather: int) -> dict:
  """The steps of one `segs_paste` call, each waited for: seconds."""
  opts = validate.options(feather)
  times = {}
  start = time.perf_counter()
  shape = validate.check_image(image)
  read = read_segs.read_segs(segs, shape, opts)
  times["checks"] = time.perf_counter() - start
  start = time.perf_counter()
  packed = packing.pack(read, shape, paged=True)
  times["packing"] = time.perf_counter() - start
  start, faults = time.perf_counter(), _faults()
  x, owned, _ = arrays.to_unit_float(image)
  x.block_until_ready()
  times["transfer"] = time.perf_counter() - start
  times["transfer_faults"] = _faults() - faults
  # XLA shares a 64-byte aligned host array (then copies it in the paste)
  times["shared"] = float(np.shares_memory(np.asarray(x), image))
  start = time.perf_counter()
  out = paste.paste(x, packed, donate_image=owned, **opts.paste_kwargs())
  out.block_until_ready()
  times["paste"] = time.perf_counter() - start
  start = time.perf_counter()
  np.asarray(out)
  times["result"] = time.perf_counter() - start
  return times


def bench(name: str, repeats: int) -> dict:
  """Medians (s) of a, the steps, p, q and d on one workload."""
  image, segs = make_workload(name, 0)
  feather = WORKLOADS[name][0]

  def run_a():
    return np.asarray(segspaste_jax.segs_paste(image, segs, feather=feather))

  runs = {"a": run_a,
          "p": lambda: peer_segs_paste(image, segs, feather),
          "q": lambda: peer_segs_paste_threaded(image, segs, feather),
          "d": image.copy}
  want = run_a()
  for k in "pq":
    diff = float(np.max(np.abs(runs[k]() - want)))
    assert diff < 1e-5, f"{name}: peer {k} differs from segs_paste by {diff}"
  _steps(image, segs, feather)
  times = {k: [] for k in ("a", *STEPS, "p", "q", "d", "transfer_faults",
                            "d_faults", "shared")}
  for _ in range(repeats):
    for k, fn in runs.items():
      start, faults = time.perf_counter(), _faults()
      fn()
      times[k].append(time.perf_counter() - start)
      if k == "d":
        times["d_faults"].append(_faults() - faults)
      if k == "a":
        for step, t in _steps(image, segs, feather).items():
          times[step].append(t)
  medians = {k: statistics.median(v) for k, v in times.items()}
  medians["pages"] = image.nbytes // 4096
  return medians


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workloads", default="W1,W2,W3,W4")
  parser.add_argument("--repeats", type=int, default=9)
  args = parser.parse_args(argv)
  load = os.getloadavg()[0]
  headers = ["workload", "a", *STEPS, "p", "q", "d", "p/a", "q/a", "best/a",
             "faults: transfer", "d", "pages", "shared"]
  print(" | ".join(headers))
  for name in args.workloads.split(","):
    m = bench(name, args.repeats)
    best = min(m["p"], m["q"])
    row = [name] + [f"{m[k] * 1e3:.1f}" for k in ("a", *STEPS, "p", "q", "d")]
    row += [f"{m['p'] / m['a']:.2f}", f"{m['q'] / m['a']:.2f}",
            f"{best / m['a']:.2f}", f"{m['transfer_faults']:.0f}",
            f"{m['d_faults']:.0f}", str(m["pages"]),
            "yes" if m["shared"] else "no"]
    print(" | ".join(row), flush=True)
  print(f"medians of {args.repeats} interleaved rounds, ms; load average "
        f"{load:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"{os.cpu_count()} CPUs")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
