"""Reused buffers (segspaste_jax.workspace) and padding that holds junk."""

import gc
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from segspaste_jax import SEG, pack_segs, paste, segs_paste, workspace
from tests import cases, reference

SHAPE = (4, 256, 256)


@pytest.fixture(autouse=True)
def _clean_pools():
  workspace.release()
  yield
  workspace.release()


@pytest.fixture
def reuse_small(monkeypatch):
  """Makes segs_paste take the reusing path for test-sized batches."""
  monkeypatch.setattr(workspace, "MIN_BYTES", 0)
  monkeypatch.delenv(workspace.ENV_VAR, raising=False)
  assert workspace.worth_it((1, 8, 8, 3), np.float32)


def _pointer(a):
  return a.ctypes.data


def test_host_buffer_is_aligned_and_reused_once_free():
  a = workspace.host_buffer(SHAPE, np.float32)
  assert a.shape == SHAPE and a.dtype == np.float32
  assert _pointer(a) % 64 == 0 and a.flags.writeable
  first = _pointer(a)
  b = workspace.host_buffer(SHAPE, np.float32)
  assert _pointer(b) != first  # `a` is still held
  del a, b
  c = workspace.host_buffer(SHAPE, np.float32)
  assert _pointer(c) == first


@pytest.mark.parametrize("holder", ["jax", "numpy view", "numpy view of jax"])
def test_host_buffer_is_not_reused_while_referenced(holder):
  a = workspace.host_buffer(SHAPE, np.float32)
  first = _pointer(a)
  if holder == "jax":
    kept = jax.device_put(a)
  elif holder == "numpy view":
    kept = a[1:, ::2]
  else:
    kept = np.asarray(jax.device_put(a))
  del a
  gc.collect()
  for _ in range(workspace.HOST_PER_SHAPE + 1):
    assert _pointer(workspace.host_buffer(SHAPE, np.float32)) != first
  del kept
  gc.collect()
  assert _pointer(workspace.host_buffer(SHAPE, np.float32)) == first


def test_host_pool_is_bounded_and_released():
  held = [workspace.host_buffer(SHAPE, np.float32)
          for _ in range(workspace.HOST_PER_SHAPE + 2)]
  assert len({_pointer(a) for a in held}) == len(held)
  per_buffer = int(np.prod(SHAPE)) * 4
  assert workspace.kept_bytes() <= (workspace.HOST_PER_SHAPE + 1) * per_buffer
  del held
  workspace.release()
  assert workspace.kept_bytes() == 0


def _layout(rng, n, h, w, count):
  segs = []
  for _ in range(count):
    sh, sw = (int(v) for v in rng.integers(20, 60, 2))
    x1, y1 = int(rng.integers(-5, w - 10)), int(rng.integers(-5, h - 10))
    segs.append(SEG(rng.random((n, sh, sw, 3), np.float32),
                    rng.random((sh, sw), np.float32), 0.9,
                    (x1, y1, x1 + sw, y1 + sh), (x1, y1, x1 + sw, y1 + sh),
                    "face"))
  return (h, w), segs


def test_reused_output_matches_and_earlier_results_stay(reuse_small):
  rng = np.random.default_rng(0)
  images = [rng.random((2, 96, 128, 3), np.float32) for _ in range(4)]
  layouts = [_layout(rng, 2, 96, 128, 3) for _ in range(4)]
  before = [im.copy() for im in images]
  results = [segs_paste(im, segs, feather=3) for im, segs in
             zip(images, layouts)]
  copies = [np.array(r) for r in results]
  # more calls of the same shape: earlier results must not change
  for im, segs in zip(images, layouts):
    segs_paste(im, segs, feather=3).block_until_ready()
  for im, segs, result, copy, orig in zip(images, layouts, results, copies,
                                          before):
    np.testing.assert_array_equal(np.asarray(result), copy)
    np.testing.assert_array_equal(im, orig)
    expected = reference.segs_paste(im, segs, feather=3)
    np.testing.assert_allclose(copy, expected, rtol=0, atol=1e-5)
  assert workspace.kept_bytes() > 0


