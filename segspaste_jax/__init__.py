"""segspaste_jax: the ComfyUI Impact Pack's SEGSPaste node in JAX."""

# First, before anything here runs JAX: optional host allocator tuning.
from segspaste_jax import host_memory as _host_memory

_host_memory.apply_from_environment()

# pylint: disable=g-import-not-at-top,wrong-import-position

from segspaste_jax.api import segs_paste
from segspaste_jax.convert import SEG, pack_segs, unpack_segs
from segspaste_jax.feather import gaussian_blur_mask
from segspaste_jax.paste import paste
from segspaste_jax.segs import PackedSegs, SegsMeta
from segspaste_jax.segs_io import load_segs, save_segs
from segspaste_jax.shard import frames_mesh, sharded_paste
from segspaste_jax.stream import stream_segs_paste
from segspaste_jax.workspace import release as release_buffers

keep_freed_memory = _host_memory.keep_freed_memory

__version__ = "0.1.0"

__all__ = [
    "PackedSegs",
    "SEG",
    "SegsMeta",
    "frames_mesh",
    "gaussian_blur_mask",
    "keep_freed_memory",
    "load_segs",
    "pack_segs",
    "paste",
    "release_buffers",
    "save_segs",
    "segs_paste",
    "sharded_paste",
    "stream_segs_paste",
    "unpack_segs",
]
