"""Times segspaste_jax against the node-like torch baseline.

Run from the repository root:

    python -m benchmarks.run [--workloads W1,W2] [--repeats 7] [--json PATH]
                             [--quick] [--impact-pack PATH] [--no-peer]

For each workload, in one process, the variants are timed, interleaved
(a t b c ... a t b c ...) after one warm-up call of each, and their medians
reported:

  a: `segspaste_jax.segs_paste` end to end, host numpy in, host numpy out
     (packing, transfer, compute, `block_until_ready`, `np.asarray`).
  t: (a) with the image as a CPU torch tensor, as ComfyUI hands it over
     (shared with XLA without a copy).
  b: the jitted core `segspaste_jax.paste` on device-resident, pre-packed
     inputs (compute only).
  c: `tests.node_baseline.node_segs_paste` (torch on CPU, the node's
     loops).
  n: with `--impact-pack PATH`, the real node's `SEGSPaste.doit` read from
     that checkout (`benchmarks/impact_node.py`; needs torchvision).
  d: `image.copy()` in numpy, the floor for anything that returns a new image.
  e: (b) with `donate_image=True`: pasted into a device batch made (untimed)
     just before, with no new output buffer.
  p: `benchmarks.opencv_peer.peer_segs_paste`, the plain CPU peer (OpenCV's
     GaussianBlur and a numpy blend; needs opencv-python-headless, left out
     without it or with `--no-peer`).

`first_call_s` is the first call of (a) for the workload, before any warm-up:
it includes tracing and compiling unless an earlier workload in the same
process already compiled the same shapes.

The JSON also keeps every raw time, the minima and the load average: on small
shared VMs the timings can swing by several times between runs (torch's
OpenMP threads are the most sensitive; `--torch-threads 1` steadies them).

On a GPU, (b) and (e) are also timed as `--inner` calls per sample (the
median per call reported), so that what is measured is the device, not
Python's dispatch; (d) is then an on-device copy of the batch, the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import sys
import time

import jax
import numpy as np
import torch

import segspaste_jax
from tests.node_baseline import node_segs_paste
from benchmarks.workloads import WORKLOADS, make_workload

DEFAULT_JSON = pathlib.Path(__file__).resolve().parent / "results.json"
VARIANTS = ("a", "t", "b", "c", "d", "e")
ALPHA = 255


def _peak_rss_mb() -> float:
  """Peak resident set size of this process so far, MiB (Linux: KiB units)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _device_peak_bytes():
  """Peak bytes in use on the default device, or None where not reported."""
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except
    return None
  if not stats:
    return None
  return stats.get("peak_bytes_in_use")


def _timed(fn) -> float:
  """Wall time of one call of `fn`, seconds."""
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _tree_nbytes(tree) -> int:
  """Sum of `nbytes` over the array leaves of a pytree."""
  return int(sum(getattr(leaf, "nbytes", 0)
                 for leaf in jax.tree_util.tree_leaves(tree)))


