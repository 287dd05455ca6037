"""A different SEGS for every image: one call against one call per image.

16 images of 1024 x 1024, each with 4 segments of its own (192-320 px
crops, soft 2-D masks, feather 5). Timed, warm, medians of `--repeats`
rounds in one process (each round runs every variant once):

  p: `segs_paste(images, [segs_0, ..., segs_15])`: one program for the batch
  s: 16 `segs_paste(images[k:k+1], segs_k)` calls, one per image
  n: the node run once per image: the real Impact Pack `SEGSPaste.doit`
     with `--impact-pack PATH` (benchmarks/impact_node.py), else its
     re-statement in torch (tests/node_baseline.py)
  r: the paste alone on packed, placed data, in the CPU form that `paste`
     picks here (every image's segments in one scan, the images stacked
     along their rows)
  v: the same in the accelerator form (`vmap` over the images of the
     straight-line paste), run on this CPU

Every variant's output is checked against `s` (within 1e-5) before timing.

  PYTHONPATH=. python benchmarks/per_image.py [--repeats 5] [--impact-pack PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import jax

from benchmarks.workloads import make_segs
from segspaste_jax import pack_segs, segs_paste
from segspaste_jax._src import paste as paste_lib

IMAGES, SIDE, SEGMENTS, FEATHER = 16, 1024, 4, 5


def make_batch(seed: int = 0):
  rng = np.random.default_rng(seed)
  images = rng.random((IMAGES, SIDE, SIDE, 3), dtype=np.float32)
  segs = [make_segs(rng, 1, SIDE, SIDE, SEGMENTS, (192, 320), False)
          for _ in range(IMAGES)]
  return images, segs


def _medians_ms(fns: dict, repeats: int) -> dict:
  """Round robin: each repeat runs every variant once, so that the
  machine's slow and fast phases fall on all of them alike."""
  times = {key: [] for key in fns}
  for _ in range(repeats):
    for key, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[key].append(time.perf_counter() - start)
  return {key: 1e3 * statistics.median(t) for key, t in times.items()}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--impact-pack", default=None, metavar="PATH")
  args = parser.parse_args(argv)

  images, segs = make_batch()
  import torch  # pylint: disable=import-outside-toplevel
  if args.impact_pack:
    from benchmarks.impact_node import load_node  # pylint: disable=import-outside-toplevel
    node = load_node(args.impact_pack)
    node_name = "Impact Pack SEGSPaste, once per image"

    def node_one(k):
      return node(torch.from_numpy(images[k:k + 1]), segs[k], FEATHER, 255)
  else:
    from tests.node_baseline import node_segs_paste  # pylint: disable=import-outside-toplevel
    node_name = "node re-stated in torch, once per image"

    def node_one(k):
      return node_segs_paste(images[k:k + 1], segs[k], FEATHER, 255)

  def run_p():
    return np.asarray(segs_paste(images, segs, FEATHER))

  def run_s():
    return np.concatenate([np.asarray(segs_paste(images[k:k + 1], segs[k],
                                                 FEATHER))
                           for k in range(IMAGES)])

  def run_n():
    return np.concatenate([np.asarray(node_one(k)) for k in range(IMAGES)])

  placed = jax.device_put(pack_segs(segs, images.shape).strip_meta())
  placed_images = jax.device_put(images)

  def form_runner(form):
    def run():
      return np.asarray(paste_lib._paste_jit(  # pylint: disable=protected-access
          placed_images, placed, FEATHER, 255, None,
          **paste_lib.static_args(form, FEATHER)).block_until_ready())
    return run

  want = run_s()
  run_r, run_v = form_runner("cpu"), form_runner("accelerator")
  for name, fn in (("p", run_p), ("n", run_n), ("r", run_r), ("v", run_v)):
    got = fn()
    error = float(np.abs(got - want).max())
    if error > 1e-5:
      print(f"variant {name} differs from s by {error:g}", file=sys.stderr)
      return 1
  rows = [("p", "segs_paste, one call with per-image SEGS", run_p),
          ("s", "segs_paste, one call per image", run_s),
          ("n", node_name, run_n),
          ("r", "paste on placed data, CPU form (rows stacked)", run_r),
          ("v", "paste on placed data, accelerator form (vmap)", run_v)]
  times = _medians_ms({key: fn for key, _, fn in rows}, args.repeats)
  print(f"{IMAGES} images {SIDE}x{SIDE}, {SEGMENTS} own segments each, "
        f"feather {FEATHER}; medians of {args.repeats}, warm")
  print(f"{'variant':<48} {'ms':>9} {'n / it':>8}")
  for key, label, _ in rows:
    print(f"{key}: {label:<45} {times[key]:9.1f} "
          f"{times['n'] / times[key]:7.1f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
