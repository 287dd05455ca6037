"""segspaste_jax: the ComfyUI Impact Pack's SEGSPaste node in JAX."""

from segspaste_jax.api import segs_paste
from segspaste_jax.convert import SEG, pack_segs, unpack_segs
from segspaste_jax.feather import gaussian_blur_mask
from segspaste_jax.paste import paste
from segspaste_jax.segs import PackedSegs, SegsMeta

__version__ = "0.1.0"

__all__ = [
    "PackedSegs",
    "SEG",
    "SegsMeta",
    "gaussian_blur_mask",
    "pack_segs",
    "paste",
    "segs_paste",
    "unpack_segs",
]