def test_reused_output_agrees_with_paste_exactly(reuse_small):
  rng = np.random.default_rng(1)
  image = rng.random((3, 80, 100, 3), np.float32)
  segs = _layout(rng, 3, 80, 100, 5)
  packed = pack_segs(segs, image.shape)
  expected = np.asarray(paste(jnp.asarray(image), packed, feather=4,
                              alpha=200))
  for _ in range(3):
    got = np.asarray(segs_paste(image, segs, feather=4, alpha=200))
    np.testing.assert_array_equal(got, expected)


def test_reused_output_can_be_donated_later(reuse_small):
  rng = np.random.default_rng(2)
  image = rng.random((1, 64, 64, 3), np.float32)
  segs = _layout(rng, 1, 64, 64, 2)
  first = segs_paste(image, segs, feather=2)
  copy = np.array(first)
  packed = pack_segs(segs, image.shape)
  again = paste(first, packed, feather=2, donate_image=True)
  expected = reference.segs_paste(copy, segs, feather=2)
  np.testing.assert_allclose(np.asarray(again), expected, rtol=0, atol=1e-5)


def test_environment_variable_turns_reuse_off(monkeypatch):
  monkeypatch.setattr(workspace, "MIN_BYTES", 0)
  monkeypatch.setenv(workspace.ENV_VAR, "0")
  assert not workspace.worth_it((1, 8, 8, 3), np.float32)
  monkeypatch.setenv(workspace.ENV_VAR, "1")
  assert workspace.worth_it((1, 8, 8, 3), np.float32) == (
      jax.default_backend() == "cpu")
  monkeypatch.setattr(workspace.host_memory, "_applied", True)
  assert not workspace.worth_it((1, 8, 8, 3), np.float32)


def test_junk_in_padding_is_ignored():
  """`paste` reads nothing of the padding (`zero_padding=False` packs)."""
  rng = np.random.default_rng(3)
  image = rng.random((2, 70, 90, 3), np.float32)
  segs = _layout(rng, 2, 70, 90, 4)
  clean = pack_segs(segs, image.shape)
  dirty = pack_segs(segs, image.shape)
  crops, masks = np.array(dirty.crops), np.array(dirty.masks)
  for i, ((ch, cw), (mh, mw)) in enumerate(zip(dirty.crop_sizes,
                                               dirty.mask_sizes)):
    crops[i, :, ch:] = np.nan
    crops[i, :, :, cw:] = np.inf
    masks[i, :, mh:] = np.nan
    masks[i, :, :, mw:] = -np.inf
  crops[len(segs[1]):] = np.nan
  masks[len(segs[1]):] = np.nan
  dirty = dirty._replace(crops=crops, masks=masks)
  for feather in (0, 3, 15):
    want = np.asarray(paste(jnp.asarray(image), clean, feather=feather))
    got = np.asarray(paste(jnp.asarray(image), dirty, feather=feather))
    np.testing.assert_array_equal(got, want)


def test_fast_packing_matches_zero_padded_packing():
  rng = np.random.default_rng(4)
  segs = _layout(rng, 3, 100, 100, 3)
  padded = pack_segs(segs, (3, 100, 100, 3))
  fast = pack_segs(segs, (3, 100, 100, 3), zero_padding=False)
  count = len(segs[1])  # padding slots hold junk in `fast`
  for i, ((ch, cw), (mh, mw)) in enumerate(zip(padded.crop_sizes[:count],
                                               padded.mask_sizes[:count])):
    np.testing.assert_array_equal(fast.crops[i, :, :ch, :cw],
                                  padded.crops[i, :, :ch, :cw])
    np.testing.assert_array_equal(fast.masks[i, :, :mh, :mw],
                                  padded.masks[i, :, :mh, :mw])
  crops, masks = np.asarray(padded.crops), np.asarray(padded.masks)
  for i, ((ch, cw), (mh, mw)) in enumerate(zip(padded.crop_sizes,
                                               padded.mask_sizes)):
    assert not crops[i, :, ch:].any() and not crops[i, :, :, cw:].any()
    assert not masks[i, :, mh:].any() and not masks[i, :, :, mw:].any()
  for leaf in ("regions", "crop_sizes", "mask_sizes", "valid", "has_crop"):
    np.testing.assert_array_equal(getattr(fast, leaf), getattr(padded, leaf))


