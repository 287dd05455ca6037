"""ComfyUI node pack: SEGSPaste (JAX), a drop-in for the Impact Pack's node.

Copy or link this folder into `ComfyUI/custom_nodes/` (or let
`segspaste-jax comfyui install` write a loader there). It loads the nodes of
`segspaste_jax.comfy`: from the installed package (`requirements.txt`), or,
where that is not installed, from the source checkout this folder sits in.
With ComfyUI's V3 node API it exports `comfy_entrypoint`, otherwise the V1
`NODE_CLASS_MAPPINGS`; the node ids are the same either way.
"""

import os

# Before JAX starts any backend (see segspaste_jax.comfy): leave the GPU's
# memory to ComfyUI unless the user chose otherwise.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# pylint: disable=wrong-import-position
import importlib
import importlib.util
import pathlib
import sys

WEB_DIRECTORY = None  # no front-end code


def _from_checkout():
  """`segspaste_jax` from the checkout holding this folder, or None."""
  root = pathlib.Path(__file__).resolve().parent.parent
  init = root / "segspaste_jax" / "__init__.py"
  if not init.is_file():
    return None
  spec = importlib.util.spec_from_file_location(
      "segspaste_jax", init, submodule_search_locations=[str(init.parent)])
  module = importlib.util.module_from_spec(spec)
  sys.modules["segspaste_jax"] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules["segspaste_jax"]
    raise
  return module


def _nodes():
  try:
    return importlib.import_module("segspaste_jax.comfy")
  except ModuleNotFoundError as e:
    if e.name != "segspaste_jax" or _from_checkout() is None:
      raise ImportError(
          f"SEGSPaste (JAX): {e}. Install segspaste-jax into the Python "
          f"that runs ComfyUI ({sys.executable} -m pip install -r "
          f"{pathlib.Path(__file__).parent / 'requirements.txt'}, or pip "
          "install a segspaste_jax checkout)") from e
    return importlib.import_module("segspaste_jax.comfy")


_module = _nodes()
if not hasattr(_module, "pack_exports"):
  raise ImportError(
      "SEGSPaste (JAX): the installed segspaste_jax "
      f"{getattr(sys.modules.get('segspaste_jax'), '__version__', '?')} is "
      "older than this node pack; upgrade it in ComfyUI's Python")
globals().update(_module.pack_exports())
del _module
