"""Two JAX processes, for real: `segs_paste(mesh=)` and `stream_segs_paste`
over a mesh that spans both give the single-process picture.

The parent writes seeded frames to an `.npy` file and starts two processes
(`_multiprocess_child.py`) that join one cluster through
`jax.distributed.initialize` on a loopback coordinator, each with two
forced host devices (`--xla_force_host_platform_device_count=2`) and gloo
CPU collectives: one mesh of four devices over two processes. Each opens
the frames as a memmap and writes only the frames it holds into shared
output files; the parent checks that together they are exactly its own
one-device `segs_paste`.
"""

import json
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import _multiprocess_child as child
from segspaste_jax import segs_paste

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 120  # both children, start to finish (about 10 s when idle)


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_children(workdir: str, meanwhile) -> tuple[list[dict], object]:
  """Runs both processes to the end, calling `meanwhile()` while they run:
  their reports and what `meanwhile` returned. Fails (with their output)
  if either fails or the pair outlives `TIMEOUT_S`; kills both on any way
  out."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      " --xla_force_host_platform_device_count=2").strip()
  env["JAX_PLATFORMS"] = "cpu"
  env.pop("JAX_NUM_CPU_DEVICES", None)
  port = _free_port()
  procs, logs = [], []
  try:
    for pid in range(2):
      log = open(os.path.join(workdir, f"stderr_{pid}.txt"), "w+")
      logs.append(log)
      procs.append(subprocess.Popen(
          [sys.executable, os.path.join(HERE, "_multiprocess_child.py"),
           str(port), str(pid), workdir],
          env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT_S
    result = meanwhile()
    while True:
      codes = [p.poll() for p in procs]  # every one, each time
      if None not in codes or time.monotonic() > deadline:
        break
      if any(code not in (None, 0) for code in codes):
        break  # one failed: its partner may wait for it forever
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
    for p in procs:
      p.wait()
  output = []
  for pid, log in enumerate(logs):
    log.seek(0)
    output.append(f"--- process {pid} (exit {procs[pid].returncode}) ---\n"
                  + log.read()[-6000:])
    log.close()
  codes = [p.returncode for p in procs]
  if child.SKIP_EXIT in codes:
    pytest.skip("this jax has no CPU multi-process collectives:\n"
                + "\n".join(output))
  assert codes == [0, 0], (
      f"the two processes failed (exit codes {codes}; killed if past "
      f"{TIMEOUT_S} s or once the other failed):\n" + "\n".join(output))
  reports = []
  for pid in range(2):
    with open(os.path.join(workdir, f"report_{pid}.json")) as f:
      reports.append(json.load(f))
  return reports, result


def _blank(path: str, shape):
  """An `.npy` of NaN: frames nobody writes stay NaN and fail the check."""
  out = np.lib.format.open_memmap(path, "w+", np.float32, shape)
  out[...] = np.nan
  out.flush()
  del out


def test_two_processes_write_the_one_process_picture(tmp_path):
  workdir = str(tmp_path)
  shape = (child.N, child.H, child.W, child.C)
  rng = np.random.default_rng(2024)
  frames = rng.random(shape, np.float32)
  np.save(os.path.join(workdir, "frames.npy"), frames)
  for name in ("paste", "stream"):
    _blank(os.path.join(workdir, f"{name}.npy"), shape)

  kw = dict(feather=child.FEATHER, alpha=child.ALPHA)
  # the one-process, one-device picture, computed while the children run,
  # on the CPU as they are (an accelerator's form may differ in the bits)
  cpu = jax.devices("cpu")[0]
  reports, want = _run_children(workdir, lambda: np.asarray(segs_paste(
      jax.device_put(frames, cpu), child.make_segs(), **kw)))
  assert want.dtype == np.float32 and not np.isnan(want).any()
  # the paste changes the frames (else equality would prove little)
  assert np.abs(want - frames).max() > 0.1

  everything = list(range(child.N))
  for pid, report in enumerate(reports):
    assert report["process_index"] == pid
    assert (report["device_count"], report["local_device_count"]) == (4, 2)
    assert report["paste_spec"] == ["frames"]
    # two of the four devices: two frames each, read from the memmap and
    # written back by this process alone
    mine = sorted(report["paste_frames"])
    assert len(mine) == child.N // 2
    assert sorted(f for a, b in report["paste_reads"]
                  for f in range(a, b)) == mine
    assert report["stream_types"] == ["ndarray"]
    assert report["stream_lengths"] == [child.CHUNK] * (child.N // child.CHUNK)
    assert len(report["stream_frames"]) == child.N // 2
  for key in ("paste_frames", "stream_frames"):
    got = sorted(reports[0][key] + reports[1][key])
    assert got == everything, (key, reports[0][key], reports[1][key])

  # the union of what the two processes wrote is the one-device result
  for name in ("paste", "stream"):
    np.testing.assert_array_equal(
        np.load(os.path.join(workdir, f"{name}.npy")), want, err_msg=name)
  # every process got every stream chunk whole
  for pid in range(2):
    np.testing.assert_array_equal(
        np.load(os.path.join(workdir, f"stream_{pid}.npy")), want,
        err_msg=f"stream chunks of process {pid}")