_KEEP_FREED = """
import sys
from segspaste_jax import host_memory
assert not host_memory.is_applied()
ok = host_memory.keep_freed_memory()
assert ok == host_memory.is_applied()
import jax.numpy as jnp, numpy as np
x = jnp.ones((64, 1024, 1024), jnp.float32)
assert float((x * 2).sum()) == 2 * x.size
print("applied" if ok else "not glibc")
"""


def test_keep_freed_memory_in_a_subprocess():
  out = subprocess.run([sys.executable, "-c", _KEEP_FREED], check=True,
                       capture_output=True, text=True,
                       env={**os.environ, "SEGSPASTE_JAX_KEEP_FREED_MEMORY": ""})
  assert out.stdout.strip() in ("applied", "not glibc")
  if sys.platform.startswith("linux"):
    assert out.stdout.strip() == "applied"


def test_keep_freed_memory_from_the_environment():
  code = ("from segspaste_jax import host_memory; "
          "print(host_memory.is_applied())")
  out = subprocess.run([sys.executable, "-c", code], check=True,
                       capture_output=True, text=True,
                       env={**os.environ, "SEGSPASTE_JAX_KEEP_FREED_MEMORY": "1"})
  assert out.stdout.strip() == str(sys.platform.startswith("linux"))


@pytest.mark.parametrize("bad", [-1, 2**31])
def test_keep_freed_memory_checks_its_argument(bad):
  from segspaste_jax import host_memory
  with pytest.raises(ValueError, match="trim_threshold"):
    host_memory.keep_freed_memory(bad)


def test_float64_image_reuses_one_buffer(reuse_small):
  """Without x64 the kept buffer is float32: found again all the same."""
  rng = np.random.default_rng(5)
  image = rng.random((2, 40, 50, 3))  # float64
  segs = _layout(rng, 2, 40, 50, 2)
  expected = reference.segs_paste(image, segs, feather=2)
  for _ in range(3):
    got = np.asarray(segs_paste(image, segs, feather=2))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    del got  # its buffer is pasted into again by the next call
  device_bytes = workspace.kept_bytes() - sum(
      e.base.nbytes for entries in workspace._host.values() for e in entries)
  assert device_bytes == image.size * np.dtype(np.float32).itemsize


def _result_pointer(result):
  return result.unsafe_buffer_pointer()


def test_dropped_result_lends_its_buffer_again(reuse_small):
  rng = np.random.default_rng(6)
  image = rng.random((2, 48, 64, 3), np.float32)
  segs = _layout(rng, 2, 48, 64, 3)
  expected = np.asarray(paste(jnp.asarray(image), pack_segs(segs, image.shape),
                              feather=3))
  first = segs_paste(image, segs, feather=3)
  pointer = _result_pointer(first)
  del first
  again = segs_paste(image, segs, feather=3)
  assert _result_pointer(again) == pointer
  np.testing.assert_array_equal(np.asarray(again), expected)


@pytest.mark.parametrize("holder", ["array", "numpy view", "numpy slice",
                                    "torch dlpack"])
def test_held_result_is_never_written_again(reuse_small, holder):
  rng = np.random.default_rng(7)
  images = [rng.random((2, 48, 64, 3), np.float32) for _ in range(2)]
  segs = _layout(rng, 2, 48, 64, 3)
  result = segs_paste(images[0], segs, feather=3)
  copy = np.array(result)
  if holder == "torch dlpack":
    torch = pytest.importorskip("torch")
    kept = torch.from_dlpack(result)  # as the ComfyUI node hands it on
  else:
    kept = {"array": result, "numpy view": np.asarray(result),
            "numpy slice": np.asarray(result)[1:]}[holder]
  pointer = _result_pointer(result)
  del result
  for _ in range(workspace.HOST_PER_SHAPE + 2):
    other = segs_paste(images[1], segs, feather=3)
    assert _result_pointer(other) != pointer
    del other
  want = copy[1:] if holder == "numpy slice" else copy
  np.testing.assert_array_equal(np.asarray(kept), want)
  workspace.release()  # the held result keeps its memory all the same
  gc.collect()
  scratch = [np.full(want.shape, 7.0, np.float32) for _ in range(4)]
  np.testing.assert_array_equal(np.asarray(kept), want)
  del scratch