def bench_workload(name: str, repeats: int, seed: int = 0,
                   node=None, peer=None, inner: int = 1) -> dict:
  """Times variants a-e (and n) on one workload.

  Args:
    name: workload name, a key of `WORKLOADS`.
    repeats: number of interleaved timed rounds (after one warm-up round).
    seed: workload seed.
    node: the real node's `doit` (`benchmarks.impact_node.load_node`), timed
      as variant n on the torch image; None to leave n out.
    peer: `benchmarks.opencv_peer.peer_segs_paste`, timed as variant p;
      None to leave p out.
    inner: calls of b, d and e per timed sample (the time per call is
      kept); more than 1 on accelerators, where one call is too short.

  Returns:
    A JSON-ready dict: raw times (s) and medians (s) per variant,
    `first_call_s`, max |a - c|, sizes, memory figures and, on GPU, the
    achieved bandwidth of (b).
  """
  feather, description = WORKLOADS[name]
  image, segs = make_workload(name, seed=seed)
  rss_before = _peak_rss_mb()

  # (a) first call: includes trace + compile for shapes not seen yet.
  start = time.perf_counter()
  out = segspaste_jax.segs_paste(image, segs, feather=feather, alpha=ALPHA)
  out.block_until_ready()
  out_a = np.asarray(out)
  first_call_s = time.perf_counter() - start
  del out

  packed = segspaste_jax.pack_segs(segs, image.shape)
  packed_dev = jax.device_put(packed)
  image_dev = jax.device_put(image)
  jax.block_until_ready((packed_dev, image_dev))

  def run_a():
    result = segspaste_jax.segs_paste(image, segs, feather=feather,
                                      alpha=ALPHA)
    result.block_until_ready()
    return np.asarray(result)

  # ComfyUI's IMAGE: a CPU tensor in torch's own (64-byte aligned) memory
  image_torch = torch.from_numpy(image).clone()

  def run_t():
    result = segspaste_jax.segs_paste(image_torch, segs, feather=feather,
                                      alpha=ALPHA)
    result.block_until_ready()
    return np.asarray(result)

  def run_b():
    out = None
    for _ in range(inner):
      out = segspaste_jax.paste(image_dev, packed_dev, feather=feather,
                                alpha=ALPHA)
    return out.block_until_ready()

  def run_c():
    return node_segs_paste(image, segs, feather=feather, alpha=ALPHA)

  on_device = jax.default_backend() != "cpu"

  def run_d():
    if not on_device:
      return image.copy()
    out = None
    for _ in range(inner):
      out = _device_copy(image_dev)
    return out.block_until_ready()

  def fresh_image():
    # (e)'s input: device batches that (e) may consume, made before timing.
    return [jax.block_until_ready(_device_copy(image_dev))
            for _ in range(inner)]

  def run_e(buffers):
    out = None
    while buffers:
      out = segspaste_jax.paste(buffers.pop(), packed_dev, feather=feather,
                                alpha=ALPHA, donate_image=True)
    return out.block_until_ready()

  def run_n():
    return node(image_torch, segs, feather, ALPHA)

  def run_p():
    return peer(image, segs, feather, ALPHA)

  fns = {"a": run_a, "t": run_t, "b": run_b, "c": run_c, "d": run_d,
         "n": run_n, "p": run_p}
  variants = VARIANTS + (("n",) if node is not None else ()) + (
      ("p",) if peer is not None else ())

  # Warm-up round; keep (c)'s output for the a-vs-c check.
  run_a()
  run_t()
  out_b = np.asarray(run_b())
  out_c = run_c().numpy()
  run_d()
  out_e = np.asarray(run_e(fresh_image()))
  assert np.array_equal(out_e, out_b), "donated paste differs from paste"
  max_abs_a_c = float(np.max(np.abs(out_a - out_c)))
  max_abs_b_c = float(np.max(np.abs(out_b - out_c)))
  max_abs_n_c = max_abs_p_c = None
  if node is not None:
    max_abs_n_c = float(np.max(np.abs(run_n().numpy() - out_c)))
  if peer is not None:
    max_abs_p_c = float(np.max(np.abs(run_p() - out_c)))
  del out_a, out_b, out_c, out_e

  times = {k: [] for k in variants}
  per_call = {"b": inner, "e": inner, "d": inner if on_device else 1}
  for _ in range(repeats):
    for k in variants:
      if k == "e":
        buffers = fresh_image()
        times[k].append(_timed(lambda b=buffers: run_e(b)) / inner)
        del buffers
      else:
        times[k].append(_timed(fns[k]) / per_call.get(k, 1))
  medians = {k: statistics.median(v) for k, v in times.items()}
  minima = {k: min(v) for k, v in times.items()}

  image_bytes = int(image.nbytes)
  packed_bytes = _tree_nbytes(packed)
  record = {
      "description": description,
      "feather": feather,
      "alpha": ALPHA,
      "image_shape": list(image.shape),
      "num_segments": len(segs[1]),
      "image_bytes": image_bytes,
      "packed_bytes": packed_bytes,
      "first_call_s": first_call_s,
      "times_s": times,
      "median_s": medians,
      "min_s": minima,
      "max_abs_diff_a_vs_c": max_abs_a_c,
      "max_abs_diff_b_vs_c": max_abs_b_c,
      "max_abs_diff_n_vs_c": max_abs_n_c,
      "max_abs_diff_p_vs_c": max_abs_p_c,
      "inner": inner,
      "peak_rss_mb_before": rss_before,
      "peak_rss_mb_after": _peak_rss_mb(),
      "device_peak_bytes": _device_peak_bytes(),
      "loadavg_after": list(os.getloadavg()),
  }
  if on_device:
    moved = 2 * image_bytes + packed_bytes
    record["b_bytes_moved"] = moved
    record["b_gbps"] = moved / medians["b"] / 1e9
    record["d_gbps"] = 2 * image_bytes / medians["d"] / 1e9
  return record


