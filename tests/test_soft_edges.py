"""`feather_mode="soft_edges"`: no seam at the crop border, the node's
values inside.

A crop of ones pasted into zeros shows the effective mask itself. For a
mask that fills its crop, the node's feathering stays at 1 up to the crop's
edge (reflect padding mirrors the ones back): a hard step to 0 outside.
Soft edges must be 0 on the border ring, never step more than
1.5 / feather between neighbours, and equal the node's values from
2 * feather pixels inward; feather 0 changes nothing. Both modes share one
compiled program.
"""

import jax
import numpy as np
import pytest

import helpers
import reference
from helpers import seg
from segspaste_jax import pack_segs, paste, segs_paste
from segspaste_jax._src import paste as paste_lib

H, W = 140, 150
REGION = (10, 8, 136, 124)  # x1, y1, x2, y2: a 116 x 126 crop


def _pasted_mask(feather, alpha, mode, *, mask=None):
  """The effective mask of a full crop: ones pasted into zeros."""
  x1, y1, x2, y2 = REGION
  h, w = y2 - y1, x2 - x1
  mask = np.ones((h, w), np.float32) if mask is None else mask
  crop = np.ones((1, h, w, 3), np.float32)
  image = np.zeros((1, H, W, 3), np.float32)
  out = np.asarray(segs_paste(image, ((H, W), [seg(crop, mask, REGION)]),
                              feather, alpha, feather_mode=mode))
  return out[0, y1:y2, x1:x2, 0], out[0]


@pytest.mark.parametrize("feather,alpha", [(1, 255), (3, 140), (5, 255),
                                           (10, 140), (20, 255)])
def test_full_mask_ring_neighbours_interior(feather, alpha):
  soft, whole = _pasted_mask(feather, alpha, "soft_edges")
  node, _ = _pasted_mask(feather, alpha, "node")
  x1, y1, x2, y2 = REGION
  # the node's seam: full strength at the crop's edge
  np.testing.assert_allclose(node[0], alpha / 255, atol=1e-5)
  # soft: zero on the border ring, and nothing outside the crop region
  assert soft[0].max() == soft[-1].max() == 0
  assert soft[:, 0].max() == soft[:, -1].max() == 0
  outside = np.ones((H, W), bool)
  outside[y1:y2, x1:x2] = False
  assert whole[outside].max() == 0
  # no step between neighbours larger than 1.5 / feather
  step = max(np.abs(np.diff(soft, axis=0)).max(),
             np.abs(np.diff(soft, axis=1)).max())
  assert step <= 1.5 / feather
  # from 2 * feather pixels inward: the node's value (alpha / 255)
  d = 2 * feather
  np.testing.assert_allclose(soft[d:-d, d:-d], node[d:-d, d:-d], rtol=0,
                             atol=1e-6)
  np.testing.assert_allclose(soft[d:-d, d:-d], alpha / 255, atol=1e-5)
  # and it ramps up monotonically from the edge along the middle row
  row = soft[soft.shape[0] // 2, :soft.shape[1] // 2]
  assert d < len(row)
  assert (np.diff(row) >= -1e-7).all() and row[d] > row[1] > 0


def test_feather_zero_changes_nothing():
  rng = np.random.default_rng(0)
  mask = rng.random((116, 126)).astype(np.float32)
  soft, _ = _pasted_mask(0, 255, "soft_edges", mask=mask)
  node, _ = _pasted_mask(0, 255, "node", mask=mask)
  np.testing.assert_array_equal(soft, node)


@pytest.mark.parametrize("seed", range(3))  # and a quarter of test_random_case
def test_random_cases_against_reference(seed):
  case = helpers.random_case(7000 + seed)
  kwargs = dict(case.kwargs(), feather_mode="soft_edges")
  want = reference.segs_paste(case.image, case.segs, **kwargs)
  got = np.asarray(segs_paste(case.image, case.segs, **kwargs))
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("form", ["cpu", "accelerator"])
def test_both_forms_one_program_for_both_modes(form, compile_counter):
  case = next(c for c in map(helpers.random_case, range(7100, 7200))
              if len(c.segs[1]) >= 3 and c.ref_image_opt is None)
  packed = pack_segs(case.segs, case.image.shape).strip_meta()
  run = jax.jit(paste_lib.paste_core, static_argnames=("form", "rgba_mode"))
  before = len(compile_counter)
  for mode in ("node", "soft_edges"):
    got = np.asarray(run(case.image, packed, 5, 255, None,
                         mode == "soft_edges",
                         **paste_lib.static_args(form, 5)))
    want = reference.segs_paste(case.image, case.segs, 5, 255,
                                feather_mode=mode)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  assert len(compile_counter) - before == 1


def test_paste_modes_share_one_program(compile_counter):
  image = np.zeros((1, H, W, 3), np.float32)
  x1, y1, x2, y2 = REGION
  segs = ((H, W), [seg(np.ones((1, y2 - y1, x2 - x1, 3), np.float32),
                       np.ones((y2 - y1, x2 - x1), np.float32), REGION)])
  packed = jax.device_put(pack_segs(segs, image.shape))
  image = jax.device_put(image)
  paste(image, packed, feather=7).block_until_ready()
  before = len(compile_counter)
  out = paste(image, packed, feather=7, feather_mode="soft_edges")
  assert len(compile_counter) == before
  assert float(out[0, y1, x1 + 20, 0]) == 0.0
