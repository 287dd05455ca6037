"""ComfyUI nodes that are drop-ins for the Impact Pack's `SEGSPaste`.

Same inputs, same output type, same picture. Two node ids, kept stable so
that saved workflows load unchanged:

- `SEGSPasteJAX`: an IMAGE batch and one SEGS, as `SEGSPaste`.
- `SEGSPasteJAXPerImage`: a list of images of one size and a list of SEGS,
  one per image (ComfyUI's list inputs), as `SEGSPaste` mapped over the
  list, joined into one IMAGE batch.

This module holds the nodes and their schema; both nodes paste through
`segspaste_jax._src.node_paste` (`paste_batch`: a chunk of frames at a
time through `stream_segs_paste`, with ComfyUI's progress bar and cancel;
the result equals the one-shot `segs_paste` bit for bit).

Inside ComfyUI, with its V3 node API (`comfy_api.v0_0_2`, which ComfyUI
marks unstable and which re-exports its latest V3 schema) importable, the
nodes are declared with the V3 schema (`comfy_entrypoint`); otherwise with
the V1 mappings (`NODE_CLASS_MAPPINGS`). Both forms, the nodes' defaults
and their docs come from one table of inputs (`_INPUTS`), with a tooltip
on every input and a description on each node.

Importing this module sets `XLA_PYTHON_CLIENT_PREALLOCATE=false` unless the
user set it (the one place that does), so that JAX with CUDA in ComfyUI's
Python does not take 75% of the GPU's memory when its first backend starts.
The node pack's loader (`comfyui_segspaste_jax/__init__.py`, on every
install route) loads this module; see docs/comfyui.rst. torch is imported
only when a node runs.
"""

from __future__ import annotations

import os

# Before any JAX backend starts (importing jax starts none): JAX's GPU
# client reads this when it is created; ComfyUI's models need the memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# pylint: disable=wrong-import-position
from typing import Any, NamedTuple

from segspaste_jax._src import node_paste, validate

# What the nodes run, a chunk at a time (`segspaste_jax._src.node_paste`);
# the per-image node's list goes the same way as `segs_paste`'s list form.
Hooks = node_paste.Hooks
chunk_frames = node_paste.chunk_frames
comfyui_hooks = node_paste.comfyui_hooks
paste_batch = node_paste.paste_batch
paste_per_image = node_paste.paste_batch

# The V3 node API module these nodes import. In ComfyUI, `comfy_api.v0_0_2`
# re-exports `comfy_api.latest`'s `io` and `ComfyExtension` and is marked
# unstable (`STABLE = False`): the nodes track ComfyUI's latest V3 schema,
# not a frozen one (docs/comfyui.rst, "Which node API").
COMFY_API_VERSION = "v0_0_2"
_CATEGORY = "ImpactPack/Detailer"


# ----------------------------------------------------------------------------
# The inputs, once: the V1 `INPUT_TYPES` and the V3 schema are built from it.

class _In(NamedTuple):
  name: str
  kind: str  # "IMAGE", "SEGS", "INT", "FLOAT", "BOOLEAN" or "COMBO"
  tooltip: str
  optional: bool = False
  options: Any = None  # default, min, max, step; "choices" for a COMBO


