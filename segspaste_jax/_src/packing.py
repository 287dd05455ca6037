"""Packing: SEGS read on the host into the fixed-shape `PackedSegs`, and back.

`pack` writes what `read_segs.read_segs` read and checked into zero-padded
buckets with numpy: every crop and mask padded to one square side, the
segment count to a number of slots, so that different layouts reuse one
compiled program. It checks nothing: what it is handed is valid.
`unpack_segs` turns a `PackedSegs` back into torch-style SEGS.

A pack that only the library reads (`paged=True`, what `segs_paste` uses)
puts its large arrays in anonymous memory mappings of their own
(`paged_zeros`): page aligned, so that XLA's CPU client takes them without
a copy, and zero until written, so that the padding costs no pass at all.
"""

from __future__ import annotations

import math
import mmap

import numpy as np

from segspaste_jax._src.types import (ARRAY_FIELDS, SEG, Opaque, PackedSegs,
                                      SegsMeta)

MIN_BUCKET = 128   # one bucket covers every crop side up to 128
BUCKET_STEP = 64
MIN_SEGMENTS = 4
# Arrays from this size on go into a mapping of their own (`paged_zeros`).
# Smaller ones are cheaper as plain numpy arrays, copied by XLA: the C
# allocator hands back memory freed by the previous call, already mapped,
# where a new mapping faults in every page again. From 32 MiB on (glibc's
# largest mmap threshold) every allocation is a new mapping anyway.
PAGED_BYTES = 1 << 25


