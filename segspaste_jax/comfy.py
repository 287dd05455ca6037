"""A ComfyUI node that is a drop-in for the Impact Pack's `SEGSPaste`.

Same inputs, same output type, same picture; the paste runs as one compiled
XLA program, on the device the IMAGE is on, and the node keeps its compiled
programs in JAX's persistent compilation cache (see README). To load it,
install this package into ComfyUI's Python and add a folder
`ComfyUI/custom_nodes/segspaste_jax_node/` whose `__init__.py` is:

    from segspaste_jax.comfy import (NODE_CLASS_MAPPINGS,
                                     NODE_DISPLAY_NAME_MAPPINGS)

(The folder must not be called `segspaste_jax`: ComfyUI registers a custom
node under its folder's name, which would hide this package.) torch is
imported only when the node runs, so the package itself does not need it.
"""

from __future__ import annotations

from segspaste_jax import segs_paste
from segspaste_jax._src import arrays, compile_cache, validate

_cache_checked = False


def _enable_compile_cache() -> None:
  """Once per process: JAX's persistent compilation cache (see README)."""
  global _cache_checked
  if not _cache_checked:
    _cache_checked = True
    compile_cache.enable()


class SEGSPasteJAX:
  """ComfyUI node: pastes SEGS into an IMAGE batch, as `SEGSPaste` does."""

  @classmethod
  def INPUT_TYPES(cls):  # pylint: disable=invalid-name
    return {
        "required": {
            "image": ("IMAGE",),
            "segs": ("SEGS",),
            "feather": ("INT", {"default": 5, "min": 0, "max": 100,
                                "step": 1}),
            "alpha": ("INT", {"default": 255, "min": 0, "max": 255,
                              "step": 1}),
        },
        "optional": {
            "ref_image_opt": ("IMAGE",),
            # the node's own crop placement under a non-uniform scale match
            "node_axis_mixup": ("BOOLEAN", {"default": False}),
            # "soft_edges": no seam at the crop border; "node": the node's
            "feather_mode": (list(validate.FEATHER_MODES),
                             {"default": "node"}),
            # "legacy": RGBA onto RGBA blends alpha as the pre-2025 node did
            "rgba_mode": (list(validate.RGBA_MODES),
                          {"default": "composite"}),
        },
    }

  RETURN_TYPES = ("IMAGE",)
  FUNCTION = "doit"
  CATEGORY = "ImpactPack/Detailer"

  def doit(self, image, segs, feather, alpha=255, ref_image_opt=None,
           node_axis_mixup=False, feather_mode="node",
           rgba_mode="composite"):
    """Runs `segs_paste` on ComfyUI's tensors.

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

    Returns:
      1-tuple with the pasted IMAGE, a float32 torch `[N, H, W, C]` on the
      device `image` was on.
    """
    _enable_compile_cache()
    out = segs_paste(image, segs, feather=feather, alpha=alpha,
                     ref_image_opt=ref_image_opt,
                     node_axis_mixup=bool(node_axis_mixup),
                     feather_mode=feather_mode, rgba_mode=rgba_mode)
    tensor = arrays.to_torch(out, like=image if arrays.is_torch(image)
                                               else None)
    return (tensor.float() if str(tensor.dtype) != "torch.float32"
            else tensor,)


class SEGSPasteJAXPerImage:
  """ComfyUI node: an IMAGE batch and a list of SEGS, one per image.

  ComfyUI hands a node with `INPUT_IS_LIST` every input as a list: here the
  images (batches, joined in order) and the SEGS (one per image, e.g. from a
  detector run on a list of images). Image `n` takes `segs[n]`, as
  `SEGSPaste` run on that image alone would paste it, all in one compiled
  program; no batch-to-list conversion is needed around it.
  """

  INPUT_IS_LIST = True

  @classmethod
  def INPUT_TYPES(cls):  # pylint: disable=invalid-name
    return SEGSPasteJAX.INPUT_TYPES()

  RETURN_TYPES = ("IMAGE",)
  FUNCTION = "doit"
  CATEGORY = "ImpactPack/Detailer"

  def doit(self, image, segs, feather, alpha=(255,), ref_image_opt=None,
           node_axis_mixup=(False,), feather_mode=("node",),
           rgba_mode=("composite",)):
    """Pastes `segs[n]` into image `n` of the joined batch.

    Args:
      image: list of IMAGE batches `[N_k, H, W, C]` (joined: N images).
      segs: list of N SEGS, or of one SEGS for every image.
      feather, alpha, node_axis_mixup, feather_mode, rgba_mode: lists of
        one value (ComfyUI's list form), as `SEGSPasteJAX`.
      ref_image_opt: optional list of IMAGE batches (joined).

    Returns:
      1-tuple with the pasted IMAGE batch `[N, H, W, C]`.
    """
    images = _joined(image)
    refs = _joined(ref_image_opt) if ref_image_opt else None
    per_image = list(segs) if len(segs) > 1 else segs[0]
    return SEGSPasteJAX().doit(images, per_image, feather[0], alpha[0], refs,
                               node_axis_mixup[0], feather_mode[0],
                               rgba_mode[0])


def _joined(batches):
  """ComfyUI's list of IMAGE batches as one batch (joined in order)."""
  if len(batches) == 1:
    return batches[0]
  import torch  # pylint: disable=import-outside-toplevel
  return torch.cat(list(batches))


NODE_CLASS_MAPPINGS = {"SEGSPasteJAX": SEGSPasteJAX,
                       "SEGSPasteJAXPerImage": SEGSPasteJAXPerImage}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SEGSPasteJAX": "SEGSPaste (JAX)",
    "SEGSPasteJAXPerImage": "SEGSPaste (JAX, SEGS per image)"}
