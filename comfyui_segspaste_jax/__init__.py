"""ComfyUI node pack: SEGSPaste (JAX), a drop-in for the Impact Pack's node.

The one loader of the nodes, on every install route: this folder copied or
linked into `ComfyUI/custom_nodes/`, a clone of the repository there (its
top `__init__.py` loads this file), or the folder that `segspaste-jax
comfyui install` writes (a copy of this file, the example workflows, and a
marker naming the checkout it came from, if any). It loads the nodes of
`segspaste_jax.comfy` (which sets the GPU-memory default before JAX
starts): from the installed package (`requirements.txt`), or, where that is
not installed, from the source checkout this folder sits in or came from.
With ComfyUI's V3 node API it exports `comfy_entrypoint`, otherwise the V1
`NODE_CLASS_MAPPINGS`; the node ids are the same either way.
"""

import importlib
import importlib.util
import pathlib
import sys

WEB_DIRECTORY = None  # no front-end code
_HERE = pathlib.Path(__file__).resolve().parent
# Written by `segspaste-jax comfyui install`: "segspaste_jax VERSION", then
# "source PATH" when it ran from a source checkout.
_MARKER = ".segspaste-jax-loader"


def _checkouts():
  """Source checkouts that may hold `segspaste_jax`: the one this folder
  sits in, and the one named in the install marker."""
  yield _HERE.parent
  marker = _HERE / _MARKER
  if marker.is_file():
    for line in marker.read_text(encoding="utf-8").splitlines():
      if line.startswith("source "):
        yield pathlib.Path(line[len("source "):])


def _from_checkout():
  """`segspaste_jax` from a checkout (`_checkouts`), or None."""
  for root in _checkouts():
    init = root / "segspaste_jax" / "__init__.py"
    if not init.is_file():
      continue
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
  return None


def _nodes():
  try:
    return importlib.import_module("segspaste_jax.comfy")
  except ModuleNotFoundError as e:
    if e.name != "segspaste_jax" or _from_checkout() is None:
      raise ImportError(
          f"SEGSPaste (JAX): {e}. Install segspaste-jax into the Python that "
          f"runs ComfyUI ({sys.executable} -m pip install -r "
          f"{_HERE / 'requirements.txt'}, or pip install a segspaste_jax "
          "checkout)") from e
    return importlib.import_module("segspaste_jax.comfy")


_module = _nodes()
if not hasattr(_module, "pack_exports"):
  raise ImportError(
      "SEGSPaste (JAX): the installed segspaste_jax "
      f"{getattr(sys.modules.get('segspaste_jax'), '__version__', '?')} is "
      "older than this node pack; upgrade it in ComfyUI's Python")
globals().update(_module.pack_exports())
del _module
