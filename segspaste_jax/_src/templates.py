"""Five-point face templates: where aligned-face models expect the landmarks.

Each template is `[5, 2]` float32 `(x, y)` in the model's input pixels
(pixel centres at integer coordinates), in the order the common detectors
(RetinaFace, SCRFD) report them: the eye on the image's left, the eye on
the image's right, the nose tip, the mouth corner on the image's left, the
mouth corner on the image's right.

- `"arcface_112"`: the 112 x 112 template of insightface's recognition and
  swapping models (`arcface_src` in deepinsight/insightface@0b2958e,
  python-package/insightface/utils/face_align.py; its `norm_crop` maps the
  detector's five points onto it by a least-squares similarity).
- `"ffhq_512"`: the 512 x 512 template of FFHQ-aligned faces that GFPGAN
  and CodeFormer take (`face_template` with `template_3points=False` in
  xinntao/facexlib@05b5905, facexlib/utils/face_restoration_helper.py;
  facexlib scales it by `face_size / 512` for other sizes).

A template for another size of the same model family is the same points
scaled: `FACE_TEMPLATES["ffhq_512"] * (256 / 512)`. The values are numbers
(facts), written here in our own format.
"""

from __future__ import annotations

import types

import numpy as np


def _frozen(points) -> np.ndarray:
  a = np.asarray(points, np.float32)
  a.setflags(write=False)
  return a


FACE_TEMPLATES = types.MappingProxyType({
    "arcface_112": _frozen([(38.2946, 51.6963), (73.5318, 51.5014),
                            (56.0252, 71.7366), (41.5493, 92.3655),
                            (70.7299, 92.2041)]),
    "ffhq_512": _frozen([(192.98138, 239.94708), (318.90277, 240.1936),
                         (256.63416, 314.01935), (201.26117, 371.41043),
                         (313.08905, 371.15118)]),
})

# The square crop each template is made for.
TEMPLATE_SIZES = types.MappingProxyType({"arcface_112": (112, 112),
                                         "ffhq_512": (512, 512)})
