"""SEGS files: a versioned `.npz` that round-trips every SEG field.

Layout (format `segspaste_jax.segs`, version 1), no pickles anywhere:

| key | value |
|---|---|
| `format` | str `"segspaste_jax.segs"` |
| `version` | int, 1 |
| `source_size` | int64 `[2]`, `(H0, W0)` |
| `count` | int, the number of segments |
| `seg{i}/has_cropped_image` | bool; False where `cropped_image` is None |
| `seg{i}/cropped_image` | `[F, h, w, C]` as given (only when present) |
| `seg{i}/cropped_mask` | `[h, w]` or `[M, h, w]` as given |
| `seg{i}/crop_region`, `seg{i}/bbox` | `[4]` int64 (float64 if a float) |
| `seg{i}/crop_region_is_int`, `seg{i}/bbox_is_int` | bool `[4]`, per value |
| `seg{i}/confidence` | float64 |
| `seg{i}/label` | str |

Arrays keep their dtype (torch tensors are stored as numpy); a SEG's
`control_net_wrapper` is not data and is dropped with a warning.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from segspaste_jax._src import arrays as arrays_lib
from segspaste_jax._src import validate, warn
from segspaste_jax._src.types import SEG

FORMAT = "segspaste_jax.segs"
VERSION = 1
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an archive, an empty one


def save_segs(path, segs) -> None:
  """Writes SEGS to a `.npz` file that `load_segs` reads back exactly.

  Args:
    path: file path (str or `os.PathLike`); written as given, no suffix added.
    segs: `((H0, W0), [SEG, ...])`; arrays may be numpy, torch or JAX.

  Raises:
    TypeError, ValueError: naming the SEG and field that cannot be stored.
    OSError: when the file cannot be written.
  """
  (h0, w0), items = validate.check_segs(segs)
  arrays = {"format": np.array(FORMAT), "version": np.array(VERSION),
            "source_size": np.array([h0, w0], np.int64),
            "count": np.array(len(items))}
  for i, seg in enumerate(items):
    where = f"segs[1][{i}]"
    validate.check_seg_fields(seg, where)
    key = f"seg{i}/"
    arrays[key + "has_cropped_image"] = np.array(seg.cropped_image is not None)
    if seg.cropped_image is not None:
      arrays[key + "cropped_image"] = seg_array(
          seg.cropped_image, f"{where}.cropped_image", (4,))
    arrays[key + "cropped_mask"] = seg_array(
        seg.cropped_mask, f"{where}.cropped_mask", (2, 3))
    for field in ("crop_region", "bbox"):
      values, is_int = seg_box(getattr(seg, field),
                                        f"{where}.{field}")
      arrays[key + field] = values
      arrays[key + field + "_is_int"] = is_int
    try:
      arrays[key + "confidence"] = np.array(float(seg.confidence), np.float64)
    except (TypeError, ValueError):
      raise TypeError(f"{where}.confidence: expected a number, got "
                      f"{seg.confidence!r}") from None
    if not isinstance(seg.label, str):
      raise TypeError(f"{where}.label: expected a str, got {seg.label!r}")
    arrays[key + "label"] = np.array(seg.label)
    if getattr(seg, "control_net_wrapper", None) is not None:
      warn.warn(f"{where}.control_net_wrapper is not data and is not "
                "saved; it loads back as None")

  # Write next to the target and move it into place: no half-written file.
  path = os.fspath(path)
  partial = path + ".partial"
  try:
    with open(partial, "wb") as f:
      np.savez_compressed(f, **arrays)
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)


def seg_array(value, name: str, ndims: tuple[int, ...]) -> np.ndarray:
  """numpy, torch or JAX array as numpy, of a numeric dtype and given rank."""
  value = arrays_lib.to_numpy(value, name)
  if value.dtype.kind not in "biuf":
    raise TypeError(f"{name}: expected a numeric array, got dtype "
                    f"{value.dtype}")
  if value.ndim not in ndims:
    raise ValueError(f"{name}: expected rank {' or '.join(map(str, ndims))}, "
                     f"got shape {value.shape}")
  return value


def seg_box(value, name: str) -> tuple[np.ndarray, np.ndarray]:
  """4 numbers as `(values, is_int)`: int64 values unless one is a float."""
  if hasattr(value, "shape"):
    items = list(seg_array(value, name, (1,)))
  else:
    items = list(value) if isinstance(value, (tuple, list)) else []
  ok = len(items) == 4 and all(
      isinstance(v, (int, float, np.integer, np.floating))
      and not isinstance(v, (bool, np.bool_)) for v in items)
  if not ok:
    raise TypeError(f"{name}: expected 4 numbers (x1, y1, x2, y2), got "
                    f"{value!r}")
  is_int = np.array([isinstance(v, (int, np.integer)) for v in items])
  dtype = np.int64 if is_int.all() else np.float64
  return np.array(items, dtype), is_int


class _Reader:
  """Typed, checked access to the arrays of one SEGS file."""

  def __init__(self, data, path: str):
    self._data = data
    self._path = path

  def fail(self, message: str):
    raise ValueError(f"{self._path}: {message}")

  def get(self, key: str, ndim: int | tuple[int, ...], kinds: str,
          shape: tuple | None = None) -> np.ndarray:
    if key not in self._data.files:
      self.fail(f"missing key {key!r}; not a complete SEGS file")
    try:
      value = self._data[key]
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError,
            OSError) as e:
      self.fail(f"cannot read {key!r} (truncated or corrupt file?): {e}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if value.ndim not in ndims or (shape is not None and value.shape != shape):
      want = shape or f"rank {' or '.join(map(str, ndims))}"
      self.fail(f"{key!r} has shape {value.shape}, expected {want}")
    if value.dtype.kind not in kinds:
      self.fail(f"{key!r} has dtype {value.dtype}, expected kind {kinds!r}")
    return value

  def box(self, key: str) -> tuple:
    values = self.get(key, 1, "iuf", (4,))
    is_int = self.get(key + "_is_int", 1, "b", (4,))
    return tuple(int(v) if flag else float(v)
                 for v, flag in zip(values.tolist(), is_int))


def load_segs(path) -> tuple:
  """Reads SEGS written by `save_segs`.

  Args:
    path: a `.npz` file from `save_segs`.

  Returns:
    `((H0, W0), [SEG, ...])` with numpy arrays in their saved dtypes, crop
    regions and bboxes as tuples of int/float, str labels, float
    confidences and `control_net_wrapper=None`.

  Raises:
    ValueError: the file is not an npz, not a SEGS file, of another version,
      truncated, or has a missing key or an array of the wrong shape; the
      message names the file and what is wrong.
    OSError: the file cannot be opened.
  """
  path = os.fspath(path)
  with open(path, "rb") as f:
    magic = f.read(4)
  if magic not in _ZIP_MAGIC:
    raise ValueError(f"{path}: not a SEGS .npz file (not a zip archive)")
  try:
    data = np.load(path, allow_pickle=False)
  except (ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: not a SEGS .npz file, or a truncated one "
                     f"({e})") from None
  with data:
    read = _Reader(data, path)
    if "format" not in data.files:
      read.fail("not a SEGS file (no 'format' key)")
    fmt = read.get("format", 0, "U")
    if str(fmt) != FORMAT:
      read.fail(f"format is {str(fmt)!r}, expected {FORMAT!r}")
    version = int(read.get("version", 0, "iu"))
    if version != VERSION:
      read.fail(f"unsupported version {version}; this reader knows version "
                f"{VERSION}")
    source_size = tuple(int(v) for v in read.get("source_size", 1, "iu", (2,)))
    count = int(read.get("count", 0, "iu"))

    segs = []
    for i in range(count):
      key = f"seg{i}/"
      crop = None
      if bool(read.get(key + "has_cropped_image", 0, "b")):
        crop = read.get(key + "cropped_image", 4, "biuf")
      segs.append(SEG(
          cropped_image=crop,
          cropped_mask=read.get(key + "cropped_mask", (2, 3), "biuf"),
          confidence=float(read.get(key + "confidence", 0, "f")),
          crop_region=read.box(key + "crop_region"),
          bbox=read.box(key + "bbox"),
          label=str(read.get(key + "label", 0, "U")),
          control_net_wrapper=None))
  return source_size, segs