@jax.jit
def _device_copy(x):
  return x + 0


def _fmt_ms(seconds: float) -> str:
  ms = seconds * 1e3
  return f"{ms:.3f}" if ms < 1 else f"{ms:.1f}"


def print_table(results: dict) -> None:
  """Prints the median table (ms) for the results of `bench_workload`."""
  gpu = jax.default_backend() != "cpu"
  with_node = all("n" in r["median_s"] for r in results.values())
  with_peer = all("p" in r["median_s"] for r in results.values())
  headers = ["workload", "a ms", "t ms", "b ms", "c ms", "d ms", "e ms",
             "c/a", "c/t", "c/b", "b/d", "e/d", "first call s", "max|a-c|"]
  if with_node:
    headers[7:7] = ["n ms", "n/a", "n/t", "n/b"]
  if with_peer:
    headers[-2:-2] = ["p ms", "p/a", "p/t"]
  if gpu:
    headers += ["b GB/s", "d GB/s"]
  rows = []
  for name, r in results.items():
    m = r["median_s"]
    row = [name, _fmt_ms(m["a"]), _fmt_ms(m["t"]), _fmt_ms(m["b"]),
           _fmt_ms(m["c"]), _fmt_ms(m["d"]), _fmt_ms(m["e"]),
           f"{m['c'] / m['a']:.1f}", f"{m['c'] / m['t']:.1f}",
           f"{m['c'] / m['b']:.1f}", f"{m['b'] / m['d']:.2f}",
           f"{m['e'] / m['d']:.2f}", f"{r['first_call_s']:.2f}",
           f"{r['max_abs_diff_a_vs_c']:.1e}"]
    if with_node:
      row[7:7] = [_fmt_ms(m["n"]), f"{m['n'] / m['a']:.1f}",
                  f"{m['n'] / m['t']:.1f}", f"{m['n'] / m['b']:.1f}"]
    if with_peer:
      row[-2:-2] = [_fmt_ms(m["p"]), f"{m['p'] / m['a']:.2f}",
                    f"{m['p'] / m['t']:.2f}"]
    if gpu:
      row += [f"{r['b_gbps']:.1f}", f"{r['d_gbps']:.1f}"]
    rows.append(row)
  widths = [max(len(h), *(len(row[i]) for row in rows))
            for i, h in enumerate(headers)]
  line = " | ".join(h.ljust(w) for h, w in zip(headers, widths))
  print(line)
  print("-+-".join("-" * w for w in widths))
  for row in rows:
    print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


