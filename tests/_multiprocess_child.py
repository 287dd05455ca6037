"""One process of `test_multiprocess.py`'s two-process run (not a test).

`make_segs` builds the SEGS from numpy alone, the same in the parent test
and in both children. Run as a script, `main` joins a two-process JAX
cluster on a loopback coordinator and pastes the parent's frames file over
a mesh of all four devices (two per process), writing only the frames this
process holds; see `main`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

N, H, W, C = 8, 64, 64, 3
FEATHER = 4
ALPHA = 230
CHUNK = 4
SKIP_EXIT = 77  # the installed jax has no CPU multi-process support


def make_segs(n: int = N, seed: int = 7):
  """Four SEGs for `n` frames of `H` x `W`: per-frame crops and masks, one
  SEG overhanging the top-left corner, one reaching the bottom-right
  border, one with a single crop and a 2-D mask; torch-style SEGS."""
  from segspaste_jax import SEG  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  segs = []
  layout = [  # x1, y1, h, w, crop frames, mask frames (0: a 2-D mask)
      (-6, -5, 20, 24, n, n),          # over the top-left corner
      (10, 12, 30, 22, n, n),          # inside, overlapping the first
      (W - 18, H - 14, 14, 18, n, n),  # flush with the bottom-right border
      (30, 4, 16, 16, 1, 0),           # one crop and one mask, every frame
  ]
  for k, (x1, y1, h, w, crop_frames, mask_frames) in enumerate(layout):
    crop = rng.random((crop_frames, h, w, C), np.float32)
    mask = rng.random((mask_frames, h, w) if mask_frames else (h, w),
                      np.float32)
    region = (x1, y1, x1 + w, y1 + h)
    segs.append(SEG(crop, mask, 0.5, region, region, f"s{k}"))
  return (H, W), segs


class _Recording:
  """An array-like view of `base` that records the frame ranges read."""

  def __init__(self, base):
    self.base, self.shape, self.dtype = base, base.shape, base.dtype
    self.reads = []

  def __getitem__(self, index):
    first = index[0] if isinstance(index, tuple) else index
    start, stop, _ = first.indices(self.shape[0])
    self.reads.append([start, stop])
    return self.base[index]


def _frames_of(index, total: int) -> list[int]:
  start, stop, _ = index[0].indices(total)
  return list(range(start, stop))


def main(port: int, process_id: int, workdir: str) -> None:
  """Joins the cluster as `process_id` of 2 and pastes `workdir/frames.npy`.

  Writes, into the parent's `.npy` files opened in place (`r+`), only the
  frames this process holds: `paste.npy` from `segs_paste(mesh=)`'s
  addressable shards, `stream.npy` from `stream_segs_paste(mesh=)`'s chunks
  (which every process gets whole: `stream_<id>.npy` holds them all).
  Reports in `report_<id>.json` which frames it wrote and read.
  """
  import jax  # pylint: disable=import-outside-toplevel
  try:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except (AttributeError, ValueError) as e:
    print(f"no CPU collectives option: {e}", file=sys.stderr)
    sys.exit(SKIP_EXIT)
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                             num_processes=2, process_id=process_id,
                             initialization_timeout=60)
  from segspaste_jax import (  # pylint: disable=import-outside-toplevel
      frames_mesh, segs_paste, stream_segs_paste)

  report = {"process_index": jax.process_index(),
            "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count()}
  frames = np.load(os.path.join(workdir, "frames.npy"), mmap_mode="r")
  segs = make_segs()
  mesh = frames_mesh()
  kw = dict(feather=FEATHER, alpha=ALPHA)

  # segs_paste over the mesh: each process writes its addressable frames
  recording = _Recording(frames)
  out = segs_paste(recording, segs, mesh=mesh, **kw)
  report["paste_reads"] = recording.reads
  report["paste_spec"] = [str(a) for a in out.sharding.spec]
  written = np.load(os.path.join(workdir, "paste.npy"), mmap_mode="r+")
  report["paste_frames"] = []
  for shard in out.addressable_shards:
    written[shard.index[0]] = np.asarray(shard.data)
    report["paste_frames"] += _frames_of(shard.index, N)
  written.flush()
  del written

  # the stream over the same mesh: every process gets every chunk whole,
  # and writes the frames its own devices pasted
  written = np.load(os.path.join(workdir, "stream.npy"), mmap_mode="r+")
  chunks, report["stream_frames"] = [], []
  start = 0
  for chunk in stream_segs_paste(frames, segs, chunk=CHUNK, mesh=mesh,
                                 progress=False, **kw):
    chunks.append(chunk)
    mine = _own_frames(mesh, start, len(chunk))
    written[mine] = chunk[mine - start]
    report["stream_frames"] += mine.tolist()
    start += len(chunk)
  written.flush()
  del written
  report["stream_types"] = sorted({type(c).__name__ for c in chunks})
  report["stream_lengths"] = [len(c) for c in chunks]
  np.save(os.path.join(workdir, f"stream_{process_id}.npy"),
          np.concatenate(chunks))

  with open(os.path.join(workdir, f"report_{process_id}.json"), "w") as f:
    json.dump(report, f)
  jax.distributed.shutdown()


def _own_frames(mesh, start: int, count: int) -> np.ndarray:
  """The global frame numbers that this process's devices paste of a chunk
  of `count` frames starting at frame `start`: the chunk is split evenly
  over the mesh's devices, in mesh order."""
  import jax  # pylint: disable=import-outside-toplevel
  devices = list(mesh.devices.flat)
  per = count // len(devices)
  return np.asarray([start + k * per + j for k, d in enumerate(devices)
                     if d.process_index == jax.process_index()
                     for j in range(per)], np.int64)


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  try:
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
  except BaseException:  # pylint: disable=broad-except
    # out at once: a normal exit would wait in JAX's shutdown barrier for
    # a partner that may itself be waiting for us
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)  # pylint: disable=protected-access
