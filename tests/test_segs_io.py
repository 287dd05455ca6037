"""SEGS files: exact round trips, and clear errors on broken files."""

import zipfile

import numpy as np
import pytest

from segspaste_jax import SEG, load_segs, save_segs, segs_paste
from segspaste_jax.sample import load_sample_image, sample_segs

try:
  import torch
except ImportError:
  torch = None


def _segs(rng):
  return ((64, 80), [
      SEG(rng.random((3, 12, 17, 3)).astype(np.float32),
          rng.random((12, 17)).astype(np.float32), 0.875, (1, 2, 18, 14),
          (3, 4, 10, 12), "face"),
      SEG(None, rng.random((3, 30, 9)).astype(np.float64), 0.25,
          (-4, 10, 5, 40), (0, 11, 4.5, 30.25), "hand"),
      SEG(rng.random((1, 6, 6, 3)).astype(np.float16),
          rng.random((1, 6, 6)).astype(np.float32), 1.0,
          np.array([50, 50, 56, 56], np.int32),
          (np.float32(50.5), 50, 55, np.int64(56)), ""),
  ])


def _assert_same_segs(got, want):
  assert got[0] == tuple(want[0]) and isinstance(got[0], tuple)
  assert len(got[1]) == len(want[1])
  for g, w in zip(got[1], want[1]):
    assert isinstance(g, SEG)
    for field in ("cropped_image", "cropped_mask"):
      a, b = getattr(g, field), getattr(w, field)
      if b is None:
        assert a is None
        continue
      if torch is not None and isinstance(b, torch.Tensor):
        b = b.numpy()
      assert isinstance(a, np.ndarray) and a.dtype == b.dtype
      np.testing.assert_array_equal(a, b)
    for field in ("crop_region", "bbox"):
      a, b = getattr(g, field), [v.item() if hasattr(v, "item") else v
                                 for v in getattr(w, field)]
      assert isinstance(a, tuple) and a == tuple(b)
      assert [type(v) for v in a] == [type(v) for v in b]
    assert g.label == w.label and isinstance(g.label, str)
    assert g.confidence == w.confidence and type(g.confidence) is float
    assert g.control_net_wrapper is None


def test_round_trip(tmp_path):
  segs = _segs(np.random.default_rng(0))
  path = tmp_path / "segs.npz"
  save_segs(path, segs)
  _assert_same_segs(load_segs(path), segs)
  assert [p.name for p in tmp_path.iterdir()] == ["segs.npz"]


def test_round_trip_without_npz_suffix(tmp_path):
  segs = _segs(np.random.default_rng(1))
  save_segs(str(tmp_path / "segs"), segs)
  _assert_same_segs(load_segs(str(tmp_path / "segs")), segs)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_round_trip_torch_fields(tmp_path):
  rng = np.random.default_rng(2)
  size, items = _segs(rng)
  items[0] = items[0]._replace(
      cropped_image=torch.from_numpy(np.asarray(items[0].cropped_image)),
      cropped_mask=torch.from_numpy(np.asarray(items[0].cropped_mask)))
  items[1] = items[1]._replace(crop_region=torch.tensor([-4, 10, 5, 40]))
  save_segs(tmp_path / "t.npz", (size, items))
  got = load_segs(tmp_path / "t.npz")
  want = (size, [items[0], items[1]._replace(crop_region=(-4, 10, 5, 40)),
                 items[2]])
  _assert_same_segs(got, want)


def test_empty_segs(tmp_path):
  save_segs(tmp_path / "e.npz", ((0, 0), []))
  assert load_segs(tmp_path / "e.npz") == ((0, 0), [])


def test_wrapper_dropped_with_a_warning(tmp_path):
  size, items = _segs(np.random.default_rng(3))
  items[0] = items[0]._replace(control_net_wrapper=object())
  with pytest.warns(UserWarning, match=r"segs\[1\]\[0\]\.control_net_wrapper"):
    save_segs(tmp_path / "w.npz", (size, items))
  assert load_segs(tmp_path / "w.npz")[1][0].control_net_wrapper is None


def test_loaded_segs_paste_the_same(tmp_path):
  image = load_sample_image(96)
  segs = sample_segs(image)
  save_segs(tmp_path / "s.npz", segs)
  np.testing.assert_array_equal(
      np.asarray(segs_paste(image, load_segs(tmp_path / "s.npz"))),
      np.asarray(segs_paste(image, segs)))


