"""This repository as a ComfyUI node pack, for a clone in `custom_nodes/`.

ComfyUI-Manager's "install via git URL" clones a whole repository into
`ComfyUI/custom_nodes/` and loads its top folder's `__init__.py`: this file,
which then exports the nodes of the pack folder `comfyui_segspaste_jax/`
(see docs/comfyui.rst). ComfyUI has imported its own `comfy` package by
then; anything else that imports this file (pytest, collecting the
repository as a package) gets an empty module. The library is the
`segspaste_jax` package beside it.
"""

import sys

if "comfy" in sys.modules and __package__:
  from . import comfyui_segspaste_jax as _pack

  globals().update({name: getattr(_pack, name) for name in (
      "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS",
      "comfy_entrypoint", "WEB_DIRECTORY") if hasattr(_pack, name)})
  del _pack
