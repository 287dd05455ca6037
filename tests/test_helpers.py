"""The test helpers draw the same cases whatever is installed.

`helpers.random_case` turns some fields into torch tensors where torch is
installed; the draws must not depend on that, or the two CI environments
(with and without torch) would test different cases and a failure in one
could not be reproduced in the other. Each subprocess here imports the
helpers with torch blocked, or with a stand-in torch, and prints a
fingerprint of the cases' values and shapes.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # seconds to a minute each (see pyproject.toml)

TESTS = os.path.dirname(os.path.abspath(__file__))

_FINGERPRINT = r"""
import hashlib, json, sys, types
import numpy as np
mode = sys.argv[1]
if mode == "without":
  sys.modules["torch"] = None  # `import torch` raises ImportError
else:
  class Tensor:
    def __init__(self, array):
      self.array = array
  sys.modules["torch"] = types.SimpleNamespace(from_numpy=Tensor,
                                               Tensor=Tensor)
import helpers

digest, tensors = hashlib.sha256(), 0
def add(x):
  global tensors
  if x is None:
    digest.update(b"none")
    return
  if hasattr(x, "array"):
    tensors += 1
    x = x.array
  x = np.ascontiguousarray(x)
  digest.update(repr((x.shape, str(x.dtype))).encode() + x.tobytes())
for seed in [*range(40), *range(5000, 5060)]:
  for node_domain in (False, True):
    case = helpers.random_case(seed, node_domain=node_domain)
    add(case.image)
    add(case.ref_image_opt)
    digest.update(repr((case.segs[0], case.feather, case.alpha,
                        case.feather_mode)).encode())
    for seg in case.segs[1]:
      add(seg.cropped_image)
      add(seg.cropped_mask)
      digest.update(repr((seg.confidence, seg.crop_region, seg.bbox,
                          seg.label)).encode())
print(json.dumps([digest.hexdigest(), tensors]))
"""


def _fingerprint(mode: str):
  out = subprocess.run([sys.executable, "-c", _FINGERPRINT, mode], cwd=TESTS,
                       check=True, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": TESTS + os.pathsep
                            + os.environ.get("PYTHONPATH", "")})
  return json.loads(out.stdout)


def test_random_cases_do_not_depend_on_torch():
  without, with_torch = _fingerprint("without"), _fingerprint("with")
  assert without[1] == 0
  assert with_torch[1] > 50  # the stand-in torch was used for many fields
  assert without[0] == with_torch[0]