@pytest.mark.parametrize("shape", [(3, 17, 5), (1, 1000), (7,)])
def test_parallel_and_chunked_copy_copy_everything(monkeypatch, shape):
  from segspaste_jax import convert
  monkeypatch.setattr(convert, "_TASK_BYTES", 64)  # many small pieces
  monkeypatch.setattr(convert, "_COPY_MIN_BYTES", 0)
  rng = np.random.default_rng(8)
  src = rng.random(shape).astype(np.float32)
  dst = np.full(shape, np.nan, np.float32)
  convert.parallel_copy(dst, src)
  np.testing.assert_array_equal(dst, src)
  part = np.full(shape, np.nan, np.float32)
  convert.chunked_copy(part, src, 3, src.size - 2)
  flat, want = part.reshape(-1), src.reshape(-1)
  np.testing.assert_array_equal(flat[3:-2], want[3:-2])
  assert np.isnan(flat[:3]).all() and np.isnan(flat[-2:]).all()
  strided = np.full(shape[::-1], np.nan, np.float32).T  # not C-contiguous
  convert.parallel_copy(strided, src)
  np.testing.assert_array_equal(strided, src)


class _NoPool:
  def map(self, *args, **kwargs):
    raise AssertionError("small packing went to the thread pool")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("zero_padding", [True, False])
def test_packing_inline_and_on_threads_agree(monkeypatch, seed, zero_padding):
  from segspaste_jax import convert
  case = cases.random_case(seed)
  shape = case.image.shape
  monkeypatch.setattr(convert, "_copy_pool", _NoPool())
  monkeypatch.setattr(convert, "_COPY_MIN_BYTES", 1 << 40)  # all inline
  inline = pack_segs(case.segs, shape, zero_padding=zero_padding)
  monkeypatch.setattr(convert, "_copy_pool", None)
  monkeypatch.setattr(convert, "_COPY_MIN_BYTES", 0)  # all on the pool
  monkeypatch.setattr(convert, "_TASK_BYTES", 256)  # many pieces
  pooled = pack_segs(case.segs, shape, zero_padding=zero_padding)
  for field in ("regions", "crop_sizes", "mask_sizes", "valid", "has_crop"):
    np.testing.assert_array_equal(getattr(pooled, field),
                                  getattr(inline, field))
  for i in range(inline.meta.num_segments):
    fh, fw = inline.crop_sizes[i]
    mh, mw = inline.mask_sizes[i]
    f = max(int(inline.crop_frames[i]), 1)
    np.testing.assert_array_equal(pooled.crops[i, :f, :fh, :fw],
                                  inline.crops[i, :f, :fh, :fw])
    np.testing.assert_array_equal(pooled.masks[i, :, :mh, :mw],
                                  inline.masks[i, :, :mh, :mw])
  if zero_padding:  # the padding too
    np.testing.assert_array_equal(pooled.crops, inline.crops)
    np.testing.assert_array_equal(pooled.masks, inline.masks)


@pytest.mark.parametrize("threads", [False, True])
def test_packing_finds_nan_crops_inline_and_on_threads(monkeypatch, threads):
  from segspaste_jax import convert
  if threads:
    monkeypatch.setattr(convert, "_COPY_MIN_BYTES", 0)
    monkeypatch.setattr(convert, "_TASK_BYTES", 256)
  else:
    monkeypatch.setattr(convert, "_copy_pool", _NoPool())
  crops = [np.random.default_rng(i).random((2, 20, 30, 3)).astype(np.float32)
           for i in range(3)]
  crops[2][1, 19, 29, 0] = np.nan  # the last value of the last crop
  segs = ((64, 64), [cases.seg(c, np.ones((20, 30), np.float32),
                               (i, i, i + 30, i + 20))
                     for i, c in enumerate(crops)])
  with pytest.raises(ValueError, match=r"segs\[1\]\[2\]\.cropped_image"):
    pack_segs(segs, (2, 64, 64, 3), zero_padding=False)
