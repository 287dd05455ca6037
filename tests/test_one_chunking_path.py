"""One chunking path: a list of SEGS, one per frame, through
`stream_segs_paste` and both ComfyUI nodes.

The SEGS and the reference are checked once, against the whole batch,
before the first chunk (errors name the SEGS by its index in the user's
list, wherever its chunk falls); every chunk size gives `segs_paste`'s
picture bit for bit, with no reference, a one-frame, a full and a longer
one.
"""

import numpy as np
import pytest
import torch

from helpers import random_mask, seg
from segspaste_jax import comfy, segs_paste, stream_segs_paste

N, H, W = 7, 32, 40


def _case(seed=0, n=N, h=H, w=W):
  """n images and a list of n SEGS: 0 to 2 segments each, crops of one
  frame or three (frame 0 used: each image is a batch of one), masks of
  one frame or three (combined, as the node does)."""
  rng = np.random.default_rng(seed)
  images = rng.random((n, h, w, 3), np.float32)
  segs = []
  for k in range(n):
    items = []
    for j in range((k + seed) % 3):
      sh, sw = 5 + (3 * k + j) % 11, 6 + (5 * k + 2 * j) % 12
      x, y = (4 * k + 9 * j) % (w - 4) - 2, (3 * k + 7 * j) % (h - 4) - 2
      crop = rng.random((1 + 2 * (j % 2), sh, sw, 3), np.float32)
      items.append(seg(crop, random_mask(rng, 3 * (k % 2), sh, sw),
                       (x, y, x + sw, y + sh)))
    segs.append(((h, w), items))
  return images, segs


def _streamed(*args, **kwargs):
  return np.concatenate(list(stream_segs_paste(*args, progress=False,
                                               **kwargs)))


@pytest.mark.parametrize("chunk", [3, N])  # 3, 3, 1 (padded); one chunk
def test_a_list_streams_as_segs_paste(chunk):
  images, segs = _case()
  want = np.asarray(segs_paste(images, segs, 4, 230))
  np.testing.assert_array_equal(_streamed(images, segs, 4, 230, chunk=chunk),
                                want)
  # an iterator of frames: the list counts them
  np.testing.assert_array_equal(
      _streamed(iter(images), segs, 4, 230, chunk=chunk), want)


@pytest.mark.parametrize("frames", [1, N + 3])  # one; more than N
def test_a_list_with_references(frames):
  images, segs = _case(seed=1)
  ref = np.random.default_rng(5).random((frames, H, W, 3), np.float32)
  want = np.asarray(segs_paste(images, segs, 3, 255, ref))
  np.testing.assert_array_equal(_streamed(images, segs, 3, 255, ref, chunk=3),
                                want)
  # and through the nodes' path (torch, chunk by chunk into one tensor)
  out = comfy.paste_batch(torch.from_numpy(images), segs, 3, 255,
                          torch.from_numpy(ref), chunk=3)
  np.testing.assert_array_equal(out.numpy(), want)


def test_some_frames_of_a_list():
  images, segs = _case(seed=2)
  want = np.asarray(segs_paste(images, segs, 5, 255))
  where = [1, 4, 5, 6]
  got = _streamed(images[where], segs, 5, 255, num_frames=N,
                  frame_indices=where, chunk=3)
  np.testing.assert_array_equal(got, want[where])


def _bad_last(segs):
  """The list with a mask of values past [0, 1] on its last SEGS."""
  bad = list(segs)
  h, w = bad[-1][0]
  bad[-1] = ((h, w), [*bad[-1][1], seg(None, np.full((4, 4), 2, np.float32),
                                      (0, 0, 4, 4))])
  return bad, len(bad[-1][1]) - 1