def environment() -> dict:
  """Versions and devices, for the JSON record."""
  return {
      "jax_version": jax.__version__,
      "jax_backend": jax.default_backend(),
      "jax_devices": [str(d) for d in jax.devices()],
      "jax_device_kinds": [getattr(d, "device_kind", "")
                           for d in jax.devices()],
      "torch_version": torch.__version__,
      "torch_threads": torch.get_num_threads(),
      "numpy_version": np.__version__,
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "processor": platform.processor(),
      "cpu_count": os.cpu_count(),
      "loadavg_start": list(os.getloadavg()),
  }


def main(argv=None) -> int:
  """Command line entry point.

  Args:
    argv: arguments (default `sys.argv[1:]`).

  Returns:
    Process exit status.
  """
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workloads", default=None,
                      help="comma-separated names (default: all; "
                           "--quick: W1,W3)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed rounds per workload (default 7, --quick 3)")
  parser.add_argument("--json", default=str(DEFAULT_JSON),
                      help=f"where to write results (default {DEFAULT_JSON})")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--torch-threads", type=int, default=None,
                      help="torch.set_num_threads for the baseline (default: "
                           "torch's own choice)")
  parser.add_argument("--quick", action="store_true",
                      help="smoke test: 3 repeats of W1 and W3")
  parser.add_argument("--impact-pack", default=None, metavar="PATH",
                      help="a ComfyUI-Impact-Pack checkout: also time the "
                           "real node as variant n (needs torchvision; see "
                           "benchmarks/impact_node.py)")
  parser.add_argument("--no-peer", action="store_true",
                      help="leave out the OpenCV peer (variant p)")
  parser.add_argument("--inner", type=int, default=None,
                      help="calls of b, d and e per timed sample (default 1 "
                           "on CPU, 20 on accelerators)")
  args = parser.parse_args(argv)

  if args.workloads:
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
  else:
    names = ["W1", "W3"] if args.quick else list(WORKLOADS)
  unknown = [n for n in names if n not in WORKLOADS]
  if unknown:
    parser.error(f"unknown workloads {unknown}; known: {list(WORKLOADS)}")
  repeats = args.repeats if args.repeats is not None else (
      3 if args.quick else 7)
  if repeats < 1:
    parser.error("--repeats must be >= 1")

  if args.torch_threads is not None:
    torch.set_num_threads(args.torch_threads)
  node = None
  if args.impact_pack:
    from benchmarks.impact_node import load_node  # pylint: disable=g-import-not-at-top
    node = load_node(args.impact_pack)
  peer = None
  if not args.no_peer:
    try:
      from benchmarks.opencv_peer import peer_segs_paste as peer  # pylint: disable=g-import-not-at-top
    except ImportError:
      print("opencv-python-headless not installed: no peer (variant p)")
  inner = args.inner or (1 if jax.default_backend() == "cpu" else 20)
  env = environment()
  print(f"jax {env['jax_version']} on {env['jax_backend']} "
        f"{env['jax_devices']}; torch {env['torch_version']} "
        f"({env['torch_threads']} threads); {repeats} repeats")
  results = {}
  for name in names:
    print(f"{name}: {WORKLOADS[name][1]} ...", flush=True)
    results[name] = bench_workload(name, repeats, seed=args.seed, node=node,
                                   peer=peer, inner=inner)
  print()
  print_table(results)
  print("\na: segs_paste end to end (numpy in, host out); t: the same with "
        "the image as a torch tensor (ComfyUI's IMAGE); b: jitted paste on "
        "device inputs; c: torch node baseline; d: numpy image.copy(); "
        "e: b with donate_image=True (in place)"
        + ("; n: the real Impact Pack node (torch image)" if node else "")
        + ("; p: the OpenCV + numpy peer" if peer else "")
        + f". Medians{f', b d e per call of {inner}' if inner > 1 else ''}.")

  path = pathlib.Path(args.json)
  path.parent.mkdir(parents=True, exist_ok=True)
  payload = {"environment": env, "repeats": repeats, "seed": args.seed,
             "alpha": ALPHA, "results": results}
  path.write_text(json.dumps(payload, indent=2))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
