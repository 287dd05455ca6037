"""The accelerator on paper: FLOPs and bytes of the accelerator program
against an H100's roofline, for W1-W4 and the W2 round trip.

    python -m benchmarks.roofline [--json out.json]

For each workload the accelerator form of the paste (`paste` traced
inside `jax.jit`, the straight-line program GPUs and TPUs get) on packed
SEGS already on the device, and the W2 round trip at 512 x 512 (cut,
resample up, back, pack, paste: `benchmarks.round_trip`'s chain) in the
form `crop_segs` picks and in the dense matrix form. The FLOPs and bytes
are XLA's own count (`jax.jit(...).lower(...).compile().cost_analysis()`,
compiled for the machine this runs on: on a CPU its fusion decisions, not
a GPU's, so read the bytes as an estimate), beside a floor by hand: the
image read once and written once, the packed crops and masks read once.

The roofline: an H100 SXM's HBM3 bandwidth, 3.35 TB/s, and its float32
rate without tensor cores, 67 TFLOP/s (every matrix product here runs at
`Precision.HIGHEST`, full float32, so TF32 tensor cores do not apply).
Predicted time = max(bytes / bandwidth, FLOPs / rate); the larger term is
the limit. The machine balance is 67e12 / 3.35e12 = 20 FLOP per byte.
`benchmarks/device_check.sh` runs this beside the timings on a lent GPU,
so the two can be set side by side.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload
from segspaste_jax._src import model_size

BANDWIDTH = 3.35e12  # bytes/s, H100 SXM HBM3
FLOP_RATE = 67e12    # FLOP/s, H100 SXM float32, no tensor cores
ALPHA = 255


def _cost(fn, *args) -> dict:
  compiled = jax.jit(fn).lower(*args).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
    cost = cost[0]
  return {"flops": float(cost.get("flops", 0.0)),
          "bytes": float(cost.get("bytes accessed", 0.0))}


def _nbytes(tree) -> int:
  return sum(int(np.asarray(x).nbytes) for x in jax.tree.leaves(tree))


def _row(name: str, cost: dict, floor_bytes: int) -> dict:
  t_mem = cost["bytes"] / BANDWIDTH
  t_flop = cost["flops"] / FLOP_RATE
  return {"name": name, **cost, "floor_bytes": floor_bytes,
          "intensity": cost["flops"] / max(cost["bytes"], 1.0),
          "t_mem_ms": 1e3 * t_mem, "t_flop_ms": 1e3 * t_flop,
          "t_floor_ms": 1e3 * floor_bytes / BANDWIDTH,
          "predicted_ms": 1e3 * max(t_mem, t_flop),
          "limit": "memory" if t_mem >= t_flop else "compute"}


def paste_rows() -> list[dict]:
  rows = []
  for name in sorted(WORKLOADS):
    feather = WORKLOADS[name][0]
    image, segs = make_workload(name)
    packed = segspaste_jax.pack_segs(segs, image.shape)

    def paste(image, packed, feather=feather):
      return segspaste_jax.paste(image, packed, feather=feather, alpha=ALPHA)

    cost = _cost(paste, image, packed)
    floor = 2 * image.nbytes + _nbytes((packed.crops, packed.masks))
    rows.append(_row(f"{name} paste", cost, floor))
  return rows


def round_trip_rows(size: int = 512, bucket: int = 320) -> list[dict]:
  from benchmarks.round_trip import _inputs  # pylint: disable=import-outside-toplevel
  feather = WORKLOADS["W2"][0]
  image, regions, masks, _ = _inputs(bucket)
  rows = []
  for form in (None, "dense"):

    def resample(x, transform, to_model, form=form):
      # loop=False: the accelerator form (every crop at once); a loop's
      # cost analysis would count its body once
      return model_size._resample_core(  # pylint: disable=protected-access
          x, transform, method="lanczos3", to_model=to_model, form=form,
          loop=False)

    def chain(image, regions, masks, resample=resample):
      cut = segspaste_jax.crop_segs(image, regions, bucket)
      transform = model_size.make_transform(cut.sizes, bucket, (size, size),
                                            "contain")
      up = resample(cut.crops, transform, True)
      back = resample(up, transform, False)
      packed = segspaste_jax.make_packed_segs(regions, masks, back)
      return segspaste_jax.paste(image, packed, feather=feather, alpha=ALPHA)

    cost = _cost(chain, image, regions, masks)
    s, n = len(regions), image.shape[0]
    # image in and out, the crops cut (B^2) and resampled (size^2) and back
    # (B^2), each written once and read once, the masks read once
    crops = s * n * 3 * 4 * (2 * bucket * bucket + size * size)
    floor = 2 * image.nbytes + 2 * crops + masks.nbytes
    label = "dense form" if form else "form picked"
    rows.append(_row(f"W2 round trip to {size}^2, {label}", cost, floor))
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--json", default=None)
  args = parser.parse_args(argv)
  rows = paste_rows() + round_trip_rows()
  print(f"H100 SXM roofline: {BANDWIDTH / 1e12:.2f} TB/s, "
        f"{FLOP_RATE / 1e12:.0f} TFLOP/s float32 (no tensor cores); "
        f"XLA cost analysis compiled on {jax.default_backend()}")
  print("| program | GFLOP | GB (XLA) | GB (floor) | FLOP/B | memory ms "
        "| compute ms | predicted ms | limit |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['name']} | {r['flops'] / 1e9:.2f} | {r['bytes'] / 1e9:.3f} "
          f"| {r['floor_bytes'] / 1e9:.3f} | {r['intensity']:.1f} "
          f"| {r['t_mem_ms']:.3f} | {r['t_flop_ms']:.3f} "
          f"| {r['predicted_ms']:.3f} | {r['limit']} |", flush=True)
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump({"rows": rows, "bandwidth": BANDWIDTH, "flop_rate": FLOP_RATE,
                 "backend": jax.default_backend()}, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
