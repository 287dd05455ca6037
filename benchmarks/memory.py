"""Peak host memory of one warm `segs_paste` call, as a multiple of the batch.

    python -m benchmarks.memory [--workload W2] [--torch]

Samples this process's resident set every half millisecond during two
calls and reports, for each, the peak above the resident set before it:
the first call (compiling) and a warm one.
"""

from __future__ import annotations

import argparse
import gc
import os
import threading
import time

import numpy as np

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * _PAGE


def peak_growth(image, segs, feather: int) -> int:
  """Peak resident bytes above the starting point during one call."""
  gc.collect()
  base = peak = _rss_bytes()
  done = threading.Event()

  def sample():
    nonlocal peak
    while not done.is_set():
      peak = max(peak, _rss_bytes())
      time.sleep(0.0005)

  sampler = threading.Thread(target=sample)
  sampler.start()
  out = np.asarray(segspaste_jax.segs_paste(image, segs, feather))
  done.set()
  sampler.join()
  del out
  return max(peak, _rss_bytes()) - base


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workload", default="W2", choices=sorted(WORKLOADS))
  parser.add_argument("--torch", action="store_true",
                      help="pass the image as a torch tensor (ComfyUI's IMAGE)")
  args = parser.parse_args(argv)
  image, segs = make_workload(args.workload)
  batch = image.nbytes
  if args.torch:
    import torch  # pylint: disable=import-outside-toplevel
    image = torch.from_numpy(image).clone()
  feather = WORKLOADS[args.workload][0]
  kind = "torch" if args.torch else "numpy"
  print(f"{args.workload} ({kind} image, batch {batch / 2**20:.0f} MiB):")
  for call in ("first call", "warm call"):
    grown = peak_growth(image, segs, feather)
    print(f"  {call}: peak {grown / 2**20:.0f} MiB above its start = "
          f"{grown / batch:.2f}x the batch")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
