"""ComfyUI nodes that are drop-ins for the Impact Pack's `SEGSPaste`.

Same inputs, same output type, same picture. Two node ids, kept stable so
that saved workflows load unchanged:

- `SEGSPasteJAX`: an IMAGE batch and one SEGS, as `SEGSPaste`.
- `SEGSPasteJAXPerImage`: a list of images and a list of SEGS, one per
  image (ComfyUI's list inputs), as `SEGSPaste` mapped over the list.

A long batch is pasted a chunk of frames at a time into one float32 output
tensor allocated once (`stream_segs_paste`: the SEGS are checked and packed
once, every chunk runs the same compiled program), so memory stays near the
inputs plus the output; between chunks the nodes advance ComfyUI's progress
bar and honour its cancel button. The result equals the one-shot
`segs_paste` bit for bit. An IMAGE on a GPU is pasted there in one call.

Inside ComfyUI, with its V3 node API (`comfy_api`, pinned to version
`0.0.2`) importable, the nodes are declared with the V3 schema
(`comfy_entrypoint`); otherwise with the V1 mappings
(`NODE_CLASS_MAPPINGS`). Both forms come from one table of inputs, with a
tooltip on every input and a description on each node.

Importing this module sets `XLA_PYTHON_CLIENT_PREALLOCATE=false` unless the
user set it, so that JAX with CUDA in ComfyUI's Python does not take 75% of
the GPU's memory when its first backend starts. The node pack
(`comfyui_segspaste_jax/` in the repository, or the loader written by
`segspaste-jax comfyui install`) loads this module; see docs/comfyui.rst.
torch is imported only when a node runs.
"""

from __future__ import annotations

import os

# Before any JAX backend starts (importing jax starts none): JAX's GPU
# client reads this when it is created; ComfyUI's models need the memory.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# pylint: disable=wrong-import-position
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from segspaste_jax import pack_segs, segs_paste, stream_segs_paste
from segspaste_jax._src import arrays, compile_cache, validate

# The V3 node API version these nodes are declared with (comfy_api.v0_0_2,
# the first numbered version; ComfyUI keeps numbered versions stable).
COMFY_API_VERSION = "v0_0_2"
# Frames pasted per chunk: as many as fit in this many bytes of float32
# output (at least one). Small enough that a few chunks in flight stay well
# under the frames themselves; large enough that the per-chunk cost (a
# dispatch, cutting the SEGS' per-frame crops) does not show.
CHUNK_BYTES = 32 << 20

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
        "2 x feather + 1 (sigma 10) on each mask; 0 keeps them hard.",
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
        "0 at the crop's border, so no rectangular seam shows.",
        optional=True,
        options={"choices": validate.FEATHER_MODES, "default": "node"}),
    _In("rgba_mode", "COMBO",
        "How an RGBA crop's alpha lands on an RGBA image: composite (today's "
        "Impact Pack) or legacy (blended like a colour, as before 2025).",
        optional=True,
        options={"choices": validate.RGBA_MODES, "default": "composite"}),
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


# ----------------------------------------------------------------------------
# ComfyUI's progress bar and cancel, when it is loaded.

class Hooks(NamedTuple):
  """What a node calls between chunks.

  Attributes:
    progress: `progress(total)` returns a bar with `update(count)` (as
      ComfyUI's `comfy.utils.ProgressBar`), or None for no bar.
    check_interrupt: called before the first chunk and after each one;
      raises to cancel (as ComfyUI's `comfy.model_management.
      throw_exception_if_processing_interrupted`), or None.
  """

  progress: Callable[[int], Any] | None = None
  check_interrupt: Callable[[], None] | None = None


def comfyui_hooks() -> Hooks:
  """ComfyUI's own progress bar and interrupt check where ComfyUI is loaded
  (`comfy.utils`, `comfy.model_management`); empty `Hooks` elsewhere."""
  try:
    # pylint: disable=import-outside-toplevel
    from comfy import model_management, utils
    return Hooks(utils.ProgressBar,
                 model_management.throw_exception_if_processing_interrupted)
  except (ImportError, AttributeError):
    return Hooks()