def test_errors_name_the_list_index_before_the_first_chunk():
  images, segs = _case()
  bad, i = _bad_last(segs)
  message = rf"segs\[{N - 1}\]\[1\]\[{i}\]\.cropped_mask: expected values"
  blocks = stream_segs_paste(images, bad, chunk=2, progress=False)
  with pytest.raises(ValueError, match=message):
    next(blocks)  # the last chunk's SEGS, checked before the first chunk
  with pytest.raises(ValueError, match=message):
    comfy.paste_batch(torch.from_numpy(images), bad, chunk=2)
  with pytest.raises(ValueError, match=rf"segs: a list of {N - 1} SEGS for "
                     rf"{N} images"):
    next(stream_segs_paste(images, segs[:-1], chunk=2, progress=False))


def test_short_reference_refused_before_any_chunk():
  """A reference of 5 frames for 7 images: no chunk may take its last
  frames as 'one frame for every frame'."""
  images, segs = _case()
  ref = np.zeros((5, H, W, 3), np.float32)
  message = rf"ref_image_opt: has 5 frames for an image of {N}"
  for one in (segs[0], segs):  # one SEGS for all, and a list
    with pytest.raises(ValueError, match=message):
      stream_segs_paste(images, one, ref_image_opt=ref, chunk=2)
    with pytest.raises(ValueError, match=message):
      comfy.paste_batch(torch.from_numpy(images), one, 5, 255,
                        torch.from_numpy(ref), chunk=2)
  with pytest.raises(ValueError, match=r"ref_image_opt: expected frames "
                     r"\[H, W, C\] = \[32, 40, 3 or 4\]"):
    stream_segs_paste(images, segs, ref_image_opt=np.zeros((N, 32, 41, 3),
                                                            np.float32))


def test_per_image_node_over_a_long_list():
  """The node's list form: chunked by stream_segs_paste, errors and
  references checked against the whole list."""
  images, segs = _case(seed=3)
  items = [torch.from_numpy(images[k:k + 1]) for k in range(N)]
  node = comfy.SEGSPasteJAXPerImage()
  ref = torch.from_numpy(np.random.default_rng(1).random((1, H, W, 3),
                                                         np.float32))
  (out,) = node.doit(items, segs, [4], [255], [ref])
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(images, segs, 4, 255, ref.numpy())))
  short = [torch.zeros((1, H, W, 3)) for _ in range(N - 2)]
  with pytest.raises(ValueError, match=rf"has {N - 2} frames for an image "
                     rf"of {N}"):
    node.doit(items, segs, [4], [255], short)
  bad, i = _bad_last(segs)
  with pytest.raises(ValueError, match=rf"segs\[{N - 1}\]\[1\]\[{i}\]"):
    node.doit(items, bad, [4], [255])
  nan = torch.zeros((N, H, W, 3))
  nan[-1, 0, 0, 0] = float("nan")  # in the last chunk's frames
  with pytest.raises(ValueError, match=r"ref_image_opt: contains NaN"):
    node.doit(items, segs, [4], [255], [nan])
  bars = []  # none made: the reference is refused before the first chunk
  with pytest.raises(ValueError, match=r"ref_image_opt: contains NaN"):
    comfy.paste_batch(torch.from_numpy(images), segs, ref_image_opt=nan,
                      chunk=2, hooks=comfy.Hooks(progress=bars.append))
  assert bars == []


def test_per_image_node_refuses_mixed_sizes_naming_them():
  images, segs = _case(seed=4, n=2)
  other, other_segs = _case(seed=4, n=1, h=24, w=30)
  items = [torch.from_numpy(images), torch.from_numpy(other)]
  with pytest.raises(ValueError, match=r"image: the list holds images of "
                     r"different sizes \(image\[0\] 40x32 \(3 channels\), "
                     r"image\[1\] 30x24 \(3 channels\)\).*SEGSPaste \(JAX\)"):
    comfy.SEGSPasteJAXPerImage().doit(items, segs + other_segs, [5], [255])
  # the batch node, which ComfyUI maps over a list, takes each item alone
  (out,) = comfy.SEGSPasteJAX().doit(items[1], other_segs[0], 5, 255)
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(other, other_segs[0], 5, 255)))
