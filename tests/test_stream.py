"""`stream_segs_paste`: chunked frames give the one-shot picture, one compile,
flat memory."""

import os

import numpy as np
import pytest

from helpers import random_case, rss_mib
from segspaste_jax import SEG, segs_paste, stream_segs_paste

H, W, C = 24, 32, 3
KW = dict(feather=3, alpha=220, bucket_size=32, max_segments=4)


def _segs(rng, n, crop_frames, mask_frames, channels=C, h=H, w=W):
  """Three SEGs, one overhanging the top-left corner; crops and masks with
  the given frame counts (mask_frames 0: a 2-D mask)."""
  segs = []
  for k, (x1, y1) in enumerate([(-4, -3), (8, 5), (w - 10, h - 8)]):
    sh, sw = 10 + k, 12 - k
    crop = rng.random((crop_frames, sh, sw, channels), np.float32)
    mask = rng.random((mask_frames, sh, sw) if mask_frames else (sh, sw),
                      np.float32)
    segs.append(SEG(crop, mask, 0.5, (x1, y1, x1 + sw, y1 + sh),
                    (x1, y1, x1 + sw, y1 + sh), str(k)))
  return (h, w), segs


def _collect(chunks):
  chunks = list(chunks)
  assert all(isinstance(c, np.ndarray) for c in chunks)
  return np.concatenate(chunks), [len(c) for c in chunks]


@pytest.mark.parametrize("crop_frames,mask_frames,chunk", [
    (1, 0, 3),    # frame-independent SEGS
    (1, 1, 3),
    (7, 7, 3),    # per-frame crops and masks: cut per chunk by frame number
    (9, 3, 3),    # 3 mask frames for 7 frames: combined over the whole
                  # batch, though a chunk holds 3 frames
    (7, 7, 1),
    (7, 7, 7),
    (9, 7, 16),   # one chunk of 7, not 16
])
def test_matches_one_shot(crop_frames, mask_frames, chunk):
  rng = np.random.default_rng(crop_frames * 10 + mask_frames)
  n = 7
  image = rng.random((n, H, W, C), np.float32)
  segs = _segs(rng, n, crop_frames, mask_frames)
  want = np.asarray(segs_paste(image, segs, **KW))
  got, lengths = _collect(stream_segs_paste(
      (f for f in image), segs, num_frames=n, chunk=chunk, progress=False,
      **KW))
  np.testing.assert_array_equal(got, want)
  size = min(chunk, n)
  assert lengths == [size] * (n // size) + ([n % size] if n % size else [])


@pytest.mark.parametrize("seed", [0, 2, 16])  # 16: ref_image_opt
def test_random_cases(seed):
  case = random_case(seed)
  want = np.asarray(segs_paste(case.image, case.segs, **case.kwargs()))
  # frames as an array; the reference frames (if any) as an iterator
  kwargs = case.kwargs()
  if case.ref_image_opt is not None:
    kwargs["ref_image_opt"] = iter(list(case.ref_image_opt))
  got, _ = _collect(stream_segs_paste(case.image, case.segs, chunk=2,
                                      progress=False, **kwargs))
  np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_mixed_frames_and_chunks_and_refs():
  rng = np.random.default_rng(1)
  n = 9
  image = rng.random((n, H, W, C), np.float32)
  ref = rng.random((n, H, W, C), np.float32)
  segs = _segs(rng, n, n, n)
  items = [image[0], image[1:4], image[4], image[5:9]]
  want = np.asarray(segs_paste(image, segs, ref_image_opt=ref, **KW))
  got, lengths = _collect(stream_segs_paste(
      items, segs, ref_image_opt=ref, chunk=4, progress=False, **KW))
  np.testing.assert_array_equal(got, want)
  assert lengths == [4, 4, 1]
  # one reference frame for every frame
  want = np.asarray(segs_paste(image, segs, ref_image_opt=ref[:1], **KW))
  got, _ = _collect(stream_segs_paste(
      iter(items), segs, ref_image_opt=ref[:1], num_frames=n, chunk=4,
      progress=False, **KW))
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("chunk", [1, 3])
def test_reader_reusing_its_buffer(chunk):
  """A reader (a video decoder, say) that hands out one buffer, overwritten
  for every frame, while earlier chunks are still being pasted."""
  rng = np.random.default_rng(7)
  image = rng.random((7, H, W, C), np.float32)
  segs = _segs(rng, 7, 7, 7)

  def reader():
    buffer = np.empty((H, W, C), np.float32)
    for frame in image:
      buffer[...] = frame
      yield buffer

  got, _ = _collect(stream_segs_paste(reader(), segs, num_frames=7,
                                      chunk=chunk, progress=False, **KW))
  np.testing.assert_array_equal(got, np.asarray(segs_paste(image, segs,
                                                           **KW)))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.uint8, np.float16])
