"""Frames sharded over 4 (simulated) devices give the single-device result.

XLA fixes the device count when JAX starts, so the checks run once in a
subprocess with `--xla_force_host_platform_device_count=4` and report back
as JSON; each test below reads its part.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

DEVICES = 4

SCRIPT = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
import jax, numpy as np
from segspaste_jax import (SEG, frames_mesh, pack_segs, segs_paste,
                           sharded_paste, stream_segs_paste)
from helpers import random_case


H, W, C = 24, 40, 3
results = {"devices": jax.device_count()}
mesh = frames_mesh()
rng = np.random.default_rng(0)


def layout(n, crop_frames, mask_frames):
  segs = []
  for k, (x1, y1) in enumerate([(-5, 3), (10, -4), (30, 14), (4, 6)]):
    h, w = 12 + k, 14 - k
    crop = rng.random((crop_frames, h, w, C), np.float32)
    mask = rng.random((mask_frames, h, w) if mask_frames else (h, w),
                      np.float32)
    segs.append(SEG(crop, mask, 0.5, (x1, y1, x1 + w, y1 + h),
                    (x1, y1, x1 + w, y1 + h), "face"))
  return (H, W), segs


def record(name, got, want):
  got_host = np.asarray(got)
  results[name] = {
      "max_abs": float(np.max(np.abs(got_host.astype(np.float64)
                                     - np.asarray(want, np.float64)))),
      "dtype_ok": got.dtype == np.asarray(want).dtype,
      "shape_ok": got.shape == np.asarray(want).shape,
      "spec": [str(axis) for axis in got.sharding.spec],
      "devices": len(got.sharding.device_set),
      "shards": sorted([s.index[0].start or 0, s.index[0].stop or got.shape[0]]
                       for s in got.addressable_shards),
  }


kw = dict(feather=3, alpha=200, bucket_size=32, max_segments=4)
for n, crop_frames, mask_frames in [(8, 8, 8), (6, 8, 0), (5, 1, 5),
                                    (4, 4, 1), (1, 3, 0)]:
  image = rng.random((n, H, W, C), np.float32)
  segs = layout(n, crop_frames, mask_frames)
  record(f"n{n}", segs_paste(image, segs, mesh=mesh, **kw),
         segs_paste(image, segs, **kw))

n = 5
image = rng.random((n, H, W, C), np.float32)
segs = layout(n, n, n)
for refs in (n, 1):
  ref = rng.random((refs, H, W, C), np.float32)
  record(f"ref{refs}", segs_paste(image, segs, ref_image_opt=ref, mesh=mesh,
                                  **kw),
         segs_paste(image, segs, ref_image_opt=ref, **kw))

# device-resident inputs, and a packed SEGS put on one device first
packed = jax.device_put(pack_segs(segs, image.shape, bucket_size=32))
record("device_inputs", sharded_paste(jax.device_put(image), packed,
                                      feather=3, alpha=200, mesh=mesh),
       segs_paste(image, segs, **kw))

# the relative mode and colour matching travel to every shard
for name, extra in (("relative", dict(feather_mode="relative", grow=4)),
                    ("color", dict(color_match="mkl", color_strength=0.7))):
  opts = dict(kw, **extra)
  record(name, sharded_paste(jax.device_put(image), packed, mesh=mesh,
                             **{k: v for k, v in opts.items()
                                if k not in ("bucket_size", "max_segments")}),
         segs_paste(image, segs, **opts))

as_bytes = (image * 255).round().astype(np.uint8)
record("uint8", segs_paste(as_bytes, segs, mesh=mesh, **kw),
       segs_paste(as_bytes, segs, **kw))

for seed in (15,):  # 15: with ref_image_opt
  case = random_case(seed)
  record(f"random{seed}", segs_paste(case.image, case.segs, mesh=mesh,
                                     **case.kwargs()),
         segs_paste(case.image, case.segs, **case.kwargs()))

# one SEGS per image (5 images: padded to 8), RGB crops into RGBA images,
# soft edges; and per-image SEGS split evenly (8 images)
for n in (5, 8):
  image4 = rng.random((n, H, W, 4), np.float32)
  per = [layout(1, 1, k % 2) for k in range(n)]
  soft = dict(kw, feather_mode="soft_edges")
  record(f"per_image{n}", segs_paste(image4, per, mesh=mesh, **soft),
         segs_paste(image4, per, **soft))

n = 10
image = rng.random((n, H, W, C), np.float32)
segs = layout(n, n, n)
chunks = list(stream_segs_paste(image, segs, chunk=4, progress=False,
                                mesh=mesh, **kw))
want = np.asarray(segs_paste(image, segs, **kw))
results["stream"] = {
    "max_abs": float(np.max(np.abs(np.concatenate(chunks) - want))),
    "lengths": [len(c) for c in chunks]}

try:
  segs_paste(image, segs, mesh=jax.make_mesh((DEVICES,), ("x",)), **kw)
except ValueError as e:
  results["bad_mesh"] = str(e)
print("RESULTS" + json.dumps(results))
""".replace("DEVICES", str(DEVICES))


@pytest.fixture(scope="module")
def results():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform"
                      f"_device_count={DEVICES}").strip()
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-c", SCRIPT,
                         os.path.dirname(__file__)],
                        capture_output=True, text=True, env=env, timeout=600,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  line = [t for t in proc.stdout.splitlines()
          if t.startswith("RESULTS")][-1]
  return json.loads(line[len("RESULTS"):])


def test_four_devices(results):
  assert results["devices"] == DEVICES


@pytest.mark.parametrize("name", ["n8", "n6", "n5", "n4", "n1", "ref5",
                                  "ref1", "device_inputs", "relative",
                                  "color", "random15", "per_image5",
                                  "per_image8"])
def test_matches_single_device(results, name):
  r = results[name]
  assert r["max_abs"] <= 1e-6, r
  assert r["dtype_ok"] and r["shape_ok"], r
  assert r["devices"] == DEVICES, r


@pytest.mark.parametrize("name,shards", [
    ("n8", [[0, 2], [2, 4], [4, 6], [6, 8]]),
    ("n4", [[0, 1], [1, 2], [2, 3], [3, 4]]),
    ("per_image8", [[0, 2], [2, 4], [4, 6], [6, 8]]),
])
def test_frames_split_across_devices(results, name, shards):
  """N a multiple of the device count: each device holds its own frames."""
  assert results[name]["spec"] == ["frames"]
  assert results[name]["shards"] == shards


@pytest.mark.parametrize("name", ["n6", "n5", "n1", "ref5"])
def test_uneven_frames_come_back_whole(results, name):
  """Padded to a multiple for the paste; the N-frame result is replicated."""
  assert results[name]["spec"] == []
  assert all(s == [0, int(name.strip("nref"))]
             for s in results[name]["shards"])


def test_uint8_sharded(results):
  r = results["uint8"]
  assert r["max_abs"] == 0 and r["dtype_ok"], r


def test_stream_on_a_mesh(results):
  assert results["stream"]["max_abs"] <= 1e-6
  assert results["stream"]["lengths"] == [4, 4, 2]


def test_mesh_without_frames_axis(results):
  assert "frames" in results["bad_mesh"]
