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
from segspaste_jax._src import arrays, compile_cache

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
        },
    }

  RETURN_TYPES = ("IMAGE",)
  FUNCTION = "doit"
  CATEGORY = "ImpactPack/Detailer"

  def doit(self, image, segs, feather, alpha=255, ref_image_opt=None,
           node_axis_mixup=False):
    """Runs `segs_paste` on ComfyUI's tensors.

    Args:
      image: IMAGE, torch `[N, H, W, C]` float32 in [0, 1]. Not modified.
      segs: SEGS `((H0, W0), [SEG, ...])`.
      feather: int in 0..100.
      alpha: int in 0..255.
      ref_image_opt: optional IMAGE `[N, H, W, C]`.
      node_axis_mixup: place crops as the Impact Pack does under a
        non-uniform scale match (see `segs_paste`); default off.

    Returns:
      1-tuple with the pasted IMAGE, a float32 torch `[N, H, W, C]` on the
      device `image` was on.
    """
    _enable_compile_cache()
    out = segs_paste(image, segs, feather=feather, alpha=alpha,
                     ref_image_opt=ref_image_opt,
                     node_axis_mixup=bool(node_axis_mixup))
    tensor = arrays.to_torch(out, like=image if arrays.is_torch(image)
                                               else None)
    return (tensor.float() if str(tensor.dtype) != "torch.float32"
            else tensor,)


NODE_CLASS_MAPPINGS = {"SEGSPasteJAX": SEGSPasteJAX}
NODE_DISPLAY_NAME_MAPPINGS = {"SEGSPasteJAX": "SEGSPaste (JAX)"}