def test_dtype_kept(dtype):
  rng = np.random.default_rng(2)
  image = rng.random((5, H, W, C), np.float32)
  image = ((image * 255).round().astype(np.uint8) if dtype == np.uint8
           else image.astype(dtype))
  segs = _segs(rng, 5, 5, 0)
  want = np.asarray(segs_paste(image, segs, **KW))
  got, _ = _collect(stream_segs_paste(image, segs, chunk=2, progress=False,
                                      **KW))
  assert got.dtype == dtype
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("crop_frames,mask_frames", [
    (7, 7),   # per-frame crops and masks: cut by global frame number
    (9, 3),   # 3 mask frames for 7: combined for all 7, not the 4 streamed
])
def test_frame_indices_paste_some_frames(crop_frames, mask_frames):
  """Frames 5, 1, 2, 6 of a sequence of 7, streamed alone: each is the
  whole sequence's frame, as `segs_paste` gives it (shapes as in
  test_matches_one_shot: no new compile)."""
  rng = np.random.default_rng(20 + crop_frames)
  n = 7
  image = rng.random((n, H, W, C), np.float32)
  segs = _segs(rng, n, crop_frames, mask_frames)
  picked = [5, 1, 2, 6]
  want = np.asarray(segs_paste(image, segs, **KW))
  got, lengths = _collect(stream_segs_paste(
      (image[i] for i in picked), segs, num_frames=n, frame_indices=picked,
      chunk=3, progress=False, **KW))
  assert lengths == [3, 1]
  np.testing.assert_array_equal(got, want[picked])
  # all frames in order: the plain stream
  got, _ = _collect(stream_segs_paste(
      image, segs, num_frames=n, frame_indices=range(n), chunk=3,
      progress=False, **KW))
  np.testing.assert_array_equal(got, np.asarray(segs_paste(image, segs,
                                                           **KW)))


def test_frame_indices_with_ref():
  """The reference frames of the streamed frames, alongside them (shapes
  as in test_mixed_frames_and_chunks_and_refs: no new compile)."""
  rng = np.random.default_rng(9)
  n = 9
  image = rng.random((n, H, W, C), np.float32)
  ref = rng.random((n, H, W, C), np.float32)
  segs = _segs(rng, n, n, n)
  picked = [8, 0, 3, 4, 7]
  want = np.asarray(segs_paste(image, segs, ref_image_opt=ref, **KW))
  got, lengths = _collect(stream_segs_paste(
      image[picked], segs, ref_image_opt=iter(ref[picked]), num_frames=n,
      frame_indices=np.array(picked), chunk=4, progress=False, **KW))
  assert lengths == [4, 1]
  np.testing.assert_array_equal(got, want[picked])


def _bad_input_case(seed):
  """4 frames with per-frame SEGS, and `run(frames, **kw)`: the whole
  stream of them, with `kw` over the test's keyword arguments."""
  rng = np.random.default_rng(seed)
  image = rng.random((4, H, W, C), np.float32)
  segs = _segs(rng, 4, 4, 4)
  run = lambda frames, **kw: list(stream_segs_paste(
      frames, segs, progress=False, **{**KW, **kw}))
  return image, run


def test_frame_indices_bad_input():
  image, run = _bad_input_case(8)
  with pytest.raises(ValueError, match="num_frames: required with "
                                       "frame_indices"):
    run(image[:2], frame_indices=[0, 1])
  with pytest.raises(ValueError, match=r"frame_indices\[1\]: expected an "
                                       r"integer in 0\.\.3, got 4"):
    run(image[:2], num_frames=4, frame_indices=[0, 4])
  with pytest.raises(ValueError, match=r"frame_indices\[0\]"):
    run(image[:1], num_frames=4, frame_indices=[-1])
  with pytest.raises(TypeError, match=r"frame_indices\[0\]"):
    run(image[:1], num_frames=4, frame_indices=[1.0])
  with pytest.raises(TypeError, match="frame_indices: expected a sequence"):
    run(image[:1], num_frames=4, frame_indices=3)
  with pytest.raises(ValueError, match="frame_indices: expected at least"):
    run(image[:1], num_frames=4, frame_indices=[])
  with pytest.raises(ValueError, match="frame_indices: 2 frame numbers, but "
                                       "frames holds 3"):
    run(image[:3], num_frames=4, frame_indices=[0, 1])
  # counted as they arrive (4 frame numbers: the shapes of test_bad_input)
  with pytest.raises(ValueError, match="frame_indices: 4 frame numbers, but "
                                       "frames holds 3"):
    run((f for f in image[:3]), num_frames=4, frame_indices=[3, 2, 1, 0])
  with pytest.raises(ValueError, match="frame_indices: 4 frame numbers, but "
                                       "frames holds more"):
    run((f for f in image[[0, 1, 2, 3, 0]]), num_frames=4,
        frame_indices=[3, 2, 1, 0])
  with pytest.raises(ValueError, match="ref_image_opt"):
    run(image[:3], num_frames=4, frame_indices=[0, 1, 2],
        ref_image_opt=image[:2])
  with pytest.raises(ValueError, match="ref_image_opt: has 4 frames; with "
                                       "frame_indices expected 1"):
    run(image[:3], num_frames=4, frame_indices=[1, 2, 3],
        ref_image_opt=image)  # the whole sequence's, not the streamed ones'