_cache_checked = False


def _enable_compile_cache() -> None:
  """Once per process: JAX's persistent compilation cache (docs/core.rst,
  "Compile cache")."""
  global _cache_checked
  if not _cache_checked:
    _cache_checked = True
    compile_cache.enable()


# ----------------------------------------------------------------------------
# The paste, a chunk at a time into one output.

def chunk_frames(frame_shape) -> int:
  """Frames per chunk for frames of `[H, W, C]`: `CHUNK_BYTES` of float32,
  at least 1."""
  h, w, c = (int(d) for d in frame_shape)
  return max(1, CHUNK_BYTES // max(1, 4 * h * w * c))


def _as_torch(image):
  import torch  # pylint: disable=import-outside-toplevel
  if arrays.is_torch(image):
    return image
  return torch.from_numpy(np.asarray(image))


def _on_host(image) -> bool:
  return image.device.type == "cpu"


def _one_shot(image, segs, feather, alpha, ref_image_opt, opts, hooks):
  """`segs_paste` in one call (an IMAGE on a GPU is pasted there)."""
  if hooks.check_interrupt is not None:
    hooks.check_interrupt()
  bar = hooks.progress(image.shape[0]) if hooks.progress else None
  out = segs_paste(image, segs, feather=feather, alpha=alpha,
                   ref_image_opt=ref_image_opt, **opts)
  tensor = arrays.to_torch(out, like=image)
  tensor = tensor if str(tensor.dtype) == "torch.float32" else tensor.float()
  if bar is not None:
    bar.update(image.shape[0])
  return tensor


def paste_batch(image, segs, feather: int = 5, alpha=255, ref_image_opt=None,
                *, node_axis_mixup: bool = False, feather_mode: str = "node",
                rgba_mode: str = "composite", chunk: int | None = None,
                hooks: Hooks | None = None, color_match: str = "none",
                color_strength=1.0):
  """What `SEGSPasteJAX` does: one SEGS into an IMAGE batch, in chunks.

  A host (CPU) batch is pasted `chunk` frames at a time by
  `stream_segs_paste` into one float32 tensor allocated once; the result
  equals `segs_paste(image, segs, ...)` (as float32) bit for bit. A batch on
  a GPU is pasted there by one `segs_paste` call (one progress step).

  Args:
    image: IMAGE, torch `[N, H, W, C]` float in [0, 1] (numpy is taken
      too). Not modified.
    segs: SEGS `((H0, W0), [SEG, ...])` (a list of N SEGS, one per image,
      goes to `paste_per_image`).
    feather: int in 0..100.
    alpha: int in 0..255.
    ref_image_opt: optional IMAGE `[N', H, W, C']`.
    node_axis_mixup: see `segs_paste`.
    feather_mode: "node" or "soft_edges" (see `paste`).
    rgba_mode: "composite" or "legacy" (see `paste`).
    chunk: frames per chunk; default `chunk_frames(image.shape[1:])`.
    hooks: progress bar and cancel check (`comfyui_hooks()` in ComfyUI);
      default none.
    color_match, color_strength: see `segs_paste`.

  Returns:
    float32 torch `[N, H, W, C]` on `image`'s device.

  Raises:
    TypeError, ValueError: as `segs_paste`, naming the argument.
    Whatever `hooks.check_interrupt` raises, between chunks.
  """
  if validate.is_per_image(segs):
    # a list of SEGS, one per image (as `segs_paste` takes it)
    return paste_per_image(image, segs, feather, alpha, ref_image_opt,
                           node_axis_mixup=node_axis_mixup,
                           feather_mode=feather_mode, rgba_mode=rgba_mode,
                           chunk=chunk, hooks=hooks, color_match=color_match,
                           color_strength=color_strength)
  image = _as_torch(image)
  opts = {"node_axis_mixup": bool(node_axis_mixup),
          "feather_mode": feather_mode, "rgba_mode": rgba_mode,
          "color_match": color_match, "color_strength": color_strength}
  hooks = Hooks() if hooks is None else hooks
  if not _on_host(image) or len(image.shape) != 4 or not len(image):
    return _one_shot(image, segs, feather, alpha, ref_image_opt, opts, hooks)
  import torch  # pylint: disable=import-outside-toplevel
  n = image.shape[0]
  chunk = chunk_frames(image.shape[1:]) if chunk is None else chunk
  blocks = stream_segs_paste(image, segs, feather, alpha, ref_image_opt,
                             chunk=chunk, progress=False, **opts)
  if hooks.check_interrupt is not None:
    hooks.check_interrupt()
  out = torch.empty(tuple(image.shape), dtype=torch.float32)
  view, start = out.numpy(), 0
  bar = hooks.progress(n) if hooks.progress else None
  try:
    for block in blocks:
      view[start:start + len(block)] = block
      start += len(block)
      if bar is not None:
        bar.update(len(block))
      if hooks.check_interrupt is not None:
        hooks.check_interrupt()
  finally:
    blocks.close()
  return out


def paste_per_image(image, segs, feather: int = 5, alpha=255,
                    ref_image_opt=None, *, node_axis_mixup: bool = False,
                    feather_mode: str = "node", rgba_mode: str = "composite",
                    chunk: int | None = None, hooks: Hooks | None = None,
                    color_match: str = "none", color_strength=1.0):
  """What `SEGSPasteJAXPerImage` does: `segs[n]` into image `n`, in chunks.

  A host batch of more than `chunk` images is pasted `chunk` images at a
  time by `segs_paste` (the list form) into one float32 tensor allocated
  once. Every chunk is packed to the bucket and slot count of the whole
  list (found by packing each chunk's SEGS once first, with `pack_segs`),
  and the last chunk is padded with empty SEGS, so one compiled program
  serves all chunks and the result equals the one-shot `segs_paste(image,
  segs, ...)` bit for bit. A batch on a GPU is pasted there in one call.

  Args:
    image: torch `[N, H, W, C]`, the joined images.
    segs: a list of N SEGS, one per image.
    feather: int in 0..100.
    alpha: int in 0..255.
    ref_image_opt: optional IMAGE of 1 or at least N frames.
    node_axis_mixup: see `segs_paste`.
    feather_mode: "node" or "soft_edges" (see `paste`).
    rgba_mode: "composite" or "legacy" (see `paste`).
    chunk: images per chunk; default `chunk_frames(image.shape[1:])`.
    hooks: progress bar and cancel check; default none.
    color_match, color_strength: see `segs_paste`.

  Returns:
    float32 torch `[N, H, W, C]` on `image`'s device.

  Raises:
    TypeError, ValueError: as `segs_paste`.
  """
  image = _as_torch(image)
  opts = {"node_axis_mixup": bool(node_axis_mixup),
          "feather_mode": feather_mode, "rgba_mode": rgba_mode,
          "color_match": color_match, "color_strength": color_strength}
  hooks = Hooks() if hooks is None else hooks
  segs = list(segs)
  n = image.shape[0] if len(image.shape) == 4 else 0
  chunk = chunk_frames(image.shape[1:]) if chunk is None and n else chunk
  if not n or not _on_host(image) or n <= chunk or len(segs) != n:
    return _one_shot(image, segs, feather, alpha, ref_image_opt, opts, hooks)
  import torch  # pylint: disable=import-outside-toplevel
  _, h, w, c = image.shape
  with_crops = ref_image_opt is None
  if hooks.check_interrupt is not None:
    hooks.check_interrupt()
  starts = range(0, n, chunk)
  # the shapes of the whole list's pack: slots, bucket side
  slots = side = 0
  for start in starts:
    part = segs[start:start + chunk]
    s, b = pack_segs(part, (len(part), h, w, c), with_crops=with_crops,
                     node_axis_mixup=opts["node_axis_mixup"]).bucket
    slots, side = max(slots, s), max(side, b)
  out = torch.empty(tuple(image.shape), dtype=torch.float32)
  view = out.numpy()
  bar = hooks.progress(n) if hooks.progress else None
  one_ref = ref_image_opt is not None and ref_image_opt.shape[0] == 1
  for start in starts:
    count = min(chunk, n - start)
    frames, part = image[start:start + count], segs[start:start + count]
    ref = ref_image_opt
    if ref is not None and not one_ref:
      ref = ref[start:start + count]
    if count < chunk:  # padded: the same program as every other chunk
      frames = _padded(frames, chunk)
      part = part + [((h, w), [])] * (chunk - count)
      ref = ref if ref is None or one_ref else _padded(ref, chunk)
    result = segs_paste(frames, part, feather=feather, alpha=alpha,
                        ref_image_opt=ref, bucket_size=side,
                        max_segments=slots, **opts)
    view[start:start + count] = np.asarray(result)[:count]
    if bar is not None:
      bar.update(count)
    if hooks.check_interrupt is not None:
      hooks.check_interrupt()
  return out


def _padded(x, size: int):
  """`x` `[k, ...]` with zero frames appended up to `size`."""
  import torch  # pylint: disable=import-outside-toplevel
  pad = torch.zeros((size - x.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype)
  return torch.cat([x, pad])


def _joined(batches):
  """ComfyUI's list of IMAGE batches as one batch (joined in order)."""
  if len(batches) == 1:
    return batches[0]
  import torch  # pylint: disable=import-outside-toplevel
  return torch.cat(list(batches))


def _run_batch(image, segs, feather, alpha, ref_image_opt, node_axis_mixup,
               feather_mode, rgba_mode, **color):
  _enable_compile_cache()
  return paste_batch(image, segs, feather, alpha, ref_image_opt,
                     node_axis_mixup=node_axis_mixup,
                     feather_mode=feather_mode, rgba_mode=rgba_mode,
                     hooks=comfyui_hooks(), **color)


def _run_lists(image, segs, feather, alpha, ref_image_opt, node_axis_mixup,
               feather_mode, rgba_mode, **color):
  """The list form: every input a list (ComfyUI's `INPUT_IS_LIST`)."""
  images = _joined(image)
  refs = _joined(ref_image_opt) if ref_image_opt else None
  args = (feather[0], alpha[0], refs, node_axis_mixup[0], feather_mode[0],
          rgba_mode[0])
  color = {k: v[0] for k, v in color.items()}
  if len(segs) == 1:  # one SEGS for every image: the batch node
    return _run_batch(images, segs[0], *args, **color)
  _enable_compile_cache()
  feather, alpha, refs, mixup, fmode, rmode = args
  return paste_per_image(images, segs, feather, alpha, refs,
                         node_axis_mixup=mixup, feather_mode=fmode,
                         rgba_mode=rmode, hooks=comfyui_hooks(), **color)


# ----------------------------------------------------------------------------
# V1 nodes (any ComfyUI).

class SEGSPasteJAX:
  """ComfyUI node (V1): pastes SEGS into an IMAGE batch, as `SEGSPaste`."""

  DESCRIPTION = _DESCRIPTIONS["SEGSPasteJAX"]

  @classmethod
  def INPUT_TYPES(cls):  # pylint: disable=invalid-name
    return _v1_input_types()

  RETURN_TYPES = ("IMAGE",)
  OUTPUT_TOOLTIPS = (_OUTPUT_TOOLTIP,)
  FUNCTION = "doit"
  CATEGORY = _CATEGORY

  def doit(self, image, segs, feather, alpha=255, ref_image_opt=None,
           node_axis_mixup=False, feather_mode="node",
           rgba_mode="composite", color_match="none", color_strength=1.0):
    """Runs `paste_batch` on ComfyUI's tensors, with ComfyUI's progress bar
    and cancel.

    Args:
      image: IMAGE, torch `[N, H, W, C]` float32 in [0, 1]. Not modified.
      segs: SEGS `((H0, W0), [SEG, ...])`.
      feather: int in 0..100.
      alpha: int in 0..255.
      ref_image_opt: optional IMAGE `[N, H, W, C]`.
      node_axis_mixup: place crops as the Impact Pack does under a
        non-uniform scale match (see `segs_paste`); default off.
      feather_mode: "node" (default: the node's picture) or "soft_edges"
        (see `paste`).
      rgba_mode: "composite" (default: today's Impact Pack) or "legacy"
        (see `paste`).
      color_match: "none" (default: the node's picture), "lowfreq", "rct"
        or "mkl" (see `segs_paste`).
      color_strength: float in [0, 1], default 1.

    Returns:
      1-tuple with the pasted IMAGE, a float32 torch `[N, H, W, C]` on the
      device `image` was on.
    """
    return (_run_batch(image, segs, feather, alpha, ref_image_opt,
                       node_axis_mixup, feather_mode, rgba_mode,
                       color_match=color_match,
                       color_strength=color_strength),)


class SEGSPasteJAXPerImage:
  """ComfyUI node (V1): a list of images and a list of SEGS, one per image.

  ComfyUI hands a node with `INPUT_IS_LIST` every input as a list: here the
  images (batches, joined in order) and the SEGS (one per image, e.g. from a
  detector run on a list of images). Image `n` takes `segs[n]`, as
  `SEGSPaste` run on that image alone would paste it; no batch-to-list
  conversion is needed around it.
  """

  DESCRIPTION = _DESCRIPTIONS["SEGSPasteJAXPerImage"]
  INPUT_IS_LIST = True

  @classmethod
  def INPUT_TYPES(cls):  # pylint: disable=invalid-name
    return _v1_input_types()

  RETURN_TYPES = ("IMAGE",)
  OUTPUT_TOOLTIPS = (_OUTPUT_TOOLTIP,)
  FUNCTION = "doit"
  CATEGORY = _CATEGORY

  def doit(self, image, segs, feather, alpha=(255,), ref_image_opt=None,
           node_axis_mixup=(False,), feather_mode=("node",),
           rgba_mode=("composite",), color_match=("none",),
           color_strength=(1.0,)):
    """Pastes `segs[n]` into image `n` of the joined batch.

    Args:
      image: list of IMAGE batches `[N_k, H, W, C]` (joined: N images).
      segs: list of N SEGS, or of one SEGS for every image.
      feather, alpha, node_axis_mixup, feather_mode, rgba_mode: lists of
        one value (ComfyUI's list form), as `SEGSPasteJAX`.
      color_match, color_strength: lists of one value, the same.
      ref_image_opt: optional list of IMAGE batches (joined).

    Returns:
      1-tuple with the pasted IMAGE batch `[N, H, W, C]`.
    """
    return (_run_lists(image, segs, feather, alpha, ref_image_opt,
                       node_axis_mixup, feather_mode, rgba_mode,
                       color_match=color_match,
                       color_strength=color_strength),)


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
  if spec.kind == "INT":
    return io.Int.Input(spec.name, default=opts["default"], min=opts["min"],
                        max=opts["max"], step=opts["step"], **common)
  if spec.kind == "FLOAT":
    return io.Float.Input(spec.name, default=opts["default"], min=opts["min"],
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
    def execute(cls, image, segs, feather, alpha=255, ref_image_opt=None,
                node_axis_mixup=False, feather_mode="node",
                rgba_mode="composite", color_match="none",
                color_strength=1.0):
      return io.NodeOutput(_run_batch(image, segs, feather, alpha,
                                      ref_image_opt, node_axis_mixup,
                                      feather_mode, rgba_mode,
                                      color_match=color_match,
                                      color_strength=color_strength))

  class SEGSPasteJAXPerImageV3(io.ComfyNode):
    """ComfyUI node (V3): one SEGS per image, every input a list."""

    @classmethod
    def define_schema(cls):
      return schema("SEGSPasteJAXPerImage", is_input_list=True)

    @classmethod
    def execute(cls, image, segs, feather, alpha=(255,), ref_image_opt=None,
                node_axis_mixup=(False,), feather_mode=("node",),
                rgba_mode=("composite",), color_match=("none",),
                color_strength=(1.0,)):
      return io.NodeOutput(_run_lists(image, segs, feather, alpha,
                                      ref_image_opt, node_axis_mixup,
                                      feather_mode, rgba_mode,
                                      color_match=color_match,
                                      color_strength=color_strength))

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
