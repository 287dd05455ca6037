"""`feather_mode="relative"`: a ramp sized to the mask, moved by `grow`.

The definition is re-stated in float64 numpy/scipy
(`helpers.relative_reference`: edge-extended correlation with the
pixel-integrated Gaussian, `ndtri` distances, the border smoothstep), and
the library's float32 weights and pastes are checked against it. Measured
across straight mask edges pasted through `segs_paste`: the 10 %-90 %
width is `feather` per cent of `sqrt(area)` and doubles with the mask's
side, `grow` moves the 50 % level by its share of `sqrt(area)`; the crop's
border ring stays below 1/255 in every setting; one compiled program
serves every feather and grow on both forms; gradients are finite and
agree with finite differences; bad values get errors naming the argument;
the other modes are untouched.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from helpers import relative_reference, seg
from segspaste_jax import (frames_mesh, pack_segs, paste, relative_blur_mask,
                           segs_paste, stream_segs_paste)
from segspaste_jax._src import paste as paste_lib
from segspaste_jax._src import relative

def _ellipse(h, w, cy, cx, ry, rx):
  yy, xx = np.mgrid[0:h, 0:w]
  return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(
      np.float32)


def _soft(h, w, seed=0):
  """Smooth random blobs, soft at their edges."""
  soft = ndimage.gaussian_filter(np.random.default_rng(seed).random((h, w)),
                                 3)
  return np.clip((soft - soft.mean()) * 12 + 0.5, 0, 1).astype(np.float32)


def _masks():
  soft = _soft(37, 45)
  full = np.ones((30, 26), np.float32)
  corner = np.zeros((33, 40), np.float32)
  corner[:20, 25:] = 0.9  # touches two borders, inside below 1
  return [_ellipse(41, 50, 20, 22, 14, 19), soft, full, corner]


_weights = jax.jit(relative.relative_weights)


def test_weights_match_float64_reference(compile_counter):
  """Bucketed masks (NaN past their extent) against the float64 re-statement,
  one program for every mask size, feather and grow."""
  bucket = 64
  compile_counter.clear()
  for mask in _masks():
    h, w = mask.shape
    padded = np.full((bucket, bucket), np.nan, np.float32)
    padded[:h, :w] = mask
    for feather, grow in [(10, 0), (3.5, 12), (25, -20), (60, 40),
                          (1, -100), (100, 100), (0, 0)]:
      got = np.asarray(_weights(padded, (np.int32(h), np.int32(w)),
                                np.float32(feather), np.float32(grow)))
      want = relative_reference(mask, feather, grow)
      np.testing.assert_allclose(got[:h, :w], want, rtol=0, atol=2e-4,
                                 err_msg=f"{mask.shape} {feather} {grow}")
      assert not got[h:].any() and not got[:, w:].any()
  assert len(compile_counter) == 1


def test_weights_keep_float32_precision_near_one():
  """A narrow ramp grown far inward reads distances where the blurred edge
  is within 1e-4 of 1: its complement, blurred on its own, keeps them
  (the blurred edge alone, in float32, was 4e-4 off here)."""
  mask = _ellipse(128, 112, 64, 56, 51, 39)
  for feather, grow in [(1, -10), (4, -5)]:
    got = np.asarray(relative_blur_mask(mask, feather, grow=grow))
    np.testing.assert_allclose(got, relative_reference(mask, feather, grow),
                               rtol=0, atol=1e-5, err_msg=f"{feather} {grow}")


def test_empty_and_hard_masks():
  empty = np.zeros((20, 24), np.float32)
  assert not np.asarray(relative_blur_mask(empty, 10, grow=30)).any()
  # feather 0, grow 0: the mask itself; with grow, a hard edge
  rng = np.random.default_rng(1)
  mask = rng.random((20, 24)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(relative_blur_mask(mask, 0)),
                                mask)
  square = np.zeros((40, 40), np.float32)
  square[10:30, 10:30] = 1  # sqrt(area) 20: grow 10 % is 2 px
  grown = np.asarray(relative_blur_mask(square, 0, grow=10))
  assert set(np.unique(grown)) <= {0.0, 1.0}
  np.testing.assert_array_equal(grown[20], (np.abs(np.arange(40) - 19.5)
                                            < 12).astype(np.float32))


# ----------------------------------------------------------------------------
# Measured across straight edges, pasted through segs_paste.

SIDES = (64, 128)  # two masks, the second twice the first's side


def _pasted_rows(feather, grow):
  """Ones pasted into zeros through square crops of both sides whose masks
  cover their right halves (one straight edge, at `side / 2 - 0.5`): each
  crop's middle row of weights."""
  x0 = 4
  regions, rows = [], []
  for side in SIDES:
    regions.append((x0, 4, x0 + side, 4 + side))
    x0 += side + 8
  segs = []
  for x1, y1, x2, y2 in regions:
    side = y2 - y1
    mask = np.zeros((side, side), np.float32)
    mask[:, side // 2:] = 1
    segs.append(seg(np.ones((1, side, side, 1), np.float32), mask,
                    (x1, y1, x2, y2)))
  image = np.zeros((1, 136, x0, 1), np.float32)
  out = np.asarray(segs_paste(image, ((136, x0), segs), feather,
                              feather_mode="relative", grow=grow))[0, ..., 0]
  for x1, y1, _, y2 in regions:
    side = y2 - y1
    rows.append(out[y1 + side // 2, x1:x1 + side])
  return rows


def _crossing(row, level):
  """Where a rising row first crosses `level` (linear interpolation)."""
  i = int(np.nonzero(row >= level)[0][0])
  return i - 1 + (level - row[i - 1]) / (row[i] - row[i - 1])


@pytest.mark.parametrize("feather", [15, 30])
def test_ramp_width_is_feather_share_and_doubles(feather):
  widths = []
  for side, row in zip(SIDES, _pasted_rows(feather, 0)):
    root = side / np.sqrt(2)  # sqrt(area) of the right half
    width = _crossing(row, 0.9) - _crossing(row, 0.1)
    np.testing.assert_allclose(width, feather / 100 * root, rtol=0.03)
    # the 50 % level on the mask's edge (between pixels side/2 - 1 and side/2)
    np.testing.assert_allclose(_crossing(row, 0.5), side / 2 - 0.5, atol=0.05)
    widths.append(width)
  np.testing.assert_allclose(widths[1] / widths[0], 2, rtol=0.03)


@pytest.mark.parametrize("grow", [-30, -8, 8, 30])
def test_grow_moves_the_half_level(grow):
  for side, row in zip(SIDES, _pasted_rows(20, grow)):
    root = side / np.sqrt(2)
    moved = (side / 2 - 0.5) - _crossing(row, 0.5)  # outward: to the left
    np.testing.assert_allclose(moved, grow / 100 * root, atol=0.1)
    width = _crossing(row, 0.9) - _crossing(row, 0.1)
    np.testing.assert_allclose(width, 0.2 * root, rtol=0.03)


# ----------------------------------------------------------------------------
# No seam: the crop rectangle's border ring.

def test_border_ring_below_one_level(compile_counter):
  """Ones pasted into zeros: the ring of each crop rectangle stays below
  1/255 for feathers 0.5..100 and grows -100..100, with masks filling
  their crops, masks resized to their crops, a region past the image's
  edge."""
  h, w = 90, 120
  rng = np.random.default_rng(3)
  regions = [(5, 6, 45, 40), (50, 10, 110, 80), (-10, 50, 30, 100)]
  masks = [np.ones((34, 40), np.float32),          # fills its crop
           np.ones((35, 30), np.float32),          # resized to 70 x 60
           rng.random((50, 40)).astype(np.float32)]  # past the bottom edge
  segs = []
  for (x1, y1, x2, y2), mask in zip(regions, masks):
    crop = np.ones((1, y2 - y1, x2 - x1, 3), np.float32)
    segs.append(seg(crop, mask, (x1, y1, x2, y2)))
  image = np.zeros((1, h, w, 3), np.float32)
  compile_counter.clear()
  for feather in (0.5, 3, 20, 100):
    for grow in (-100, -25, 0, 100):
      out = np.asarray(segs_paste(image, ((h, w), segs), feather,
                                  feather_mode="relative", grow=grow))[0]
      for x1, y1, x2, y2 in regions:
        ring = np.zeros((h, w), bool)
        ring[max(y1, 0):y2, max(x1, 0):x2] = True
        ring[max(y1 + 1, 0):y2 - 1, max(x1 + 1, 0):x2 - 1] = False
        ring &= np.ones((h, w), bool)
        assert out[ring].max() < 1 / 255, (feather, grow, (x1, y1, x2, y2))
  assert len(compile_counter) == 1


# ----------------------------------------------------------------------------
# Programs.

def _small_case(seed=4):
  rng = np.random.default_rng(seed)
  image = rng.random((2, 48, 56, 3)).astype(np.float32)
  segs = ((48, 56), [
      seg(rng.random((1, 30, 26, 3)).astype(np.float32),
          _ellipse(30, 26, 15, 12, 10, 9), (3, 4, 29, 34)),
      seg(rng.random((2, 20, 24, 3)).astype(np.float32),
          _ellipse(24, 20, 10, 11, 9, 8), (30, 20, 54, 40))])
  return image, segs


def test_one_program_per_form_for_every_feather_and_grow(compile_counter):
  """Each form compiles once for all feathers and grows, and the two forms
  agree."""
  image, segs = _small_case()
  packed = pack_segs(segs, image.shape).strip_meta()
  settings = [(0, 0), (0.5, 3), (5, 0), (12.5, -40), (100, 100)]
  outs = {}
  for form in ("cpu", "accelerator"):
    compile_counter.clear()
    outs[form] = [np.asarray(paste_lib._paste_jit(
        image, packed, np.float32(feather), 200, None, False,
        np.float32(grow), **paste_lib.static_args(form, feather,
                                                  relative=True)))
                  for feather, grow in settings]
    assert len(compile_counter) == 1, form
  assert not np.array_equal(outs["cpu"][1], outs["cpu"][2])
  for cpu_out, acc_out in zip(outs["cpu"], outs["accelerator"]):
    np.testing.assert_allclose(cpu_out, acc_out, rtol=0, atol=2e-6)


def test_accelerator_program_is_straight_line():
  image, segs = _small_case()
  packed = pack_segs(segs, image.shape).strip_meta()
  spec = lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  fn = lambda im, p, f, g: paste(im, p, feather=f, grow=g,
                                 feather_mode="relative")
  text = jax.export.export(jax.jit(fn), platforms=["cuda"])(
      spec(image), jax.tree_util.tree_map(spec, packed), scalar,
      scalar).mlir_module()
  for op in ("stablehlo.while", "stablehlo.case", "stablehlo.if"):
    assert op not in text, op


def test_other_modes_unchanged():
  """The relative code is a static branch: "node" and "soft_edges" give the
  same bits with and without a zero `grow`, and their programs contain no
  `erf` (the relative blur's)."""
  image, segs = _small_case(6)
  packed = pack_segs(segs, image.shape).strip_meta()
  for form in ("cpu", "accelerator"):
    static = paste_lib.static_args(form, 5)
    old = paste_lib._paste_jit(image, packed, 5, 255, None, True, **static)
    new = paste(image, packed, feather=5, feather_mode="soft_edges", grow=0)
    if form == "accelerator":
      new = paste_lib._paste_jit(image, packed, 5, 255, None, True,
                                 np.float32(0), relative=False, **static)
    np.testing.assert_array_equal(np.asarray(old), np.asarray(new))
    text = paste_lib._paste_jit.lower(image, packed, 5, 255, None, False,
                                      **static).as_text()
    assert "erf" not in text
  relative_text = paste_lib._paste_jit.lower(
      image, packed, 5.0, 255, None, False, 0.0,
      **paste_lib.static_args("accelerator", 5, relative=True)).as_text()
  assert "erf" in relative_text


# ----------------------------------------------------------------------------
# Gradients.

def test_gradients_match_finite_differences():
  mask = _ellipse(40, 44, 20, 21, 13, 15)
  size = (jnp.int32(40), jnp.int32(44))
  probe = np.random.default_rng(7).random((40, 44)).astype(np.float32)

  @jax.jit
  def loss(feather, grow):
    return jnp.sum(relative.relative_weights(mask, size, feather, grow)
                   * probe)

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  for feather, grow in [(10.0, 0.0), (20.0, 15.0), (6.0, -25.0)]:
    grads = grad(feather, grow)
    for k, g in enumerate(grads):
      assert np.isfinite(g)
      eps = 0.1
      args = [feather, grow]
      up, down = list(args), list(args)
      up[k] += eps
      down[k] -= eps
      fd = (loss(*up) - loss(*down)) / (2 * eps)
      np.testing.assert_allclose(g, fd, rtol=0.03, atol=0.05,
                                 err_msg=f"{feather} {grow} arg {k}")


def test_gradients_through_the_paste_are_finite():
  """Through the accelerator form (the CPU form's relative part is the
  same function; its scan's gradient costs seconds more to compile)."""
  image, segs = _small_case(8)
  packed = pack_segs(segs, image.shape, max_segments=2).strip_meta()

  @jax.jit
  @functools.partial(jax.grad, argnums=(0, 1, 2, 3))
  def grads(image, feather, grow, alpha, packed):
    out = paste_lib.paste_core(image, packed, feather, alpha, None, False,
                               grow, form=paste_lib.ACCELERATOR,
                               relative=True)
    return jnp.sum(out ** 2)

  for feather in (0.0, 8.0):
    for g in grads(image, feather, -10.0, 180.0, packed):
      assert np.isfinite(np.asarray(g)).all()
  mask = jnp.asarray(_ellipse(30, 30, 15, 15, 9, 9))
  g = jax.grad(lambda m: jnp.sum(relative_blur_mask(m, 10.0, grow=5.0)))(mask)
  assert np.isfinite(np.asarray(g)).all()


# ----------------------------------------------------------------------------
# End to end, and the surfaces.

def test_segs_paste_against_float64_blend():
  rng = np.random.default_rng(9)
  h, w = 60, 70
  image = rng.random((2, h, w, 3)).astype(np.float32)
  regions = [(4, 5, 40, 45), (30, 20, 76, 62)]  # the second past the edge
  masks = [_ellipse(40, 36, 20, 18, 15, 13), _soft(42, 46, 1)]
  segs = [seg(rng.random((1, y2 - y1, x2 - x1, 3)).astype(np.float32), m,
              (x1, y1, x2, y2)) for (x1, y1, x2, y2), m in zip(regions, masks)]
  for feather, grow, alpha in [(12.5, 8, 200), (30, -15, 255)]:
    got = np.asarray(segs_paste(image, ((h, w), segs), feather, alpha,
                                feather_mode="relative", grow=grow))
    want = image.astype(np.float64)
    for s in segs:
      x1, y1, x2, y2 = s.crop_region
      wts = alpha / 255 * relative_reference(s.cropped_mask, feather, grow)
      crop = s.cropped_image[0].astype(np.float64)
      ys, xs = slice(y1, min(y2, h)), slice(x1, min(x2, w))
      k = wts[:ys.stop - y1, :xs.stop - x1, None]
      want[:, ys, xs] = (1 - k) * want[:, ys, xs] + k * crop[
          :ys.stop - y1, :xs.stop - x1]
    np.testing.assert_allclose(got, want, rtol=0, atol=3e-4)


def test_stream_mesh_and_per_image_match_segs_paste():
  image, segs = _small_case(10)
  kwargs = dict(feather=9, feather_mode="relative", grow=12)
  want = np.asarray(segs_paste(image, segs, **kwargs))
  streamed = np.concatenate(list(stream_segs_paste(
      image, segs, chunk=1, progress=False, **kwargs)))
  np.testing.assert_allclose(streamed, want, rtol=0, atol=1e-6)
  meshed = np.asarray(segs_paste(image, segs, mesh=frames_mesh(), **kwargs))
  np.testing.assert_allclose(meshed, want, rtol=0, atol=1e-6)
  # a SEGS per image: image 1 takes only the second SEG
  (size, items), first = segs, image[:1]
  per_image = np.asarray(segs_paste(image, [segs, (size, items[1:])],
                                    **kwargs))
  alone = np.asarray(segs_paste(image[1:], (size, items[1:]), **kwargs))
  np.testing.assert_allclose(per_image[1:], alone, rtol=0, atol=1e-6)
  np.testing.assert_allclose(
      per_image[:1], np.asarray(segs_paste(first, segs, **kwargs)), rtol=0,
      atol=1e-6)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(grow=101, feather_mode="relative"), ValueError, "^grow:"),
    (dict(grow=-100.5, feather_mode="relative"), ValueError, "^grow:"),
    (dict(grow=float("nan"), feather_mode="relative"), ValueError, "^grow:"),
    (dict(grow="5", feather_mode="relative"), TypeError, "^grow:"),
    (dict(grow=True, feather_mode="relative"), TypeError, "^grow:"),
    (dict(grow=5), ValueError, "^grow: only feather_mode='relative'"),
    (dict(grow=5, feather_mode="soft_edges"), ValueError, "^grow:"),
    (dict(feather=100.5, feather_mode="relative"), ValueError, "^feather:"),
    (dict(feather=-1, feather_mode="relative"), ValueError, "^feather:"),
    (dict(feather="3", feather_mode="relative"), TypeError, "^feather:"),
    (dict(feather=2.5), TypeError, "^feather:"),  # the node's is an int
    (dict(feather_mode="Relative"), ValueError, "^feather_mode:"),
    (dict(feather_mode=None), ValueError, "^feather_mode:"),
])
def test_bad_inputs_name_the_argument(kwargs, error, match):
  image, segs = _small_case()
  with pytest.raises(error, match=match):
    segs_paste(image, segs, **{"feather": 5, **kwargs})
  if "feather" not in kwargs and kwargs.get("feather_mode") == "relative":
    with pytest.raises(error, match=match):
      paste(image, pack_segs(segs, image.shape), feather=5, **kwargs)
    with pytest.raises(error, match=match):
      relative_blur_mask(np.ones((8, 8), np.float32), 5,
                         grow=kwargs["grow"])