@pytest.mark.parametrize("segs, match", [
    ("nope", "2-tuple"),
    (((8, 8), [SEG(None, None, 1.0, (0, 0, 1, 1), (0, 0, 1, 1), "x")]),
     r"segs\[1\]\[0\]\.cropped_mask"),
    (((8, 8), [SEG(None, np.ones((2, 2, 2, 2)), 1.0, (0, 0, 1, 1),
                   (0, 0, 1, 1), "x")]), r"cropped_mask: expected rank 2 or 3"),
    (((8, 8), [SEG(np.ones((2, 2, 3)), np.ones((2, 2)), 1.0, (0, 0, 1, 1),
                   (0, 0, 1, 1), "x")]), r"cropped_image: expected rank 4"),
    (((8, 8), [SEG(None, np.ones((2, 2)), 1.0, (0, 0, 1), (0, 0, 1, 1),
                   "x")]), r"crop_region: expected 4 numbers"),
    (((8, 8), [SEG(None, np.ones((2, 2)), 1.0, (0, 0, 1, 1), (0, 0, 1, 1),
                   None)]), r"label: expected a str"),
    (((8, 8), [SEG(None, np.ones((2, 2), object), 1.0, (0, 0, 1, 1),
                   (0, 0, 1, 1), "x")]), r"numeric array"),
])
def test_save_rejects_what_it_cannot_store(tmp_path, segs, match):
  with pytest.raises((TypeError, ValueError), match=match):
    save_segs(tmp_path / "bad.npz", segs)
  assert not list(tmp_path.iterdir())


def _saved(tmp_path):
  path = tmp_path / "s.npz"
  save_segs(path, _segs(np.random.default_rng(4)))
  return path


def _rewrite(path, drop=(), replace=None):
  with np.load(path) as data:
    arrays = {k: data[k] for k in data.files if k not in drop}
  arrays.update(replace or {})
  with open(path, "wb") as f:
    np.savez(f, **arrays)


def test_truncated_file(tmp_path):
  path = _saved(tmp_path)
  data = path.read_bytes()
  for size in (len(data) // 2, len(data) - 30, 10):
    path.write_bytes(data[:size])
    with pytest.raises(ValueError, match="s.npz"):
      load_segs(path)


def test_empty_file(tmp_path):
  path = tmp_path / "empty.npz"
  path.write_bytes(b"")
  with pytest.raises(ValueError, match="not a zip archive"):
    load_segs(path)


def test_not_an_npz(tmp_path):
  path = tmp_path / "x.npz"
  path.write_text("hello")
  with pytest.raises(ValueError, match="not a SEGS .npz file"):
    load_segs(path)
  np.save(tmp_path / "a.npy", np.ones(3))
  with pytest.raises(ValueError, match="not a SEGS .npz file"):
    load_segs(tmp_path / "a.npy")


def test_bad_zip(tmp_path):
  path = tmp_path / "bad.npz"
  path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
  with pytest.raises(ValueError, match="bad.npz"):
    load_segs(path)


def test_zip_of_other_things(tmp_path):
  path = tmp_path / "other.npz"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("readme.txt", "hi")
  with pytest.raises(ValueError, match="not a SEGS file"):
    load_segs(path)
  np.savez(path, weights=np.ones(3))
  with pytest.raises(ValueError, match="not a SEGS file"):
    load_segs(path)


def test_missing_file(tmp_path):
  with pytest.raises(FileNotFoundError):
    load_segs(tmp_path / "absent.npz")


@pytest.mark.parametrize("key", ["version", "source_size", "count",
                                 "seg1/cropped_mask", "seg0/cropped_image",
                                 "seg2/bbox_is_int", "seg0/label",
                                 "seg1/has_cropped_image"])
def test_missing_key(tmp_path, key):
  path = _saved(tmp_path)
  _rewrite(path, drop=[key])
  with pytest.raises(ValueError, match=f"missing key '{key}'"):
    load_segs(path)


def test_wrong_version(tmp_path):
  path = _saved(tmp_path)
  _rewrite(path, replace={"version": np.array(2)})
  with pytest.raises(ValueError, match="unsupported version 2"):
    load_segs(path)


def test_wrong_format(tmp_path):
  path = _saved(tmp_path)
  _rewrite(path, replace={"format": np.array("something.else")})
  with pytest.raises(ValueError, match="format is 'something.else'"):
    load_segs(path)


@pytest.mark.parametrize("key, value, match", [
    ("source_size", np.array([1, 2, 3]), r"'source_size' has shape \(3,\)"),
    ("seg0/cropped_mask", np.ones((2, 2, 2, 2), np.float32),
     r"'seg0/cropped_mask' has shape \(2, 2, 2, 2\), expected rank 2 or 3"),
    ("seg0/cropped_image", np.ones((2, 2), np.float32),
     r"'seg0/cropped_image' has shape"),
    ("seg1/crop_region", np.array([1, 2, 3]), r"'seg1/crop_region' has shape"),
    ("seg0/label", np.array(3), r"'seg0/label' has dtype"),
    ("count", np.array(4), r"missing key 'seg3/has_cropped_image'"),
])
def test_bad_arrays(tmp_path, key, value, match):
  path = _saved(tmp_path)
  _rewrite(path, replace={key: value})
  with pytest.raises(ValueError, match=match):
    load_segs(path)
