"""Peak memory of long IMAGE batches through the ComfyUI node's `doit`.

Run from the repository root:

    python -m benchmarks.comfy_memory [--sizes 300x512,2000x256]
                                      [--impact-pack PATH] [--json PATH]

For each size (frames x side, RGB float32 frames, two segments with a crop
and a mask per frame, as a detailer's SEGS for a video carry them) and each
node, one fresh child process:

1. imports torch and the node, and pastes ONE frame of the same size
   through the node's `doit` (imports done, the program compiled): its
   resident set size then is the baseline;
2. builds the long batch's inputs (the IMAGE as a torch tensor, the SEGS'
   crops and masks as numpy arrays, written in place);
3. resets the peak (Linux `/proc/self/clear_refs`, so that building the
   inputs does not count), runs `doit` on the long batch and reads the peak
   resident set size (`VmHWM`).

The rise is the peak over the baseline; the target for SEGSPaste (JAX) is
at most 1.15 x (inputs + output), the memory the inputs and one float32
output need. Nodes: `jax` (`SEGSPasteJAX.doit`, this checkout);
`node2025` (the node's loops re-stated in torch, `tests/node_baseline.py`,
with the output preallocated as the Impact Pack's node does since 2025,
whose code is not at hand here); and, with `--impact-pack`, `impact` (the
Impact Pack's own `SEGSPaste.doit` read from that checkout by
`benchmarks/impact_node.py`; it needs torchvision).
Linux only (it reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

TARGET = 1.15
CHILD_TIMEOUT_S = 3600


def _status_kib(field: str) -> int:
  with open("/proc/self/status", encoding="ascii") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1])
  raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> bool:
  """Resets VmHWM to the current RSS (Linux 4.0+); False where refused."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
      f.write("5")
    return True
  except OSError:
    return False