def test_relative_blur_mask_bad_inputs():
  with pytest.raises(TypeError, match="^mask:"):
    relative_blur_mask(np.ones((8, 8), np.int32), 5)
  with pytest.raises(ValueError, match="^mask:"):
    relative_blur_mask(np.ones((8,), np.float32), 5)
  with pytest.raises(ValueError, match="^feather:"):
    relative_blur_mask(np.ones((8, 8), np.float32), 120)


def test_cli_relative_mode(tmp_path, capsys):
  from PIL import Image

  from segspaste_jax import cli, save_segs

  image, segs = _small_case(11)
  frame = np.round(image[:1] * 255) / 255  # what the PNG holds
  Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(
      tmp_path / "in.png")
  save_segs(tmp_path / "segs.npz", segs)
  argv = ["paste", "--image", str(tmp_path / "in.png"), "--segs",
          str(tmp_path / "segs.npz"), "--out", str(tmp_path / "out.png")]
  assert cli.main(argv + ["--feather-mode", "relative", "--feather", "7.5",
                          "--grow", "-5"]) == 0
  got = np.asarray(Image.open(tmp_path / "out.png"), np.float32) / 255
  want = np.asarray(segs_paste(frame, segs, 7.5, feather_mode="relative",
                               grow=-5))[0]
  np.testing.assert_allclose(got, want, rtol=0, atol=0.5 / 255 + 1e-6)
  capsys.readouterr()
  for flags, match in [(["--grow", "5"], "grow: only feather_mode"),
                       (["--feather-mode", "relative", "--grow", "101"],
                        "--grow: expected a number in -100..100"),
                       (["--feather", "2.5"], "feather: expected an integer")]:
    assert cli.main(argv + flags) == 2
    assert match in capsys.readouterr().err


def test_comfyui_nodes_take_grow():
  torch = pytest.importorskip("torch")
  from segspaste_jax import comfy

  image, segs = _small_case(12)
  want = np.asarray(segs_paste(image, segs, 20, 200, feather_mode="relative",
                               grow=-12))
  batch = comfy.SEGSPasteJAX().doit(torch.from_numpy(image), segs, 20, 200,
                                    feather_mode="relative", grow=-12)[0]
  np.testing.assert_allclose(batch.numpy(), want, rtol=0, atol=1e-6)
  lists = comfy.SEGSPasteJAXPerImage().doit(
      [torch.from_numpy(image)], [segs], [20], [200],
      feather_mode=["relative"], grow=[-12])[0]
  np.testing.assert_allclose(lists.numpy(), want, rtol=0, atol=1e-6)
  with pytest.raises(ValueError, match="^grow:"):
    comfy.SEGSPasteJAX().doit(torch.from_numpy(image), segs, 20, grow=5)
