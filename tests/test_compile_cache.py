"""The CLI and the ComfyUI node keep compiled programs across processes; the
library itself changes no JAX setting."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

SCRIPT = r"""
import json, sys
import jax, jax.monitoring, numpy as np
hits = []
jax.monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if "cache_hits" in name else None)
import segspaste_jax
from segspaste_jax.sample import load_sample_image, sample_segs
before = jax.config.jax_compilation_cache_dir
if sys.argv[1] == "cli":
  from segspaste_jax._src import compile_cache
  compile_cache.enable()
elif sys.argv[1] == "node":
  pytest_torch = __import__("torch")
  from segspaste_jax.comfy import SEGSPasteJAX
image = load_sample_image(64)
segs = sample_segs(image)
if sys.argv[1] == "node":
  SEGSPasteJAX().doit(pytest_torch.from_numpy(image), segs, 4, 255)
else:
  segspaste_jax.segs_paste(image, segs, feather=4).block_until_ready()
print("RESULT" + json.dumps({"before": before, "hits": len(hits),
                             "dir": jax.config.jax_compilation_cache_dir}))
"""


def _run(tmp_path, mode, **env):
  environ = {k: v for k, v in os.environ.items()
             if k not in ("JAX_COMPILATION_CACHE_DIR",
                          "SEGSPASTE_JAX_COMPILE_CACHE")}
  environ.update(XDG_CACHE_HOME=str(tmp_path / "cache"),
                 HOME=str(tmp_path / "home"), JAX_PLATFORMS="cpu", **env)
  proc = subprocess.run([sys.executable, "-c", SCRIPT, mode],
                        capture_output=True, text=True, env=environ,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [t for t in proc.stdout.splitlines() if t.startswith("RESULT")][-1]
  return json.loads(line[len("RESULT"):])


def test_library_changes_no_jax_setting(tmp_path):
  result = _run(tmp_path, "library")
  assert result["before"] is None and result["dir"] is None
  assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("mode", ["cli", "node"])
def test_second_process_loads_from_the_cache(tmp_path, mode):
  if mode == "node":
    pytest.importorskip("torch")
  first = _run(tmp_path, mode)
  where = tmp_path / "cache" / "segspaste_jax" / "xla"
  assert first["dir"] == str(where) and first["hits"] == 0
  assert any(where.iterdir())  # sub-second compiles are kept too
  second = _run(tmp_path, mode)
  assert second["hits"] >= 1


def test_cache_can_be_moved_or_turned_off(tmp_path):
  moved = tmp_path / "elsewhere"
  assert _run(tmp_path, "cli",
              SEGSPASTE_JAX_COMPILE_CACHE=str(moved))["dir"] == str(moved)
  assert any(moved.iterdir())
  assert _run(tmp_path, "cli", SEGSPASTE_JAX_COMPILE_CACHE="off")["dir"] is None


def test_a_cache_the_user_configured_wins(tmp_path):
  mine = tmp_path / "mine"
  result = _run(tmp_path, "cli", JAX_COMPILATION_CACHE_DIR=str(mine))
  assert result["dir"] == str(mine)
  assert not (tmp_path / "cache" / "segspaste_jax").exists()
