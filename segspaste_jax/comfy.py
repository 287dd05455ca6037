"""A ComfyUI node that is a drop-in for the Impact Pack's `SEGSPaste`.

Same inputs, same output type, same picture; the paste runs as one compiled
XLA program. To load it, install this package into ComfyUI's Python and add
a folder `ComfyUI/custom_nodes/segspaste_jax_node/` whose `__init__.py` is:

    from segspaste_jax.comfy import (NODE_CLASS_MAPPINGS,
                                     NODE_DISPLAY_NAME_MAPPINGS)

(The folder must not be called `segspaste_jax`: ComfyUI registers a custom
node under its folder's name, which would hide this package.) torch is
imported only when the node runs, so the package itself does not need it.
"""

from __future__ import annotations

import numpy as np

from segspaste_jax.api import segs_paste


def _to_torch_cpu_float32(array):
  """A JAX array as a CPU float32 torch tensor: DLPack, else a numpy copy."""
  import torch  # pylint: disable=import-outside-toplevel

  try:
    tensor = torch.from_dlpack(array)
  except (TypeError, RuntimeError, BufferError, AttributeError):
    tensor = torch.from_numpy(np.array(array))
  return tensor.to(device="cpu", dtype=torch.float32)


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
        "optional": {"ref_image_opt": ("IMAGE",)},
    }

  RETURN_TYPES = ("IMAGE",)
  FUNCTION = "doit"
  CATEGORY = "ImpactPack/Detailer"

  def doit(self, image, segs, feather, alpha=255, ref_image_opt=None):
    """Runs `segs_paste` on ComfyUI's tensors.

    Args:
      image: IMAGE, torch `[N, H, W, C]` float32 in [0, 1]. Not modified.
      segs: SEGS `((H0, W0), [SEG, ...])`.
      feather: int in 0..100.
      alpha: int in 0..255.
      ref_image_opt: optional IMAGE `[N, H, W, C]`.

    Returns:
      1-tuple with the pasted IMAGE, a CPU float32 torch `[N, H, W, C]`.
    """
    out = segs_paste(image, segs, feather=feather, alpha=alpha,
                     ref_image_opt=ref_image_opt)
    return (_to_torch_cpu_float32(out),)


NODE_CLASS_MAPPINGS = {"SEGSPasteJAX": SEGSPasteJAX}
NODE_DISPLAY_NAME_MAPPINGS = {"SEGSPasteJAX": "SEGSPaste (JAX)"}
