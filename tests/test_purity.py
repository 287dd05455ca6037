"""Pure from the caller's side: inputs may be overwritten as soon as a call
returns, held results never change, and threads do not disturb each other.

The images are several MB (page-aligned, the kind of host memory that XLA's
CPU client would happily share with a running program), and the inputs are
overwritten the moment the call returns, while an asynchronous paste could
still be reading them.
"""

import concurrent.futures
import mmap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from helpers import seg
from segspaste_jax import pack_segs, paste, segs_paste, stream_segs_paste
from segspaste_jax.comfy import SEGSPasteJAX

try:
  import torch
except ImportError:
  torch = None

N, H, W, C = 4, 512, 512, 3  # 12 MiB of float32
TRIALS = 4


def _segs(rng, n=N, count=6):
  return helpers.random_segs(rng, (H, W), n=n, count=count, sides=(80, 199),
                             origins=(-20, 60), channels=C)


def _image(rng, n=N):
  image = np.empty((n, H, W, C), np.float32)  # large: mmap'd, page-aligned
  image[...] = rng.random((n, H, W, C), np.float32)
  return image


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("with_ref", [False, True])
def test_overwrite_inputs_right_after_the_call(kind, with_ref):
  if kind == "torch" and torch is None:
    pytest.skip("torch not installed")
  rng = np.random.default_rng(0)
  segs = _segs(rng)
  for _ in range(TRIALS):
    image = _image(rng)
    ref = _image(rng) if with_ref else None
    want = np.asarray(segs_paste(image.copy(), segs, feather=7,
                                 ref_image_opt=None if ref is None
                                 else ref.copy()))
    if kind == "torch":
      image, ref = torch.from_numpy(image), (None if ref is None
                                             else torch.from_numpy(ref))
    out = segs_paste(image, segs, feather=7, ref_image_opt=ref)
    image[...] = 0.5  # at once: the paste may not have run yet
    if ref is not None:
      ref[...] = 0.25
    np.testing.assert_array_equal(np.asarray(out), want)


def _at_offset(image, offset):
  """`image` copied to an address `offset` bytes past a page boundary (an
  anonymous mapping starts on one)."""
  memory = mmap.mmap(-1, image.nbytes + offset)
  out = np.frombuffer(memory, image.dtype, count=image.size,
                      offset=offset).reshape(image.shape)
  out[...] = image
  return out


@pytest.mark.parametrize("offset", [0, 16])
@pytest.mark.parametrize("frames", [1, N])
def test_caller_image_never_written(offset, frames):
  """The image goes to XLA as it is (shared where 64-byte aligned, copied
  where not) and that array is donated to the paste: neither way may the
  paste write into the caller's memory."""
  rng = np.random.default_rng(6)
  segs = _segs(rng, n=frames)
  host = _image(rng, n=frames)
  want = np.asarray(segs_paste(host.copy(), segs, feather=5))
  for _ in range(TRIALS):
    image = _at_offset(host, offset)
    out = segs_paste(image, segs, feather=5)
    np.testing.assert_array_equal(image, host)
    image[...] = 0.5
    np.testing.assert_array_equal(np.asarray(out), want)


def test_overwrite_uint8_input_right_after_the_call():
  rng = np.random.default_rng(1)
  segs = _segs(rng)
  image = (_image(rng) * 255).astype(np.uint8)
  want = np.asarray(segs_paste(image.copy(), segs, feather=3))
  out = segs_paste(image, segs, feather=3)
  image[...] = 7
  np.testing.assert_array_equal(np.asarray(out), want)


def test_delete_jax_input_right_after_the_call():
  rng = np.random.default_rng(2)
  segs = _segs(rng)
  host = _image(rng)
  want = np.asarray(segs_paste(host, segs, feather=5))
  image = jnp.asarray(host)
  out = segs_paste(image, segs, feather=5)
  image.delete()
  np.testing.assert_array_equal(np.asarray(out), want)
  # the caller's JAX array is not donated: it stays valid
  image = jnp.asarray(host)
  segs_paste(image, segs, feather=5).block_until_ready()
  np.testing.assert_array_equal(np.asarray(image), host)


@pytest.mark.slow
def test_held_results_never_change():
  """Many results of one shape, held across later calls of that shape."""
  rng = np.random.default_rng(3)
  segs = _segs(rng, n=1)
  held, copies = [], []
  for _ in range(8):
    image = _image(rng, n=1)
    out = segs_paste(image, segs, feather=4)
    held.append(out)
    copies.append(np.array(out))
    del image
  for _ in range(8):  # more calls of the same shape
    segs_paste(_image(rng, n=1), segs, feather=4).block_until_ready()
  for out, copy in zip(held, copies):
    np.testing.assert_array_equal(np.asarray(out), copy)


@pytest.mark.slow
def test_donated_paste_leaves_other_arrays_alone():
  rng = np.random.default_rng(4)
  segs = _segs(rng, n=1)
  host = _image(rng, n=1)
  packed = jax.device_put(pack_segs(segs, host.shape))
  kept = jnp.asarray(host)
  mine = jnp.array(kept, copy=True)
  out = paste(mine, packed, feather=3, donate_image=True)
  assert mine.is_deleted()
  np.testing.assert_array_equal(np.asarray(kept), host)
  np.testing.assert_array_equal(
      np.asarray(out), np.asarray(paste(kept, packed, feather=3)))


