"""segs_paste against a second oracle: the node's loops re-stated in torch.

`benchmarks/node_baseline.py` does what the node does the way the node does
it (torch float32, a 2-D convolution blur, in-place blends, the node's own
crashes). On every random case the node can run, the pictures must agree.
Cases where the node crashes (single-frame crops for several frames, ...) or
wraps around (negative origins) are the library's documented differences
and are left to test_against_reference.py.
"""

import os
import sys

import numpy as np
import pytest

import cases
from segspaste_jax import segs_paste

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.node_baseline import node_segs_paste  # noqa: E402


def _node_can_run(case) -> bool:
  n = case.image.shape[0]
  for seg in case.segs[1]:
    if min(seg.crop_region[:2]) < 0:
      return False  # the node wraps negative origins around
    crop = seg.cropped_image
    if case.ref_image_opt is None and crop is not None and len(crop) < n:
      return False  # the node raises IndexError
  return True


@pytest.mark.parametrize("seed", range(60))
def test_matches_node_loops(seed):
  case = cases.random_case(5000 + seed)
  if not _node_can_run(case):
    pytest.skip("outside what the node runs")
  if case.feather_mode != "node":
    pytest.skip("soft edges: not the node's")
  kwargs = dict(case.kwargs(), feather_mode=None)
  del kwargs["feather_mode"]
  # today's node pastes nothing into 1-channel images (a regression the
  # library does not follow: it keeps the seed's blend there)
  rules = "seed" if case.image.shape[-1] == 1 else "today"
  expected = node_segs_paste(case.image, case.segs, **kwargs,
                             rules=rules).numpy()
  got = np.asarray(segs_paste(case.image, case.segs, **case.kwargs()))
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