def _round_up(value: int, step: int) -> int:
  return -(-value // step) * step


def default_bucket_size(side: int) -> int:
  """Bucket side for a largest crop/mask side: >= 128, a multiple of 64."""
  return max(MIN_BUCKET, _round_up(side, BUCKET_STEP))


def default_max_segments(count: int) -> int:
  """Padded segment count: a power of two, at least 4."""
  return max(MIN_SEGMENTS, 1 << max(count - 1, 0).bit_length())


def paged_zeros(shape: tuple, dtype) -> np.ndarray:
  """A zeroed array in an anonymous mapping of its own (from `PAGED_BYTES`
  on; `np.zeros` below, or where the platform has no anonymous mappings).

  The mapping starts on a page boundary, which meets the alignment under
  which XLA's CPU client uses a host array in place instead of copying it;
  its pages are zero until first written (no zero-fill pass) and, where the
  kernel offers transparent huge pages on request, huge. Only for arrays
  that nobody writes once they are handed to JAX: JAX may read them after
  the call that passed them returns.
  """
  dtype = np.dtype(dtype)
  nbytes = math.prod(shape) * dtype.itemsize
  if nbytes < PAGED_BYTES or not hasattr(mmap, "MAP_ANONYMOUS"):
    return np.zeros(shape, dtype)
  memory = mmap.mmap(-1, nbytes,
                     flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
  if hasattr(mmap, "MADV_HUGEPAGE"):
    memory.madvise(mmap.MADV_HUGEPAGE)
  return np.frombuffer(memory, dtype).reshape(shape)


def _crop_channels(segs, default: int) -> int:
  # One channel count for all crops: RGB crops beside RGBA ones become
  # opaque RGBA (alpha 1), which every blend rule treats as RGB.
  return max([s.crop.shape[3] for s in segs if s.crop is not None],
             default=default)


def pack(read, image_shape, *, with_crops: bool = True,
         frames=None, paged: bool = False) -> PackedSegs:
  """Writes SEGS read by `read_segs.read_segs` into a `PackedSegs`.

  Args:
    read: a `read_segs.ReadSegs`.
    image_shape: `(N, H, W, C)` of the image (of the chunk, with `frames`).
    with_crops: False leaves the crops empty (`[S, 1, 1, 1, C]`).
    frames: optional int array of at most N frame numbers in
      `[0, read.frames)`: pack for a chunk of a longer sequence, frame `k`
      of every per-frame crop and mask being the sequence's frame
      `frames[k]` (and zeros past `len(frames)`); for a list of SEGS, one
      per image, image `k` of the chunk takes `read.segs[frames[k]]` (and
      no segment past `len(frames)`).
    paged: put the crops and masks in mappings of their own
      (`paged_zeros`): for a pack that only the library reads (a caller
      could write such arrays while JAX still reads them).

  Returns:
    A `PackedSegs` of new numpy arrays (zero padded, see `PackedSegs`).
  """
  n, _, _, c = image_shape
  bucket, slots = read.bucket, read.slots
  if read.per_image:
    return _pack_per_image(read, image_shape, with_crops, frames, paged)
  (source,), (segs,) = read.sources, read.segs
  crop_frames = [len(s.crop) for s in segs if s.crop is not None]
  if frames is None:
    fc = max([f for f in crop_frames if f > 1], default=1)
  else:
    fc = n if any(f > 1 for f in crop_frames) else 1
  fm = n if any(s.mask.ndim == 3 and len(s.mask) > 1 for s in segs) else 1
  crops_shape = ((fc, bucket, bucket, _crop_channels(segs, c)) if with_crops
                 else (1, 1, 1, c))
  fields = _empty_fields((), slots, bucket, crops_shape, fm, paged)
  meta = _fill(segs, source, fields, fc, frames)
  return PackedSegs(**fields, meta=meta)


def _pack_per_image(read, image_shape, with_crops: bool,
                    frames=None, paged: bool = False) -> PackedSegs:
  n, h, w, c = image_shape
  images = range(n) if frames is None else [int(f) for f in frames]
  bucket, slots = read.bucket, read.slots
  channels = max(_crop_channels(segs, 0) for segs in read.segs) or c
  # each image is a batch of one: frame 0 of every crop, one mask frame
  crops_shape = ((1, bucket, bucket, channels) if with_crops
                 else (1, 1, 1, c))
  fields = _empty_fields((n,), slots, bucket, crops_shape, 1, paged)
  metas = tuple(
      _fill(read.segs[i], read.sources[i], {f: a[k] for f, a in
                                            fields.items()}, 1)
      for k, i in enumerate(images))
  # a chunk's padding images (past `len(frames)`) hold no segment
  metas += (SegsMeta(source_size=(h, w)),) * (n - len(metas))
  return PackedSegs(**fields, meta=SegsMeta(source_size=(h, w),
                                            per_image=metas))


def _fill(segs, source, fields: dict, crop_frames_max: int,
          frames=None) -> SegsMeta:
  """Writes one SEGS into the zeroed arrays `fields` (one image's views);
  `frames`: see `pack`."""
  crops, packed_masks = fields["crops"], fields["masks"]
  channels = crops.shape[-1]
  for i, s in enumerate(segs):
    if s.crop is not None:
      f, ch, cw, cc = s.crop.shape
      if frames is not None and f > 1:  # the chunk's frames
        k, pixels = len(frames), s.crop[frames]
      else:
        # one crop frame serves every image frame (broadcast in `paste`);
        # a per-image pack keeps frame 0 only (its image is a batch of one)
        k = min(f if f > 1 else crop_frames_max, crops.shape[1])
        pixels = s.crop[:k]
      crops[i, :k, :ch, :cw, :cc] = pixels
      if cc < channels:
        crops[i, :k, :ch, :cw, 3] = 1
      fields["crop_sizes"][i] = (ch, cw)
      fields["has_crop"][i] = True
      fields["crop_frames"][i] = min(f, crops.shape[1])
    m = s.mask
    mh, mw = m.shape[-2:]
    if frames is not None and m.ndim == 3 and len(m) > 1:
      packed_masks[i, :len(frames), :mh, :mw] = m[frames]
    else:
      packed_masks[i, :, :mh, :mw] = m
    fields["mask_sizes"][i] = (mh, mw)
    fields["mask_frames"][i] = len(m) if m.ndim == 3 else 0
    fields["regions"][i] = s.region
    fields["valid"][i] = True
    fields["bboxes"][i] = s.bbox
    fields["confidences"][i] = s.confidence
  return SegsMeta(source_size=source, labels=tuple(s.label for s in segs),
                  wrappers=tuple(Opaque(s.wrapper) for s in segs))


def _empty_fields(lead: tuple, slots: int, bucket: int, crops_shape: tuple,
                  mask_frames: int, paged: bool = False) -> dict:
  """Zeroed arrays for `lead` images (`()` for one SEGS); with `paged`, the
  crops and masks from `paged_zeros`."""
  zeros = paged_zeros if paged else np.zeros
  return dict(
      crops=zeros(lead + (slots,) + crops_shape, np.float32),
      masks=zeros(lead + (slots, mask_frames, bucket, bucket), np.float32),
      regions=np.zeros(lead + (slots, 4), np.int32),
      crop_sizes=np.zeros(lead + (slots, 2), np.int32),
      mask_sizes=np.ones(lead + (slots, 2), np.int32),
      has_crop=np.zeros(lead + (slots,), bool),
      valid=np.zeros(lead + (slots,), bool),
      bboxes=np.zeros(lead + (slots, 4), np.float64),
      confidences=np.zeros(lead + (slots,), np.float64),
      crop_frames=np.zeros(lead + (slots,), np.int32),
      mask_frames=np.zeros(lead + (slots,), np.int32))


def _number(v: float):
  return int(v) if float(v).is_integer() else float(v)


def unpack_segs(packed: PackedSegs) -> tuple | list:
  """Turns a `PackedSegs` back into torch-style SEGS with numpy arrays.

  Args:
    packed: from `pack_segs` (numpy or device arrays).

  Returns:
    `((H0, W0), [SEG, ...])`: crops `[F, h, w, C]` float32 (None where there
    was none; RGB crops packed beside RGBA ones come back as opaque RGBA),
    masks `[h, w]` or `[M, h, w]` float32 as `paste` uses them (after scale
    match and mask-batch combination), crop regions and bboxes as tuples,
    the labels, confidences and ControlNet wrappers as given. For a
    per-image pack (`packed.per_image`), a list of such SEGS, one per image,
    each crop with its frame 0 only.
  """
  a = {f: np.asarray(getattr(packed, f)) for f in ARRAY_FIELDS}
  if packed.per_image:
    return [_unpack({f: x[k] for f, x in a.items()}, meta)
            for k, meta in enumerate(packed.meta.per_image)]
  return _unpack(a, packed.meta)


def _unpack(a: dict, meta: SegsMeta):
  segs = []
  for i in range(meta.num_segments):
    crop = None
    if a["has_crop"][i]:
      fh, fw = a["crop_sizes"][i]
      crop = a["crops"][i, :a["crop_frames"][i], :fh, :fw].copy()
    mh, mw = a["mask_sizes"][i]
    frames = a["mask_frames"][i]
    mask = a["masks"][i, :max(frames, 1), :mh, :mw].copy()
    if frames == 0:
      mask = mask[0]
    segs.append(SEG(
        cropped_image=crop,
        cropped_mask=mask,
        confidence=float(a["confidences"][i]),
        crop_region=tuple(int(v) for v in a["regions"][i]),
        bbox=tuple(_number(v) for v in a["bboxes"][i]),
        label=meta.labels[i],
        control_net_wrapper=meta.wrappers[i].value))
  return tuple(meta.source_size), segs