_INPUTS = (
    _In("image", "IMAGE",
        "The images to paste the segments into (not changed)."),
    _In("segs", "SEGS",
        "The segments to paste back, usually from a detailer: each SEG's "
        "crop is blended in at its crop region through its feathered mask."),
    _In("feather", "INT",
        "Softness of the mask edges: a Gaussian blur of kernel "
        "2 x feather + 1 (sigma 10) on each mask; 0 keeps them hard. With "
        "feather_mode relative: the edge's width in per cent of the square "
        "root of the mask's area.",
        options={"default": 5, "min": 0, "max": 100, "step": 1}),
    _In("alpha", "INT",
        "Opacity of the pasted segments, from 0 (invisible) to 255 "
        "(opaque).",
        options={"default": 255, "min": 0, "max": 255, "step": 1}),
    _In("ref_image_opt", "IMAGE",
        "Optional images to take the pasted pixels from, cut at each SEG's "
        "crop region, instead of the SEGS' own crops.", optional=True),
    _In("node_axis_mixup", "BOOLEAN",
        "When the SEGS were detected at another aspect ratio: on places the "
        "crops as the Impact Pack does (its x/y mix-up when rescaling), off "
        "places them correctly. The same for a uniform rescale.",
        optional=True, options={"default": False}),
    _In("feather_mode", "COMBO",
        "node: the Impact Pack's feathering; soft_edges: the same, faded to "
        "0 at the crop's border, so no rectangular seam shows; relative: an "
        "edge sized to each mask (feather per cent of it), moved by grow, "
        "0 at the crop's border.",
        optional=True,
        options={"choices": validate.FEATHER_MODES, "default": "node"}),
    _In("rgba_mode", "COMBO",
        "How an RGBA crop's alpha lands on an RGBA image: composite (today's "
        "Impact Pack) or legacy (blended like a colour, as before 2025).",
        optional=True,
        options={"choices": validate.RGBA_MODES, "default": "composite"}),
    # new inputs go last: saved workflows hold widget values by position
    _In("grow", "INT",
        "With feather_mode relative: moves the soft edge's middle outward "
        "(positive) or inward (negative) off the mask's edge, in per cent "
        "of the square root of the mask's area. Must be 0 in the other "
        "modes.",
        optional=True,
        options={"default": 0, "min": -100, "max": 100, "step": 1}),
    _In("color_match", "COMBO",
        "Match each crop's colours to the pixels it replaces before pasting: "
        "none (the Impact Pack's picture), lowfreq (the frame's large-scale "
        "tone under the crop's detail), rct (mean and spread per CIELAB "
        "channel) or mkl (RGB mean and covariance).",
        optional=True,
        options={"choices": validate.COLOR_MATCHES, "default": "none"}),
    _In("color_strength", "FLOAT",
        "How far color_match moves the crop's colours: 0 not at all, 1 all "
        "the way.",
        optional=True,
        options={"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
)

_OUTPUT_TOOLTIP = ("The images with the segments pasted in (float32, on the "
                   "device of the input IMAGE).")

_DESCRIPTIONS = {
    "SEGSPasteJAX": (
        "Pastes SEGS (detailed crops and their masks) back into the images, "
        "as the Impact Pack's SEGSPaste does, with the same picture. A long "
        "batch is pasted a chunk at a time into one output, with progress "
        "and cancel."),
    "SEGSPasteJAXPerImage": (
        "Pastes a list of SEGS, one per image, into a list of images: image "
        "n takes SEGS n, as SEGSPaste run on that image alone would. One "
        "SEGS in the list is pasted into every image."),
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SEGSPasteJAX": "SEGSPaste (JAX)",
    "SEGSPasteJAXPerImage": "SEGSPaste (JAX, SEGS per image)",
}


def _v1_input_types() -> dict:
  """`INPUT_TYPES` in ComfyUI's V1 form, from `_INPUTS`."""
  types = {"required": {}, "optional": {}}
  for spec in _INPUTS:
    options = {k: v for k, v in (spec.options or {}).items()
               if k != "choices"}
    options["tooltip"] = spec.tooltip
    kind = (list(spec.options["choices"]) if spec.kind == "COMBO"
            else spec.kind)
    types["optional" if spec.optional else "required"][spec.name] = (
        kind, options)
  return types


def _inputs(args: tuple, kwargs: dict, as_list: bool = False) -> dict:
  """A node's inputs by name: those given (positional ones in `_INPUTS`
  order) and the rest at their `_INPUTS` default (a list of one in
  ComfyUI's list form; None where there is none)."""
  names = [spec.name for spec in _INPUTS]
  unknown = sorted(set(kwargs) - set(names))
  if len(args) > len(names) or unknown:
    raise TypeError(f"SEGSPaste (JAX): unexpected inputs {unknown or args}; "
                    f"expected {names}")
  given = {**dict(zip(names, args)), **kwargs}
  inputs = {}
  for spec in _INPUTS:
    default = (spec.options or {}).get("default")
    if as_list and spec.options:
      default = [default]
    inputs[spec.name] = given.get(spec.name, default)
  return inputs


# ----------------------------------------------------------------------------
# V1 nodes (any ComfyUI).

class _V1Node:
  """What both V1 nodes declare alike (ComfyUI reads class attributes)."""

  @classmethod
  def INPUT_TYPES(cls):  # pylint: disable=invalid-name
    return _v1_input_types()

  RETURN_TYPES = ("IMAGE",)
  OUTPUT_TOOLTIPS = (_OUTPUT_TOOLTIP,)
  FUNCTION = "doit"
  CATEGORY = _CATEGORY


class SEGSPasteJAX(_V1Node):
  """ComfyUI node (V1): pastes SEGS into an IMAGE batch, as `SEGSPaste`."""

  DESCRIPTION = _DESCRIPTIONS["SEGSPasteJAX"]

  def doit(self, *args, **kwargs):
    """Runs `paste_batch` on ComfyUI's tensors, with ComfyUI's progress bar
    and cancel.

    Takes the inputs of `INPUT_TYPES` by name (or in its order), each one
    left out at its default there: `image` (IMAGE, torch `[N, H, W, C]`
    float32 in [0, 1], not modified), `segs` (SEGS), `feather`, `alpha`,
    `ref_image_opt`, `node_axis_mixup`, `feather_mode`, `rgba_mode`,
    `grow`, `color_match`, `color_strength` (see `paste_batch`).

    Returns:
      1-tuple with the pasted IMAGE, a float32 torch `[N, H, W, C]` on the
      device `image` was on.
    """
    return (node_paste.run_batch(**_inputs(args, kwargs)),)


class SEGSPasteJAXPerImage(_V1Node):
  """ComfyUI node (V1): a list of images and a list of SEGS, one per image.

  ComfyUI hands a node with `INPUT_IS_LIST` every input as a list: here the
  images (batches, joined in order) and the SEGS (one per image, e.g. from a
  detector run on a list of images). Image `n` takes `segs[n]`, as
  `SEGSPaste` run on that image alone would paste it; no batch-to-list
  conversion is needed around it.
  """

  DESCRIPTION = _DESCRIPTIONS["SEGSPasteJAXPerImage"]
  INPUT_IS_LIST = True

  def doit(self, *args, **kwargs):
    """Pastes `segs[n]` into image `n` of the joined batch.

    Takes the inputs of `INPUT_TYPES`, each a list (ComfyUI's list form;
    one left out is at its default there): `image`, IMAGE batches
    `[N_k, H, W, C]` of one size (joined: N images); `segs`, N SEGS, or one
    SEGS for every image; `ref_image_opt`, optional IMAGE batches (joined);
    the options, lists of one value.

    Returns:
      1-tuple with the pasted IMAGE batch `[N, H, W, C]`.

    Raises:
      ValueError: the images (or references) of the list differ in size,
        naming each item's size.
    """
    return (node_paste.run_lists(**_inputs(args, kwargs, as_list=True)),)


NODE_CLASS_MAPPINGS = {"SEGSPasteJAX": SEGSPasteJAX,
                       "SEGSPasteJAXPerImage": SEGSPasteJAXPerImage}


# ----------------------------------------------------------------------------
# V3 nodes (ComfyUI with comfy_api.v0_0_2).

def load_schema_api():
  """`(ComfyExtension, io)` of ComfyUI's pinned V3 API, or None where
  `comfy_api.v0_0_2` does not import (outside ComfyUI, or an older one)."""
  try:
    # pylint: disable=import-outside-toplevel
    from comfy_api.v0_0_2 import ComfyExtension, io
  except (ImportError, AttributeError):
    return None
  return ComfyExtension, io


def _v3_input(io, spec: _In):
  common = {"optional": spec.optional, "tooltip": spec.tooltip}
  opts = spec.options
  if spec.kind == "IMAGE":
    return io.Image.Input(spec.name, **common)
  if spec.kind == "SEGS":
    return io.Custom("SEGS").Input(spec.name, **common)
  if spec.kind in ("INT", "FLOAT"):
    number = io.Int if spec.kind == "INT" else io.Float
    return number.Input(spec.name, default=opts["default"], min=opts["min"],
                        max=opts["max"], step=opts["step"], **common)
  if spec.kind == "BOOLEAN":
    return io.Boolean.Input(spec.name, default=opts["default"], **common)
  return io.Combo.Input(spec.name, options=list(opts["choices"]),
                        default=opts["default"], **common)


def v3_nodes(io) -> tuple[type, type]:
  """The two nodes as V3 classes (`io.ComfyNode`) of the API module `io`.

  Same node ids, display names, category, inputs (names, order, defaults,
  ranges) and output as the V1 nodes, so saved workflows load unchanged.
  """

  def schema(node_id, is_input_list=False):
    return io.Schema(
        node_id=node_id, display_name=NODE_DISPLAY_NAME_MAPPINGS[node_id],
        category=_CATEGORY, description=_DESCRIPTIONS[node_id],
        inputs=[_v3_input(io, spec) for spec in _INPUTS],
        outputs=[io.Image.Output(tooltip=_OUTPUT_TOOLTIP)],
        is_input_list=is_input_list)

  # pylint: disable=arguments-differ
  class SEGSPasteJAXV3(io.ComfyNode):
    """ComfyUI node (V3): pastes SEGS into an IMAGE batch."""

    @classmethod
    def define_schema(cls):
      return schema("SEGSPasteJAX")

    @classmethod
    def execute(cls, **kwargs):
      return io.NodeOutput(node_paste.run_batch(**_inputs((), kwargs)))

  class SEGSPasteJAXPerImageV3(io.ComfyNode):
    """ComfyUI node (V3): one SEGS per image, every input a list."""

    @classmethod
    def define_schema(cls):
      return schema("SEGSPasteJAXPerImage", is_input_list=True)

    @classmethod
    def execute(cls, **kwargs):
      return io.NodeOutput(node_paste.run_lists(
          **_inputs((), kwargs, as_list=True)))

  return SEGSPasteJAXV3, SEGSPasteJAXPerImageV3


def v3_extension(api):
  """A `ComfyExtension` of `api` (`load_schema_api()`) listing the V3
  nodes."""
  extension_base, io = api
  nodes = list(v3_nodes(io))

  class SEGSPasteJAXExtension(extension_base):
    async def get_node_list(self):
      return list(nodes)

  return SEGSPasteJAXExtension()


_SCHEMA_API = load_schema_api()
V3_AVAILABLE = _SCHEMA_API is not None

if V3_AVAILABLE:
  async def comfy_entrypoint():
    """ComfyUI's V3 entry point: the extension listing both nodes."""
    return v3_extension(_SCHEMA_API)


def pack_exports() -> dict:
  """What a node pack's `__init__` exports: `comfy_entrypoint` where the V3
  API imports, else the V1 `NODE_CLASS_MAPPINGS` and
  `NODE_DISPLAY_NAME_MAPPINGS` (ComfyUI reads the V1 mappings first when a
  module has both, so a pack exports one form only)."""
  if V3_AVAILABLE:
    return {"comfy_entrypoint": comfy_entrypoint}
  return {"NODE_CLASS_MAPPINGS": dict(NODE_CLASS_MAPPINGS),
          "NODE_DISPLAY_NAME_MAPPINGS": dict(NODE_DISPLAY_NAME_MAPPINGS)}