def _workload(frames: int, side: int, seed: int = 0):
  """IMAGE `[frames, side, side, 3]` (torch) and SEGS with two segments,
  each with a crop `[frames, c, c, 3]` and a mask `[frames, c, c]` (numpy,
  c = side * 5 // 16), written in place (no temporaries)."""
  import numpy as np
  import torch

  from segspaste_jax import SEG

  rng = np.random.default_rng(seed)
  image = torch.empty((frames, side, side, 3), dtype=torch.float32)
  rng.random(out=image.numpy(), dtype=np.float32)
  c = side * 5 // 16
  segs = []
  for k, (x, y) in enumerate(((side // 12, side // 9),
                              (side - c - side // 10, side - c - side // 7))):
    crop = np.empty((frames, c, c, 3), np.float32)
    rng.random(out=crop, dtype=np.float32)
    mask = np.empty((frames, c, c), np.float32)
    rng.random(out=mask, dtype=np.float32)
    segs.append(SEG(crop, mask, 0.9, (x, y, x + c, y + c),
                    (x, y, x + c, y + c), f"seg{k}"))
  return image, ((side, side), segs)


def _nbytes(image, segs) -> int:
  return int(image.numel() * image.element_size() + sum(
      s.cropped_image.nbytes + s.cropped_mask.nbytes for s in segs[1]))


def _node(which: str, impact_pack: str | None, chunk_mib: int | None = None):
  if which == "jax":
    from segspaste_jax import comfy
    from segspaste_jax._src import node_paste
    if chunk_mib:
      node_paste.CHUNK_BYTES = chunk_mib << 20
    node = comfy.SEGSPasteJAX()
    return lambda image, segs: node.doit(image, segs, 5, 255)[0]
  if which == "node2025":
    from tests.node_baseline import node_segs_paste
    return lambda image, segs: node_segs_paste(image, segs, 5, 255,
                                               preallocate=True)
  from benchmarks.impact_node import load_node
  doit = load_node(impact_pack)
  return lambda image, segs: doit(image, segs, 5, 255)


def child(which: str, frames: int, side: int, impact_pack: str | None,
          chunk_mib: int | None = None):
  """One measurement; prints a JSON line."""
  paste = _node(which, impact_pack, chunk_mib)
  image, segs = _workload(1, side, seed=1)
  paste(image, segs)
  del image, segs
  gc.collect()
  base_kib = _status_kib("VmRSS")
  image, segs = _workload(frames, side)
  inputs = _nbytes(image, segs)
  gc.collect()
  reset = _reset_peak()
  held_kib = _status_kib("VmRSS")
  start = time.perf_counter()
  out = paste(image, segs)
  seconds = time.perf_counter() - start
  peak_kib = _status_kib("VmHWM")
  output = int(out.numel() * out.element_size())
  assert tuple(out.shape) == (frames, side, side, 3)
  print(json.dumps({
      "node": which + (f" ({chunk_mib} MiB chunks)" if chunk_mib else ""),
      "frames": frames, "side": side, "inputs": inputs,
      "output": output, "base": base_kib * 1024,
      "held_before_call": held_kib * 1024, "peak": peak_kib * 1024,
      "peak_reset": reset, "seconds": seconds}))


def _run_child(which, frames, side, impact_pack, chunk_mib=None):
  argv = [sys.executable, "-m", "benchmarks.comfy_memory", "--child", which,
          str(frames), str(side)]
  if impact_pack:
    argv += ["--impact-pack", impact_pack]
  if chunk_mib:
    argv += ["--chunk-mib", str(chunk_mib)]
  env = dict(os.environ, SEGSPASTE_JAX_COMPILE_CACHE="off")
  try:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=CHILD_TIMEOUT_S, check=False)
  except subprocess.TimeoutExpired:
    return {"node": which, "frames": frames, "side": side,
            "error": f"did not finish in {CHILD_TIMEOUT_S} s"}
  if proc.returncode != 0:
    return {"node": which, "frames": frames, "side": side,
            "error": proc.stderr.strip().splitlines()[-1:]}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _gb(n) -> str:
  return f"{n / 1e9:.2f}"


def table(rows) -> str:
  lines = [("| node | frames | inputs GB | output GB | baseline GB | peak GB "
            "| rise GB | rise / (in+out) | target 1.15 | time s |"),
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    size = f"{r['frames']} x {r['side']}^2"
    if "error" in r:
      lines.append(f"| {r['node']} | {size} | | | | | | {r['error']} | | |")
      continue
    rise = r["peak"] - r["base"]
    ratio = rise / (r["inputs"] + r["output"])
    lines.append(
        f"| {r['node']} | {size} | {_gb(r['inputs'])} | {_gb(r['output'])} "
        f"| {_gb(r['base'])} | {_gb(r['peak'])} | {_gb(rise)} | "
        f"{ratio:.2f} | {'met' if ratio <= TARGET else 'missed'} | "
        f"{r['seconds']:.1f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="300x512,2000x256",
                      help="FRAMESxSIDE,... (default 300x512,2000x256)")
  parser.add_argument("--impact-pack", metavar="PATH",
                      help="a ComfyUI-Impact-Pack checkout: also measure its "
                           "SEGSPaste")
  parser.add_argument("--nodes", default=None,
                      help="jax,node2025,impact (default: jax and node2025, "
                           "and impact with --impact-pack)")
  parser.add_argument("--chunk-mib", type=int, metavar="MIB",
                      help="SEGSPasteJAX's chunk size in MiB of output "
                           "(default: CHUNK_BYTES of "
                           "segspaste_jax._src.node_paste)")
  parser.add_argument("--json", metavar="PATH", help="also write the rows")
  parser.add_argument("--child", nargs=3, metavar=("NODE", "N", "SIDE"),
                      help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    which, frames, side = args.child
    child(which, int(frames), int(side), args.impact_pack, args.chunk_mib)
    return 0
  nodes = (args.nodes.split(",") if args.nodes else
           ["jax", "node2025"] + (["impact"] if args.impact_pack else []))
  rows = []
  for size in args.sizes.split(","):
    frames, side = (int(v) for v in size.split("x"))
    for which in nodes:
      rows.append(_run_child(which, frames, side, args.impact_pack,
                             args.chunk_mib if which == "jax" else None))
      print(json.dumps(rows[-1]), flush=True)
  print(table(rows))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
