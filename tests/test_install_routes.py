"""Both install routes, from anywhere: pip install + `segspaste-jax comfyui
install`, and a clone in `custom_nodes/`.

A clone named `segspaste_jax` beside the current folder must not shadow the
installed package (`python -m segspaste_jax ...` runs the library); one
loader serves every route (the install command copies the pack's own); one
module sets the GPU-memory default; and ComfyUI's template browser finds
the example workflows on both routes (ComfyUI lists `custom_nodes/*/
*example*/*.json` and `*/*workflow*/*.json`, and serves those folders of
each loaded node folder).
"""

import glob
import os
import pathlib
import shutil
import subprocess
import sys

import segspaste_jax
from segspaste_jax import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACK = ROOT / "comfyui_segspaste_jax"
WORKFLOWS = sorted(p.stem for p in (PACK / "example_workflows").glob("*.json"))
# as if segspaste_jax were installed nowhere: no folder on sys.path holds it
# but the current one (the clone's)
HIDE = ("import pathlib, sys\nsys.path[:] = [p for p in sys.path if not p or "
        "not (pathlib.Path(p) / 'segspaste_jax').is_dir()]\n")


def _run(args, cwd, library=True):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  if library:
    env["PYTHONPATH"] = str(ROOT)
  proc = subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, timeout=300, check=False, env=env,
                        cwd=str(cwd))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def _fake_clone(folder):
  """A clone named segspaste_jax whose library says "clone": the real
  repository's top __init__.py over a stand-in package."""
  clone = folder / "segspaste_jax"
  (clone / "segspaste_jax").mkdir(parents=True)
  shutil.copy(ROOT / "__init__.py", clone / "__init__.py")
  (clone / "segspaste_jax" / "__init__.py").write_text(
      '__version__ = "clone"\n', encoding="utf-8")
  return clone


def test_a_clone_beside_does_not_shadow_the_installed_package(tmp_path):
  _fake_clone(tmp_path)
  out = _run(["-m", "segspaste_jax", "--version"], tmp_path)
  assert out.split() == ["segspaste-jax", segspaste_jax.__version__]
  out = _run(["-c", "import segspaste_jax; print(segspaste_jax.__file__)"],
             tmp_path)
  assert out.strip() == str(ROOT / "segspaste_jax" / "__init__.py")


def test_a_clone_installed_nowhere_else_is_the_library(tmp_path):
  _fake_clone(tmp_path)
  out = _run(["-c", HIDE + "import segspaste_jax; "
              "print(segspaste_jax.__version__)"], tmp_path, library=False)
  assert out.strip() == "clone"


def test_install_command_beside_a_clone(tmp_path):
  """The README's command, run in the folder that holds the clone."""
  (tmp_path / "segspaste_jax").symlink_to(ROOT, target_is_directory=True)
  comfyui = tmp_path / "ComfyUI"
  (comfyui / "custom_nodes").mkdir(parents=True)
  (comfyui / "main.py").write_text("", encoding="utf-8")
  out = _run(["-m", "segspaste_jax", "comfyui", "install", "ComfyUI"],
             tmp_path)
  assert "restart ComfyUI" in out
  loader = comfyui / "custom_nodes" / cli.LOADER_NAME
  # one loader: the pack's own, copied
  assert (loader / "__init__.py").read_bytes() == (
      PACK / "__init__.py").read_bytes()
  marker = (loader / cli.LOADER_MARKER).read_text(encoding="utf-8")
  assert marker.splitlines() == [f"segspaste_jax {segspaste_jax.__version__}",
                                 f"source {ROOT}"]


def _templates(custom_nodes):
  """What ComfyUI's /workflow_templates lists: folder -> workflow names."""
  listed = {}
  for pattern in ("*/*example*/*.json", "*/*workflow*/*.json"):
    for path in glob.glob(os.path.join(custom_nodes, pattern)):
      folder = os.path.basename(os.path.dirname(os.path.dirname(path)))
      listed.setdefault(folder, set()).add(pathlib.Path(path).stem)
  return {k: sorted(v) for k, v in listed.items()}


def test_template_browser_finds_the_workflows_on_both_routes(tmp_path,
                                                             capsys):
  nodes = tmp_path / "ComfyUI" / "custom_nodes"
  nodes.mkdir(parents=True)
  (nodes.parent / "main.py").write_text("", encoding="utf-8")
  (nodes / "segspaste-jax").symlink_to(ROOT, target_is_directory=True)
  assert cli.main(["comfyui", "install", str(nodes.parent)]) == 0
  capsys.readouterr()
  assert _templates(nodes) == {"segspaste-jax": WORKFLOWS,
                               cli.LOADER_NAME: WORKFLOWS}
  assert len(WORKFLOWS) == 3


def test_one_module_sets_the_gpu_memory_default():
  sources = [*ROOT.glob("segspaste_jax/**/*.py"), *PACK.glob("*.py"),
             ROOT / "__init__.py"]
  setting = [p.relative_to(ROOT).as_posix() for p in sources
             if "XLA_PYTHON_CLIENT_PREALLOCATE" in p.read_text("utf-8")]
  assert setting == ["segspaste_jax/comfy.py"]
