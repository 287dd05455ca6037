"""segspaste_jax: the ComfyUI Impact Pack's SEGSPaste node in JAX.

The public API; the modules behind it live in `segspaste_jax._src`. The
surfaces sit on top: `segspaste_jax.cli` (the `segspaste-jax` command),
`segspaste_jax.comfy` (the ComfyUI node) and `segspaste_jax.sample` (the
embedded photo and its SEGS).
"""

from segspaste_jax._src import aligned as _aligned
from segspaste_jax._src import api as _api
from segspaste_jax._src import color as _color
from segspaste_jax._src import crop as _crop
from segspaste_jax._src import detail as _detail
from segspaste_jax._src import device_segs as _device_segs
from segspaste_jax._src import feather as _feather
from segspaste_jax._src import landmarks as _landmarks
from segspaste_jax._src import model_size as _model_size
from segspaste_jax._src import packing as _packing
from segspaste_jax._src import paste as _paste
from segspaste_jax._src import relative as _relative
from segspaste_jax._src import segs_io as _segs_io
from segspaste_jax._src import shard as _shard
from segspaste_jax._src import stream as _stream
from segspaste_jax._src import templates as _templates
from segspaste_jax._src import types as _types
from segspaste_jax._src.version import __version__ as __version__

CropTransform = _model_size.CropTransform
FACE_TEMPLATES = _templates.FACE_TEMPLATES
ModelCrops = _model_size.ModelCrops
PackedSegs = _types.PackedSegs
SEG = _types.SEG
SegCrops = _crop.SegCrops
SegsMeta = _types.SegsMeta
aligned_window = _aligned.aligned_window
crop_aligned = _aligned.crop_aligned
crop_segs = _crop.crop_segs
detail_segs = _detail.detail_segs
frames_mesh = _shard.frames_mesh
gaussian_blur_mask = _feather.gaussian_blur_mask
load_segs = _segs_io.load_segs
make_packed_segs = _device_segs.make_packed_segs
match_color = _color.match_color
pack_segs = _api.pack_segs
paste = _paste.paste
paste_aligned = _aligned.paste_aligned
relative_blur_mask = _relative.relative_blur_mask
resize_to_model = _model_size.resize_to_model
resize_to_regions = _model_size.resize_to_regions
save_segs = _segs_io.save_segs
segs_paste = _api.segs_paste
sharded_paste = _shard.sharded_paste
similarity_from_landmarks = _landmarks.similarity_from_landmarks
stream_segs_paste = _stream.stream_segs_paste
unpack_segs = _packing.unpack_segs

__all__ = [
    "CropTransform",
    "FACE_TEMPLATES",
    "ModelCrops",
    "PackedSegs",
    "SEG",
    "SegCrops",
    "SegsMeta",
    "aligned_window",
    "crop_aligned",
    "crop_segs",
    "detail_segs",
    "frames_mesh",
    "gaussian_blur_mask",
    "load_segs",
    "make_packed_segs",
    "match_color",
    "pack_segs",
    "paste",
    "paste_aligned",
    "relative_blur_mask",
    "resize_to_model",
    "resize_to_regions",
    "save_segs",
    "segs_paste",
    "sharded_paste",
    "similarity_from_landmarks",
    "stream_segs_paste",
    "unpack_segs",
]

del (_aligned, _api, _color, _crop, _detail, _device_segs, _feather, _landmarks,
     _model_size, _packing, _paste, _relative, _segs_io, _shard, _stream,
     _templates, _types)