@pytest.mark.slow
def test_four_threads_at_once():
  rng = np.random.default_rng(5)
  jobs = []
  for k in range(12):
    n = 1 + k % 3
    jobs.append((_image(rng, n=n)[:, :256], ((256, W), _segs(rng, n=n)[1]),
                 k % 11, 255 - 10 * k))
  one_at_a_time = [np.asarray(segs_paste(im, s, feather=f, alpha=a))
                   for im, s, f, a in jobs]
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    together = list(pool.map(
        lambda job: np.asarray(segs_paste(job[0], job[1], feather=job[2],
                                          alpha=job[3])), jobs))
  for got, want in zip(together, one_at_a_time):
    np.testing.assert_array_equal(got, want)


def test_stream_source_overwritten_after_each_chunk():
  rng = np.random.default_rng(6)
  n = 7
  image = _image(rng, n=n)[:, :128, :128]
  segs = ((128, 128), [seg(rng.random((n, 60, 50, C), np.float32),
                           rng.random((60, 50), np.float32),
                           (10, 20, 60, 80))])
  want = np.asarray(segs_paste(image, segs, feather=3))
  source = image.copy()
  got = []
  for chunk in stream_segs_paste(source, segs, feather=3, chunk=2,
                                 progress=False):
    got.append(chunk.copy())
    source[:] = 0.0  # frames already read and frames not yet read alike
    source[:] = image
  held = np.concatenate(got)
  np.testing.assert_array_equal(held, want)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_comfy_node_input_overwritten_after_return():
  rng = np.random.default_rng(7)
  segs = _segs(rng)
  image = _image(rng)
  want = np.asarray(segs_paste(image, segs, feather=5))
  tensor = torch.from_numpy(image.copy())
  (out,) = SEGSPasteJAX().doit(tensor, segs, 5, 255)
  tensor.fill_(0.75)
  np.testing.assert_array_equal(out.numpy(), want)


def test_segs_overwritten_right_after_the_call():
  """The crops and masks are packed before the call returns (the paste may
  still be reading the packed copies): the caller may overwrite its SEGS."""
  rng = np.random.default_rng(8)
  segs = _segs(rng)
  image = _image(rng)
  want = np.asarray(segs_paste(image, segs, feather=5))
  out = segs_paste(image, segs, feather=5)
  for s in segs[1]:
    for a in (s.cropped_image, s.cropped_mask):
      if a is not None:
        a[...] = 0.5
  np.testing.assert_array_equal(np.asarray(out), want)


def test_paged_pack_is_the_plain_pack_shared_with_xla(monkeypatch):
  """`segs_paste`'s own pack (`paged=True`): the same values as
  `pack_segs`, its large arrays taken by XLA in place (no copy), its small
  ones plain numpy; `pack_segs` hands the caller plain numpy arrays."""
  from segspaste_jax._src import packing, read_segs, validate  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(packing, "PAGED_BYTES", 1 << 20)  # small test arrays
  rng = np.random.default_rng(9)
  segs = _segs(rng)
  shape = (N, H, W, C)
  read = read_segs.read_segs(segs, shape, validate.options())
  plain, paged = (packing.pack(read, shape, paged=p) for p in (False, True))
  for field in ("crops", "masks", "regions", "valid"):
    mine, theirs = getattr(paged, field), getattr(plain, field)
    np.testing.assert_array_equal(mine, theirs)
    big = mine.nbytes >= packing.PAGED_BYTES
    assert big == (field == "crops" or field == "masks"), field
    assert mine.flags.owndata != big, field
    if big:
      assert np.shares_memory(np.asarray(jax.device_put(mine)), mine), field
  # what pack_segs returns may be written by its caller while JAX reads it:
  # no mapping that XLA would surely share, but numpy's own memory
  public = pack_segs(segs, shape)
  assert public.crops.flags.owndata and public.masks.flags.owndata


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_segs_paste_copies_the_image_once(kind):
  """numpy (or a CPU torch tensor) in, numpy out: no host copy of the
  image, the transferred image pasted in place (donation accepted, no
  warning), the result read back without a copy. XLA's own allocations are
  counted by the pages they touch for the first time (the image's size is
  what one copy touches)."""
  if kind == "torch" and torch is None:
    pytest.skip("torch not installed")
  import resource  # pylint: disable=g-import-not-at-top
  import tracemalloc  # pylint: disable=g-import-not-at-top
  import warnings  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(10)
  image = rng.random((N, H, W, C), np.float32)  # numpy's own allocation
  pages = image.nbytes // mmap.PAGESIZE
  if kind == "torch":  # torch's own (aligned) memory, which XLA shares
    image = torch.from_numpy(image).clone()
  segs = ((H, W), [seg(rng.random((1, 64, 64, C), np.float32),
                       rng.random((64, 64), np.float32), (40, 30, 104, 94))])
  np.asarray(segs_paste(image, segs, feather=3))  # compiled
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # "donated buffers were not usable"
    tracemalloc.start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    out = segs_paste(image, segs, feather=3)
    host = np.asarray(out)
    touched = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
  assert peak < pages * mmap.PAGESIZE // 4, peak  # no image-sized numpy
  assert np.shares_memory(host, np.asarray(out))  # read back in place
  # one image's pages (the copy the result needs), not two
  assert touched < 1.5 * pages, (touched, pages)