def test_one_compile_for_all_chunks(compile_counter):
  rng = np.random.default_rng(3)
  n = 11  # 4 + 4 + 3: the last chunk is padded, not recompiled
  image = rng.random((n, H, W, C), np.float32)
  segs = _segs(rng, n, n, n)
  chunks = stream_segs_paste((f for f in image), segs, num_frames=n, chunk=4,
                             progress=False, **KW)
  first = next(chunks)
  compile_counter.clear()
  rest = list(chunks)
  assert [len(first)] + [len(c) for c in rest] == [4, 4, 3]
  assert compile_counter == [], f"{len(compile_counter)} recompiles"
  # another stream of another length, same chunk size: no compile at all
  more = rng.random((6, H, W, C), np.float32)
  list(stream_segs_paste(more, _segs(rng, 6, 6, 6), chunk=4, progress=False,
                         **KW))
  assert compile_counter == [], f"{len(compile_counter)} recompiles"


def test_progress_bar(capsys):
  rng = np.random.default_rng(4)
  image = rng.random((5, H, W, C), np.float32)
  segs = _segs(rng, 5, 1, 0)
  list(stream_segs_paste(image, segs, chunk=2, progress=True, **KW))
  assert "5/5" in capsys.readouterr().err
  list(stream_segs_paste(image, segs, chunk=2, progress=False, **KW))
  assert capsys.readouterr().err == ""


def test_bad_input():
  image, run = _bad_input_case(5)
  with pytest.raises(ValueError, match="num_frames: required"):
    run(f for f in image)
  with pytest.raises(ValueError, match="num_frames: 4, but frames holds 3"):
    run((f for f in image[:3]), num_frames=4)
  with pytest.raises(ValueError, match="holds more"):
    run((f for f in np.concatenate([image, image])), num_frames=4)
  with pytest.raises(ValueError, match="num_frames: 5, but frames holds 4"):
    run(image, num_frames=5)
  with pytest.raises(ValueError, match=r"frames\[2\]"):
    run([image[0], image[1], image[2, :10]])
  with pytest.raises(TypeError, match=r"frames\[0\]"):
    run(["not a frame"], num_frames=1)
  with pytest.raises(TypeError, match=r"frames\[0\]"):
    run([image[:1].astype(np.int32)])
  with pytest.raises(ValueError, match="chunk"):
    run(image, chunk=0)
  with pytest.raises(ValueError, match="feather"):
    run(image, feather=101)
  with pytest.raises(ValueError, match="ref_image_opt"):
    run(image, ref_image_opt=image[:2])
  with pytest.raises(ValueError, match="ref_image_opt: has fewer"):
    run(image, ref_image_opt=iter(image[:3]), chunk=2)
  with pytest.raises(ValueError, match="cropped_image"):  # 4 crop frames
    run(np.concatenate([image, image]))


def _peak_rss_streaming(frames: int, side: int, chunk: int = 16) -> float:
  """Largest RSS seen while streaming `frames` generated frames, MiB."""
  rng = np.random.default_rng(6)
  segs = _segs(rng, 1, 1, 0, h=side, w=side)
  frame = rng.random((side, side, C), np.float32)
  generated = (frame * (i % 7) / 7 for i in range(frames))
  peak = 0.0
  for out in stream_segs_paste(generated, segs, num_frames=frames,
                               chunk=chunk, progress=False, **KW):
    peak = max(peak, rss_mib())
    del out
  return peak


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="reads RSS from /proc")
def test_memory_does_not_grow_with_frames():
  _peak_rss_streaming(200, 64)  # compile and settle
  small = _peak_rss_streaming(200, 64)
  large = _peak_rss_streaming(2000, 64)
  held = 2000 * 64 * 64 * C * 4 / 2**20  # 94 MiB if the frames were kept
  assert large - small < held / 4, (small, large)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="reads RSS from /proc")
def test_memory_does_not_grow_with_frames_256():
  """2,000 frames of 256x256 (about a second on a CPU)."""
  _peak_rss_streaming(100, 256)
  small = _peak_rss_streaming(100, 256)
  large = _peak_rss_streaming(2000, 256)
  held = 2000 * 256 * 256 * C * 4 / 2**20  # 1.5 GiB if kept
  assert large - small < held / 20, (small, large)
