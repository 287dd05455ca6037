"""What the compiled paste contains, and how many programs it takes.

The accelerator program is lowered here, on a CPU, with `jax.export` for
CUDA and TPU, and read: straight-line code (no `while`, `case` or `if`), the
masks of all segments feathered by batched matrix products at full
precision, one in-place window update per segment slot. Feather sweeps
count compiles with `jax.monitoring` (the `compile_counter` fixture).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import helpers
from helpers import seg
import reference
from segspaste_jax import pack_segs, paste, segs_paste
from segspaste_jax._src import cpu as cpu_lib
from segspaste_jax._src import paste as paste_lib

N, H, W, C = 2, 96, 112, 3


def _segs(rng, count=3, n=N):
  return helpers.random_segs(rng, (H, W), n=n, count=count, sides=(30, 69),
                             origins=(-10, 20), channels=C, label="face")


def _exported_text(platform: str, *, ref: bool = False, slots: int = 8):
  rng = np.random.default_rng(0)
  packed = pack_segs(_segs(rng), (N, H, W, C), max_segments=slots,
                     with_crops=not ref).strip_meta()
  spec = lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
  image = jax.ShapeDtypeStruct((N, H, W, C), jnp.float32)
  args = [image, jax.tree_util.tree_map(spec, packed),
          jax.ShapeDtypeStruct((), jnp.int32)]
  if ref:
    fn = lambda im, p, f, r: paste(im, p, feather=f, alpha=200, ref_image=r)
    args.append(image)
  else:
    fn = lambda im, p, f: paste(im, p, feather=f, alpha=200)
  exported = jax.export.export(jax.jit(fn), platforms=[platform])(*args)
  return exported.mlir_module()


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
@pytest.mark.parametrize("ref", [False, True])
def test_accelerator_program_is_straight_line(platform, ref):
  text = _exported_text(platform, ref=ref)
  for op in ("stablehlo.while", "stablehlo.case", "stablehlo.if"):
    assert op not in text, op
  # the segments' masks: batched matrix products at full precision
  dots = re.findall(r"stablehlo\.dot_general.*", text)
  assert dots and all("HIGHEST" in d for d in dots)
  assert all("batching_dims" in d for d in dots)
  # one window written back per segment slot, in order
  assert text.count("stablehlo.dynamic_update_slice") == 8


def test_segment_slots_set_the_window_updates():
  assert _exported_text("cuda", slots=16).count(
      "stablehlo.dynamic_update_slice") == 16


def test_cpu_program_keeps_its_branches():
  """The CPU form (a concrete CPU image) is the scan with real branches."""
  rng = np.random.default_rng(1)
  packed = pack_segs(_segs(rng), (N, H, W, C)).strip_meta()
  image = np.zeros((N, H, W, C), np.float32)
  text = paste_lib._paste_jit.lower(
      image, packed, 5, 255, None,
      **paste_lib.static_args("cpu", 5)).as_text()
  assert "stablehlo.while" in text and "stablehlo.case" in text


@pytest.mark.slow
def test_feather_sweep_compiles_few_programs(compile_counter):
  """`segs_paste` over feathers 0..100 on one layout: at most 5 programs
  on this CPU (one per radius bucket), each feather against the reference."""
  rng = np.random.default_rng(2)
  image = rng.random((1, H, W, C)).astype(np.float32)
  segs = _segs(rng, n=1)
  segs[1].append(seg(rng.random((1, 20, 90, C)).astype(np.float32),
                     np.ones((20, 90), np.float32), (5, 60, 95, 80)))
  compile_counter.clear()
  for feather in range(101):
    got = np.asarray(segs_paste(image, segs, feather=feather, alpha=200))
    want = reference.segs_paste(image, segs, feather=feather, alpha=200)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5,
                               err_msg=f"feather {feather}")
  assert 1 <= len(compile_counter) <= len(cpu_lib.RADIUS_BUCKETS)


def test_accelerator_form_one_program_for_every_feather(compile_counter):
  rng = np.random.default_rng(3)
  image = rng.random((N, H, W, C)).astype(np.float32)
  segs = _segs(rng)
  packed = pack_segs(segs, image.shape).strip_meta()
  static = paste_lib.static_args("accelerator", 0)
  compile_counter.clear()
  for feather in range(0, 101, 4):
    got = np.asarray(paste_lib._paste_jit(image, packed, feather, 255, None,
                                          **static))
    if feather % 20 == 0:
      want = reference.segs_paste(image, segs, feather=feather)
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  assert len(compile_counter) == 1


def test_paste_under_jit_takes_traced_feather():
  rng = np.random.default_rng(4)
  case = helpers.Case(rng.random((N, H, W, C)).astype(np.float32),
                    _segs(rng), 0, 255)
  packed = jax.device_put(pack_segs(case.segs, case.image.shape))
  jitted = jax.jit(lambda im, f: paste(im, packed, feather=f))
  for feather in (0, 6, 33):
    want = reference.segs_paste(case.image, case.segs, feather=feather)
    np.testing.assert_allclose(np.asarray(jitted(case.image, feather)), want,
                               rtol=0, atol=1e-5)
