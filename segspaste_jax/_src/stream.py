"""Streaming: SEGS pasted into more frames than fit in memory, chunk by chunk.

The SEGS are read and checked once, for the whole sequence: the node's
per-frame rules depend on the total frame count N (a crop or mask batch of
N frames is used frame by frame, a mask batch of M != N frames is combined).
Each chunk packs only its own frames of the per-frame crops and masks, by
global frame number, so memory holds the SEGS as given plus a chunk's
worth of packed frames. The frames themselves are read, pasted and handed
back one fixed-size chunk at a time; the last chunk is padded to the same
size, so one compiled program serves the whole stream. Chunk `i + 1` is
dispatched before chunk `i` is handed back, so reading and writing frames
overlaps the paste.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
from jax.experimental import multihost_utils

from segspaste_jax._src import arrays, packing, read_segs, validate
from segspaste_jax._src.paste import paste
from segspaste_jax._src.shard import sharded_paste

MAX_CHUNK = 1 << 20
MAX_FRAMES = 1 << 40


def _blocks(frames, name: str, step: int) -> Iterator[np.ndarray]:
  """`[k, H, W, C]` numpy blocks, checked: an array sliced `step` frames at
  a time, or the items of an iterable of frames `[H, W, C]` and chunks
  `[k, H, W, C]`, which must all share one frame shape and dtype."""
  if arrays.is_array(frames):
    items = (frames[i:i + step] for i in range(0, frames.shape[0], step))
  else:
    items = iter(frames)
  first, seen = None, 0
  for item in items:
    block = frame_block(item, f"{name}[{seen}]", first)
    first = block if first is None else first
    seen += len(block)
    yield block


def _rechunk(blocks: Iterable[np.ndarray], size: int
             ) -> Iterator[tuple[np.ndarray, int]]:
  """The same frames, `size` at a time: `(buffer, count)` pairs.

  Each buffer is a new `[size, H, W, C]` array holding `count` frames, then
  zeros (the last chunk's padding).
  """
  buffer, count = None, 0
  for block in blocks:
    while len(block):
      if buffer is None:
        buffer = np.zeros((size,) + block.shape[1:], block.dtype)
      take = min(size - count, len(block))
      buffer[count:count + take] = block[:take]
      count += take
      block = block[take:]
      if count == size:
        yield buffer, count
        buffer, count = None, 0
  if count:
    yield buffer, count


def count_frames(frames, num_frames, name: str) -> int:
  """The total frame count: `num_frames`, else read off an array or a list
  of arrays."""
  total = _held_frames(frames, name)
  if num_frames is not None:
    num_frames = validate.check_int(num_frames, "num_frames", 1, MAX_FRAMES)
    if total is not None and total != num_frames:
      raise ValueError(f"num_frames: {num_frames}, but {name} holds "
                       f"{total} frames")
    return num_frames
  if total is None:
    raise ValueError(
        f"num_frames: required when {name} is an iterator (the node's "
        "per-frame crop and mask rules depend on the total frame count); "
        f"pass num_frames=N, got a {type(frames).__name__}")
  return total


def _held_frames(frames, name: str) -> int | None:
  """The frame count of an array or a list of arrays; None for others."""
  if arrays.is_array(frames):
    if len(frames.shape) != 4:
      raise ValueError(f"{name}: expected [N, H, W, C] or an iterable of "
                       f"[H, W, C] frames, got shape {tuple(frames.shape)}")
    return frames.shape[0]
  if isinstance(frames, (list, tuple)) and all(map(arrays.is_array, frames)):
    return sum(f.shape[0] if len(f.shape) == 4 else 1 for f in frames)
  return None


def check_frame_indices(frame_indices, num_frames, frames,
                        name: str) -> tuple[np.ndarray, int]:
  """`(indices, N)`: `frame_indices` as an int64 vector of frame numbers in
  `[0, N)`, N = `num_frames`, with one entry per frame of `frames` where
  that count is known."""
  if num_frames is None:
    raise ValueError("num_frames: required with frame_indices (the total "
                     "frame count N of the whole sequence, which the node's "
                     "per-frame rules depend on)")
  total = validate.check_int(num_frames, "num_frames", 1, MAX_FRAMES)
  items = None
  if not isinstance(frame_indices, (str, bytes)):
    try:
      items = list(frame_indices)
    except TypeError:
      pass
  if items is None:
    raise TypeError(f"frame_indices: expected a sequence of frame numbers, "
                    f"got {type(frame_indices).__name__}")
  if not items:
    raise ValueError("frame_indices: expected at least one frame number, "
                     "got none")
  indices = np.asarray([
      validate.check_int(i, f"frame_indices[{k}]", 0, total - 1)
      for k, i in enumerate(items)], np.int64)
  held = _held_frames(frames, name)
  if held is not None and held != len(indices):
    raise ValueError(f"frame_indices: {len(indices)} frame numbers, but "
                     f"{name} holds {held} frames")
  return indices, total


def frame_block(item, name: str, like=None) -> np.ndarray:
  """One item of a stream of frames as a checked `[k, H, W, C]` numpy
  block: a frame `[H, W, C]` or a chunk `[k, H, W, C]`, of the frame shape
  and dtype of `like` (an earlier block) when given."""
  if not arrays.is_array(item):
    raise TypeError(f"{name}: expected a numpy, torch or JAX array "
                    f"frame [H, W, C] or chunk [k, H, W, C], got "
                    f"{type(item).__name__}")
  block = arrays.to_numpy(item, name)
  if block.ndim == 3:
    block = block[None]
  validate.check_image(block, name)
  if like is not None and (block.shape[1:], block.dtype) != (
      like.shape[1:], like.dtype):
    raise ValueError(f"{name}: expected frames [H, W, C] = "
                     f"{list(like.shape[1:])} of {like.dtype} like the "
                     f"first, got {list(block.shape[1:])} of {block.dtype}")
  return block


def stream_segs_paste(frames, segs, feather: int = 5, alpha=255,
                      ref_image_opt=None, *, num_frames: int | None = None,
                      frame_indices=None, chunk: int = 16,
                      progress: bool = True, mesh=None,
                      feather_mode: str = "node",
                      rgba_mode: str = "composite",
                      node_axis_mixup: bool = False,
                      bucket_size: int | None = None,
                      max_segments: int | None = None,
                      grow=0.0, color_match: str = "none",
                      color_strength=1.0) -> Iterator[np.ndarray]:
  """Pastes SEGS into a stream of frames, one fixed-size chunk at a time.

  Same picture as `segs_paste(all_frames, segs, ...)`, holding no more
  than a few chunks of frames at a time: frame `i` of the stream takes
  frame `i` of each per-frame crop and mask. The SEGS are packed once and
  every chunk runs the same compiled program (the last one is padded to the
  chunk size). The arguments are checked by the call; the SEGS and the
  first frames by the first `next()`, before anything is pasted.

  Args:
    frames: `[N, H, W, C]` array (numpy, memmap, torch or JAX: sliced a
      chunk at a time), or an iterable of frames `[H, W, C]` and/or chunks
      `[k, H, W, C]`; float in [0, 1], or uint8 in [0, 255].
    segs: torch-style SEGS `((H0, W0), [SEG, ...])` for the whole sequence,
      or a list of N SEGS, one per frame (frame `i` takes `segs[i]` as the
      node run on that frame alone would, as `segs_paste` takes a list):
      read and checked once for the whole list, messages naming `segs[i]`
      by its index in the list, and each chunk packs only its frames' SEGS
      (to the bucket and slot count of the whole list: one program).
    feather: int in 0..100 (a number for `feather_mode="relative"`).
    alpha: number in 0..255.
    ref_image_opt: optional reference frames, `[1, H, W, C]` (used for
      every frame) or in the same forms as `frames`, read alongside them.
      An array is checked against the whole sequence by the call (one
      frame, or at least as many as are streamed; of the frames' H, W and
      channels where `frames` is an array too), before any chunk.
    num_frames: the total frame count N; required when `frames` is an
      iterator (its length is unknown, and the node's per-frame rules depend
      on it; with a list of SEGS, one per frame, it defaults to the
      list's length); checked against the frames actually read.
    frame_indices: optional global frame numbers in `0..N-1`, one per frame
      of `frames`, in stream order, to paste only some frames of a
      sequence of `num_frames` (required then) frames: the stream's k-th
      frame is frame `frame_indices[k]` of the sequence and takes that
      frame of each per-frame crop and mask, exactly as in the whole
      sequence (mask batches of M != N frames are still combined for N).
      `frames` and `ref_image_opt` (unless one frame) then hold just those
      frames. Resumes a stopped run without redoing finished frames.
    chunk: frames per compiled call, 1 or more (with a mesh, a multiple of
      its size splits evenly).
    progress: show a tqdm progress bar over frames (on stderr).
    mesh: optional `jax.sharding.Mesh` with a `"frames"` axis: each chunk is
      split across its devices (see `sharded_paste`). On a mesh over
      several processes (`jax.distributed`), every process must run the
      same stream over the same frames; each reads every chunk, and gets
      every chunk back whole (gathered from all processes).
    feather_mode: "node", "soft_edges" or "relative" (see `paste`).
    rgba_mode: "composite" or "legacy" (see `paste`).
    node_axis_mixup: see `segs_paste`.
    bucket_size: see `pack_segs`.
    max_segments: see `pack_segs`.
    grow: number in -100..100, for `feather_mode="relative"` (see `paste`).
    color_match, color_strength: see `segs_paste` (each frame's crops are
      matched to that frame's pixels).

  Yields:
    `[k, H, W, C]` numpy arrays, the pasted frames in order, of the frames'
    dtype (uint8 in, uint8 out, rounded); k is `min(chunk, N)` (N: the
    frames streamed, `len(frame_indices)` if given) except for the last
    chunk, which holds the rest.

  Raises:
    TypeError, ValueError: as `segs_paste`, naming the argument; also when
      the frames are not all of one shape and dtype, or more or fewer than
      `num_frames` arrive.
  """
  opts = validate.options(feather, alpha, feather_mode=feather_mode,
                          rgba_mode=rgba_mode,
                          node_axis_mixup=node_axis_mixup,
                          bucket_size=bucket_size, max_segments=max_segments,
                          grow=grow, color_match=color_match,
                          color_strength=color_strength)
  chunk = validate.check_int(chunk, "chunk", 1, MAX_CHUNK)
  if (num_frames is None and frame_indices is None
      and _held_frames(frames, "frames") is None
      and read_segs.is_per_image(segs)):
    num_frames = len(segs)  # one SEGS per frame: the list counts them
  if frame_indices is None:
    total = count_frames(frames, num_frames, "frames")
    indices, streamed = None, total
  else:
    indices, total = check_frame_indices(frame_indices, num_frames,
                                                  frames, "frames")
    streamed = len(indices)
  single_ref = False
  if ref_image_opt is not None and arrays.is_array(ref_image_opt):
    # against the whole sequence now, not chunk by chunk: a short reference
    # must not pass as "one frame for every frame" in its last chunk
    hwc = (tuple(frames.shape[1:]) if arrays.is_array(frames)
           and len(frames.shape) == 4 else (None, None, None))
    shape = validate.check_ref_image(ref_image_opt, (streamed, *hwc),
                                     read_values=False)
    single_ref = shape[0] == 1
    if indices is not None and shape[0] not in (1, streamed):
      # the whole sequence's reference frames would be taken in stream
      # order, not by frame number: refuse rather than misalign them
      raise ValueError(f"ref_image_opt: has {shape[0]} frames; with "
                       f"frame_indices expected 1 (used for every frame) or "
                       f"{streamed}, those of the streamed frames")
  return _stream(frames, segs, opts, ref_image_opt, single_ref, total,
                 indices, chunk, progress, mesh)


def _stream(frames, segs, opts: validate.Options, ref_image_opt, single_ref,
            total, indices, chunk, progress, mesh):
  # `total`: the sequence's N, for the SEGS; `streamed`: the frames that
  # arrive, the sequence's frames `indices` (all of them when None)
  streamed = total if indices is None else len(indices)
  size = min(chunk, streamed)
  blocks = _blocks(frames, "frames", size)
  first = next(blocks, None)
  if first is None:
    raise ValueError("frames: expected at least one frame, got none")
  _, h, w, c = first.shape
  as_uint8 = first.dtype == np.uint8

  refs = None
  if ref_image_opt is not None:
    if single_ref:  # read by every chunk: a copy of our own
      ref = np.array(arrays.to_numpy(ref_image_opt, "ref_image_opt"))
      refs = itertools.repeat((_checked_ref(ref, (h, w, c)), size))
    else:
      refs = ((_checked_ref(r, (h, w, c)), count) for r, count in _rechunk(
          _blocks(ref_image_opt, "ref_image_opt", size), size))

  # The SEGS are read and checked once, for the whole sequence's N frames
  # (the node's per-frame rules depend on N); each chunk packs only its own
  # frames of the per-frame crops and masks, by global frame number.
  with_crops = refs is None
  read = read_segs.read_segs(segs, (total, h, w, c), opts,
                            with_crops=with_crops)
  paste_kwargs = opts.paste_kwargs()

  def run(start: int, image: np.ndarray, ref):
    where = (np.arange(start, min(start + size, streamed)) if indices is None
             else indices[start:start + size])
    packed = packing.pack(read, (size, h, w, c), with_crops=with_crops,
                          frames=where)
    if mesh is None:  # uint8 goes to the device as bytes
      image, owned, _ = arrays.to_unit_float(image, own=True)
      out = paste(image, packed, ref_image=ref, donate_image=owned,
                  **paste_kwargs)
    else:
      out = sharded_paste(image, packed, ref_image=ref, mesh=mesh,
                          **paste_kwargs)
    return arrays.from_unit_float(out) if as_uint8 else out

  bar = _progress_bar(streamed, progress)
  expected = (f"num_frames: {total}" if indices is None
              else f"frame_indices: {streamed} frame numbers")
  try:
    pending, start = None, 0
    for image, count in _rechunk(itertools.chain([first], blocks), size):
      if start + count > streamed:
        raise ValueError(f"{expected}, but frames holds more")
      ref = None
      if refs is not None:
        ref, ref_count = next(refs, (None, 0))
        if ref_count < count:
          raise ValueError(f"ref_image_opt: has fewer frames than the "
                           f"{streamed} frames")
      out = run(start, image, ref)  # dispatched: runs while we hand back
      if pending is not None:
        yield _finish(pending, bar)
      pending, start = (out, count), start + count
    if start != streamed:
      raise ValueError(f"{expected}, but frames holds {start}")
    yield _finish(pending, bar)
  finally:
    if bar is not None:
      bar.close()


def _checked_ref(ref: np.ndarray, hwc):
  """A block of reference frames in memory of our own (a chunk buffer or a
  copy), checked as `segs_paste` checks them, as a float JAX array."""
  validate.check_ref_image(ref, (None, *hwc))
  return arrays.to_unit_float(ref, own=True)[0]


def _finish(pending, bar) -> np.ndarray:
  """The chunk's `count` frames as numpy, whole on every process: a chunk
  split over the devices of several processes is gathered from all of
  them first (a collective: every process of a multi-process mesh streams
  the same chunks, in the same order)."""
  out, count = pending
  if not (out.is_fully_addressable or out.is_fully_replicated):
    out = multihost_utils.process_allgather(out, tiled=True)
  frames = np.asarray(out)[:count]
  if bar is not None:
    bar.update(count)
  return frames


def _progress_bar(total: int, show: bool):
  if not show:
    return None
  try:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  return tqdm(total=total, unit="frame", desc="segs_paste")
