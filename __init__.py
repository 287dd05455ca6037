"""This repository as a ComfyUI node pack, for a clone in `custom_nodes/`.

ComfyUI-Manager's "install via git URL" clones a whole repository into
`ComfyUI/custom_nodes/` and loads its top folder's `__init__.py`: this file,
which exports the nodes of the pack folder `comfyui_segspaste_jax/` (see
docs/comfyui.rst). Nothing else imports it: the library is the
`segspaste_jax` package beside it.
"""

from . import comfyui_segspaste_jax as _pack

globals().update({name: getattr(_pack, name) for name in (
    "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint",
    "WEB_DIRECTORY") if hasattr(_pack, name)})
del _pack
