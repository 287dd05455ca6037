"""This repository as a ComfyUI node pack, for a clone in `custom_nodes/`.

ComfyUI-Manager's "install via git URL" clones a whole repository into
`ComfyUI/custom_nodes/` and loads its top folder's `__init__.py` (this
file) under a name made from the folder's path: this file then exports the
nodes of the pack folder `comfyui_segspaste_jax/`, whose `__init__.py` is
the one loader (see docs/comfyui.rst). ComfyUI has imported its own
`comfy` package by then; anything else that loads this file under another
name (pytest, collecting the repository as a package) gets an empty module.

Python's import system finds this file under the package's own name where a
clone named `segspaste_jax` sits in the current folder (or any folder on
`sys.path`), as when `python -m segspaste_jax ...` runs beside the clone.
The file then steps aside: it imports the library from everywhere else on
`sys.path` (the installed package), or, where it is installed nowhere, the
clone's own `segspaste_jax/` package, and that module takes its place, so
no folder named like the package shadows it.
"""

import os
import sys


def _library():
  """Puts the real `segspaste_jax` where this module stands in
  `sys.modules` (the import system hands out what stands there)."""
  import importlib  # pylint: disable=import-outside-toplevel

  here = os.path.dirname(os.path.abspath(__file__))
  beside = os.path.dirname(here)
  saved = sys.path[:]
  others = [p for p in saved if os.path.abspath(p or os.curdir) != beside]
  del sys.modules[__name__]
  try:
    try:
      sys.path[:] = others
      importlib.import_module("segspaste_jax")
    except ModuleNotFoundError as e:
      if e.name != "segspaste_jax":
        raise
      sys.path[:] = [here, *others]  # installed nowhere: the clone's own
      importlib.import_module("segspaste_jax")
  finally:
    sys.path[:] = saved


if __name__ == "segspaste_jax":
  _library()
elif "comfy" in sys.modules and __package__:
  from . import comfyui_segspaste_jax as _pack

  globals().update({name: getattr(_pack, name) for name in (
      "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS",
      "comfy_entrypoint", "WEB_DIRECTORY") if hasattr(_pack, name)})
  del _pack
