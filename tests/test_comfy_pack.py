"""The ComfyUI node pack folder, `segspaste-jax comfyui install`, the example
workflows, and the GPU memory setting, as ComfyUI meets them.

ComfyUI loads a custom node folder by executing its `__init__.py` under a
module name made from the folder's path (`importlib.util.
spec_from_file_location`), then reads `NODE_CLASS_MAPPINGS` (V1) or, where
there is none, calls `comfy_entrypoint` (V3). The subprocesses below do the
same, in fresh interpreters.
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import comfy_stand_in
import pytest

import segspaste_jax
from segspaste_jax import cli, comfy

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML")

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACK = ROOT / "comfyui_segspaste_jax"
WORKFLOWS = sorted((PACK / "example_workflows").glob("*.json"))

# Loads a custom-node folder as ComfyUI does; prints what it exports.
LOAD = """
import asyncio, importlib.util, json, os, sys
folder = sys.argv[1]
name = folder.replace(".", "_x_")
spec = importlib.util.spec_from_file_location(
    name, os.path.join(folder, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
if hasattr(module, "NODE_CLASS_MAPPINGS"):
  nodes = sorted(module.NODE_CLASS_MAPPINGS)
  form = "v1"
else:
  extension = asyncio.run(module.comfy_entrypoint())
  nodes = sorted(n.define_schema().node_id
                 for n in asyncio.run(extension.get_node_list()))
  form = "v3"
print(json.dumps({"form": form, "nodes": nodes,
                  "library": sys.modules["segspaste_jax"].__file__,
                  "prealloc": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE")}))
"""
NODES = ["SEGSPasteJAX", "SEGSPasteJAXPerImage"]


def _load(folder, *, path=(), hide_installed=False, env=None, cwd=None,
          comfy_loaded=False):
  """Runs LOAD on `folder` in a fresh interpreter; returns its JSON.
  `comfy_loaded`: a stand-in for ComfyUI's own `comfy` package, which
  ComfyUI imports before it loads custom nodes."""
  prelude = "import sys\n"
  if comfy_loaded:
    prelude += ("import types\n"
                "sys.modules['comfy'] = types.ModuleType('comfy')\n")
  for p in path:
    prelude += f"sys.path.insert(0, {str(p)!r})\n"
  if hide_installed:  # as if segspaste_jax were not installed: no finder
    # finds it (an editable install also leaves a folder of that name in
    # site-packages, which must stay on the path for jax and numpy)
    prelude += (
        "class _NotInstalled:\n"
        "  def find_spec(self, name, path=None, target=None):\n"
        "    if name == 'segspaste_jax':\n"
        "      raise ModuleNotFoundError(\"No module named 'segspaste_jax'\",\n"
        "                                name=name)\n"
        "sys.meta_path.insert(0, _NotInstalled())\n")
  environment = {k: v for k, v in os.environ.items()
                 if k not in ("PYTHONPATH", "XLA_PYTHON_CLIENT_PREALLOCATE")}
  environment.update(env or {})
  if not hide_installed:
    environment["PYTHONPATH"] = str(ROOT)
  proc = subprocess.run(
      [sys.executable, "-c", prelude + LOAD, str(folder)],
      capture_output=True, text=True, timeout=300, check=False,
      env=environment, cwd=cwd or "/")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_pack_loads_v1_without_comfy_api():
  got = _load(PACK)
  assert got["form"] == "v1" and got["nodes"] == NODES
  assert got["library"] == str(ROOT / "segspaste_jax" / "__init__.py")
  assert got["prealloc"] == "false"


@pytest.mark.slow
def test_pack_loads_v3_with_comfy_api(tmp_path):
  comfy_stand_in.install(tmp_path)
  got = _load(PACK, path=[tmp_path])
  assert got["form"] == "v3" and got["nodes"] == NODES


@pytest.mark.slow
def test_pack_loads_from_its_checkout_when_not_installed(tmp_path):
  """A copy of the repository (or a link to its pack folder) works without
  installing the library: the pack imports the checkout beside it."""
  linked = tmp_path / "custom_nodes" / "comfyui_segspaste_jax"
  linked.parent.mkdir()
  linked.symlink_to(PACK, target_is_directory=True)
  got = _load(linked, hide_installed=True, cwd=str(tmp_path))
  assert got["nodes"] == NODES
  assert got["library"] == str(ROOT / "segspaste_jax" / "__init__.py")


@pytest.mark.slow
def test_repository_cloned_into_custom_nodes_loads_as_a_pack(tmp_path):
  """ComfyUI-Manager's install by git URL: the whole repository in
  `custom_nodes/`, loaded by its top `__init__.py`, gives the pack's nodes
  from the checkout (no library installed)."""
  clone = tmp_path / "custom_nodes" / "segspaste-jax-clone"
  clone.parent.mkdir()
  clone.symlink_to(ROOT, target_is_directory=True)
  got = _load(clone, hide_installed=True, cwd=str(tmp_path),
              comfy_loaded=True)
  assert got["form"] == "v1" and got["nodes"] == NODES
  assert got["library"] == str(ROOT / "segspaste_jax" / "__init__.py")
  assert got["prealloc"] == "false"


def test_repository_top_imports_as_nothing_outside_comfyui():
  """Imported by anything but ComfyUI (pytest collects the repository as a
  package, under any folder name), the top `__init__.py` does nothing."""
  for name in ("repository_top", "__init__"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not hasattr(module, "NODE_CLASS_MAPPINGS")


def test_a_clone_installs_the_library_from_itself():
  """ComfyUI-Manager runs `pip install LINE` for each line of the clone's
  requirements.txt, in the clone: the one line installs the checkout."""
  lines = [line.strip() for line in (ROOT / "requirements.txt").read_text()
           .splitlines() if line.strip() and not line.startswith("#")]
  assert lines == ["."]
  root = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert root["project"]["name"] == "segspaste-jax"


@pytest.mark.slow
def test_pack_copied_alone_without_library_says_what_to_do(tmp_path):
  copy = tmp_path / "custom_nodes" / "comfyui_segspaste_jax"
  copy.mkdir(parents=True)
  (copy / "__init__.py").write_bytes((PACK / "__init__.py").read_bytes())
  code = ("import sys, pathlib\nsys.path[:] = [p for p in sys.path if not "
          "(pathlib.Path(p or '.') / 'segspaste_jax').is_dir()]\n" + LOAD)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  proc = subprocess.run([sys.executable, "-c", code, str(copy)],
                        capture_output=True, text=True, timeout=300,
                        check=False, env=env, cwd=str(tmp_path))
  assert proc.returncode != 0
  assert "ImportError: SEGSPaste (JAX)" in proc.stderr
  assert "pip install" in proc.stderr


# ----------------------------------------------------------------------------
# The GPU memory setting, in fresh interpreters.

CHECK_PREALLOC = """
import os, sys
import {module}
print(os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"))
import jax
try:
  jax.devices()
except RuntimeError:
  print("no backend had started")
"""


@pytest.mark.slow
@pytest.mark.parametrize("module", ["segspaste_jax.comfy",
                                    "comfyui_segspaste_jax"])
@pytest.mark.parametrize("user", [None, "true"])
def test_preallocation_off_before_any_backend(module, user):
  """Importing the node module sets XLA_PYTHON_CLIENT_PREALLOCATE=false
  (a value the user set stays) and starts no JAX backend: with
  JAX_PLATFORMS naming no real platform, starting one would fail the
  import; the later jax.devices() shows that it would."""
  env = {k: v for k, v in os.environ.items()
         if k != "XLA_PYTHON_CLIENT_PREALLOCATE"}
  env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="no_such_platform")
  if user is not None:
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = user
  proc = subprocess.run(
      [sys.executable, "-c", CHECK_PREALLOC.format(module=module)],
      capture_output=True, text=True, timeout=300, check=False, env=env,
      cwd=str(ROOT))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == [user or "false", "no", "backend", "had",
                                 "started"]


# ----------------------------------------------------------------------------
# Registry metadata and requirements.

def test_registry_metadata():
  meta = tomllib.loads((PACK / "pyproject.toml").read_text(encoding="utf-8"))
  project, tool = meta["project"], meta["tool"]["comfy"]
  assert project["version"] == segspaste_jax.__version__
  assert project["name"] and project["description"]
  assert "Repository" in project["urls"]
  for key in ("PublisherId", "DisplayName", "Icon", "includes"):
    assert key in tool
  assert tool["DisplayName"] == "SEGSPaste (JAX)"
  assert project["dependencies"] == [
      f"segspaste-jax>={segspaste_jax.__version__}"]


def test_requirements_install_this_library():
  lines = [line.strip() for line in
           (PACK / "requirements.txt").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]
  assert lines == [f"segspaste-jax>={segspaste_jax.__version__}"]
  root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
  assert root["project"]["name"] == "segspaste-jax"


# ----------------------------------------------------------------------------
# `segspaste-jax comfyui install`.

def _comfyui(tmp_path):
  root = tmp_path / "ComfyUI"
  (root / "custom_nodes").mkdir(parents=True)
  (root / "main.py").write_text("", encoding="utf-8")
  return root


@pytest.mark.slow
def test_install_writes_a_loader_that_comfyui_loads(tmp_path, capsys):
  root = _comfyui(tmp_path)
  assert cli.main(["comfyui", "install", str(root)]) == 0
  target = root / "custom_nodes" / cli.LOADER_NAME
  out = capsys.readouterr().out
  assert f"wrote {target}" in out and "restart ComfyUI" in out
  assert (target / cli.LOADER_MARKER).is_file()
  assert sorted(p.name for p in (target / "example_workflows").iterdir()) == [
      p.name for p in WORKFLOWS]
  got = _load(target)
  assert got["form"] == "v1" and got["nodes"] == NODES
  assert got["prealloc"] == "false"
  # from a checkout, the loader also works where the library is missing
  got = _load(target, hide_installed=True, cwd=str(tmp_path))
  assert got["nodes"] == NODES
  # again: an update of its own folder
  assert cli.main(["comfyui", "install", str(root)]) == 0
  assert f"updated {target}" in capsys.readouterr().out


def _error(capsys, argv):
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("segspaste-jax: error: ") and err.count("\n") == 1
  return err


def test_install_never_replaces_what_it_did_not_write(tmp_path, capsys):
  root = _comfyui(tmp_path)
  target = root / "custom_nodes" / cli.LOADER_NAME
  target.mkdir()
  (target / "__init__.py").write_text("# mine\n", encoding="utf-8")
  err = _error(capsys, ["comfyui", "install", str(root)])
  assert "was not written by segspaste-jax" in err
  assert (target / "__init__.py").read_text(encoding="utf-8") == "# mine\n"
  target.rename(tmp_path / "moved")
  target.symlink_to(tmp_path / "moved", target_is_directory=True)
  err = _error(capsys, ["comfyui", "install", str(root)])
  assert "is not a folder written by segspaste-jax" in err
  target.unlink()
  target.write_text("", encoding="utf-8")
  assert "remove it" in _error(capsys, ["comfyui", "install", str(root)])


def test_install_wrong_folders(tmp_path, capsys):
  root = _comfyui(tmp_path)
  err = _error(capsys, ["comfyui", "install", str(tmp_path / "nope")])
  assert "no such folder" in err
  err = _error(capsys, ["comfyui", "install", str(tmp_path)])
  assert "is not a ComfyUI folder" in err and str(root) in err
  err = _error(capsys, ["comfyui", "install", str(root / "custom_nodes")])
  assert "above it" in err
  (tmp_path / "empty").mkdir()
  err = _error(capsys, ["comfyui", "install", str(tmp_path / "empty")])
  assert "has no main.py and custom_nodes/" in err
  assert "required" in _error(capsys, ["comfyui"])
  assert not list((root / "custom_nodes").iterdir())


# ----------------------------------------------------------------------------
# Example workflows (ComfyUI's UI format).

def _widget_inputs(types):
  """Widget inputs in order (what `widgets_values` holds), and sockets."""
  widgets, sockets = [], []
  for group in ("required", "optional"):
    for name, (kind, options) in types.get(group, {}).items():
      if isinstance(kind, list) or kind in ("INT", "FLOAT", "BOOLEAN",
                                            "STRING"):
        widgets.append((name, kind, options))
      else:
        sockets.append((name, kind))
  return widgets, sockets


def test_example_workflows_match_the_nodes():
  assert [p.name for p in WORKFLOWS] == [
      "segspaste_jax_drop_in.json", "segspaste_jax_per_image.json",
      "segspaste_jax_soft_edges.json"]
  seen = set()
  for path in WORKFLOWS:
    workflow = json.loads(path.read_text(encoding="utf-8"))
    nodes = {n["id"]: n for n in workflow["nodes"]}
    assert len(nodes) == len(workflow["nodes"])
    assert workflow["last_node_id"] == max(nodes)
    assert workflow["last_link_id"] == max(k[0] for k in workflow["links"])
    for link_id, src, src_slot, dst, dst_slot, kind in workflow["links"]:
      out = nodes[src]["outputs"][src_slot]
      into = nodes[dst]["inputs"][dst_slot]
      assert link_id in out["links"] and into["link"] == link_id
      assert out["type"] == into["type"] == kind
    for node in workflow["nodes"]:
      cls = comfy.NODE_CLASS_MAPPINGS.get(node["type"])
      if cls is None:
        continue
      seen.add(node["type"])
      widgets, sockets = _widget_inputs(cls.INPUT_TYPES())
      assert [(i["name"], i["type"]) for i in node["inputs"]] == sockets
      values = node["widgets_values"]
      assert len(values) == len(widgets), (path.name, node["id"])
      for value, (name, kind, options) in zip(values, widgets):
        if isinstance(kind, list):
          assert value in kind, name
        elif kind == "BOOLEAN":
          assert isinstance(value, bool), name
        else:
          number = float if kind == "FLOAT" else int
          assert isinstance(value, number) and not isinstance(value, bool)
          assert options["min"] <= value <= options["max"], name
      assert [o["type"] for o in node["outputs"]] == list(cls.RETURN_TYPES)
  assert seen == set(NODES)


def test_drop_in_workflow_uses_the_defaults_beside_the_impact_node():
  workflow = json.loads((PACK / "example_workflows" /
                         "segspaste_jax_drop_in.json").read_text("utf-8"))
  by_type = {}
  for node in workflow["nodes"]:
    by_type.setdefault(node["type"], []).append(node)
  widgets, _ = _widget_inputs(comfy.SEGSPasteJAX.INPUT_TYPES())
  defaults = [options["default"] for _, _, options in widgets]
  (ours,), (theirs,) = by_type["SEGSPasteJAX"], by_type["SEGSPaste"]
  assert ours["widgets_values"] == defaults
  assert theirs["widgets_values"] == defaults[:2]  # feather, alpha
  # the same three wires into both
  assert ([i["link"] is not None for i in ours["inputs"]]
          == [True, True, True])
  sources = {k[0]: (k[1], k[2]) for k in workflow["links"]}
  assert ([sources[i["link"]] for i in ours["inputs"]]
          == [sources[i["link"]] for i in theirs["inputs"]])


def test_soft_edges_workflow_compares_the_modes():
  workflow = json.loads((PACK / "example_workflows" /
                         "segspaste_jax_soft_edges.json").read_text("utf-8"))
  modes = sorted(n["widgets_values"][3] for n in workflow["nodes"]
                 if n["type"] == "SEGSPasteJAX")
  assert modes == ["node", "soft_edges"]
