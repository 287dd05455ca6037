"""The embedded sample: a photograph and hand-made SEGS over parts of it.

The SEGS stand in for what a detector plus a detailer would produce: each
segment's crop is the photo's own pixels "re-detailed" by a small numpy
effect (sharpened, colour-shifted, posterised, sketched), so that the paste
is plain to see, and each mask is a soft ellipse inscribed in the crop.
Used by the CLI's `demo`, the quickstart notebook and the tests.
"""

from __future__ import annotations

import importlib.resources

import numpy as np
from PIL import Image

from segspaste_jax import SEG

SAMPLE_SIZE = 512


# ----------------------------------------------------------------------------
# "Re-detailing" effects: `[F, h, w, 3]` float32 in [0, 1] in, same out.

def _box_blur(x: np.ndarray, radius: int) -> np.ndarray:
  """Mean over a `(2r + 1)^2` window, edges repeated; `[F, h, w, C]`."""
  k = 2 * radius + 1
  padded = np.pad(x, [(0, 0), (radius, radius), (radius, radius), (0, 0)],
                  mode="edge")
  rows = np.cumsum(padded, axis=1, dtype=np.float64)
  rows = np.concatenate([rows[:, k - 1:k], rows[:, k:] - rows[:, :-k]], axis=1)
  cols = np.cumsum(rows, axis=2)
  cols = np.concatenate([cols[:, :, k - 1:k], cols[:, :, k:] - cols[:, :, :-k]],
                        axis=2)
  return (cols / (k * k)).astype(x.dtype)


def _luma(x: np.ndarray) -> np.ndarray:
  return x @ np.array([0.299, 0.587, 0.114], x.dtype)


def _sharpen_warm(x: np.ndarray) -> np.ndarray:
  """Unsharp mask, more contrast and a warm tint: a "detailed" face."""
  sharp = x + 1.2 * (x - _box_blur(x, 2))
  sharp = 0.5 + 1.15 * (sharp - 0.5)
  return np.clip(sharp * np.array([1.1, 1.0, 0.8], x.dtype), 0, 1)


def _channel_roll(x: np.ndarray) -> np.ndarray:
  """RGB -> BRG: red turns green, blue turns red."""
  return x[..., [2, 0, 1]]


def _posterise(x: np.ndarray) -> np.ndarray:
  """Three levels per channel after a saturation boost: a flat, poster look."""
  grey = _luma(x)[..., None]
  vivid = np.clip(grey + 1.6 * (x - grey), 0, 1)
  return np.round(vivid * 2) / 2


def _sketch(x: np.ndarray) -> np.ndarray:
  """Dark pencil lines on paper where the luminance changes."""
  grey = _box_blur(_luma(x)[..., None], 1)[..., 0]
  gy = np.abs(np.diff(grey, axis=1, append=grey[:, -1:]))
  gx = np.abs(np.diff(grey, axis=2, append=grey[:, :, -1:]))
  ink = np.clip(1 - 6 * (gx + gy), 0, 1)
  paper = np.array([0.97, 0.94, 0.86], x.dtype)
  return (ink[..., None] * paper).astype(x.dtype)


# label, region (x1, y1, x2, y2) on the 512 x 512 photo, confidence, effect
_PARTS = (
    ("flag", (0, 0, 96, 256), 0.81, _channel_roll),
    ("face", (160, 40, 288, 200), 0.97, _sharpen_warm),
    ("patch", (128, 340, 216, 428), 0.88, _posterise),
    ("helmet", (272, 336, 512, 512), 0.93, _sketch),
)


def soft_ellipse(height: int, width: int, softness: float = 0.3) -> np.ndarray:
  """An ellipse inscribed in a `height x width` box, 1 inside, soft edged.

  Args:
    height: mask height, >= 1.
    width: mask width, >= 1.
    softness: width of the fall-off from 1 to 0, as a fraction of the radius.

  Returns:
    `[height, width]` float32 in [0, 1]: 1 within `1 - softness` of the
    radius, falling linearly to 0 at the ellipse's edge and outside it.
  """
  yy = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height * 2 - 1
  xx = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width * 2 - 1
  radius = np.sqrt(yy ** 2 + xx ** 2)
  return np.clip((1 - radius) / softness, 0, 1).astype(np.float32)


def load_sample_image(size: int | None = None) -> np.ndarray:
  """Loads the embedded photograph (astronaut Eileen Collins, public domain).

  Args:
    size: optional side to resize to (Pillow LANCZOS); default 512.

  Returns:
    `[1, size, size, 3]` float32 in [0, 1].
  """
  resource = importlib.resources.files("segspaste_jax") / "astronaut.png"
  with resource.open("rb") as f, Image.open(f) as im:
    im = im.convert("RGB")
    if size is not None and size != im.width:
      if size < 1:
        raise ValueError(f"size: expected a positive side, got {size}")
      im = im.resize((size, size), Image.Resampling.LANCZOS)
    return (np.asarray(im, np.float32) / 255)[None]


def sample_segs(image) -> tuple:
  """Builds SEGS over the flag, face, mission patch and helmet of the photo.

  Regions are placed for the sample photo (`load_sample_image`) and scaled
  to the image's size; each crop is the image's own pixels under a visible
  numpy effect, one crop frame per image frame, with a soft elliptical mask.

  Args:
    image: `[N, H, W, 3]` float array in [0, 1] (numpy, torch or JAX), H and
      W at least 16.

  Returns:
    SEGS `((H, W), [SEG, ...])` with 4 segments labelled "flag", "face",
    "patch" and "helmet" in that order; crops `[N, h, w, 3]` and masks
    `[h, w]`, numpy float32.
  """
  image = np.asarray(image, np.float32)
  if image.ndim != 4 or image.shape[3] != 3 or min(image.shape[1:3]) < 16:
    raise ValueError("image: expected [N, H, W, 3] with H, W >= 16, got "
                     f"shape {image.shape}")
  _, h, w, _ = image.shape
  sy, sx = h / SAMPLE_SIZE, w / SAMPLE_SIZE
  segs = []
  for label, (x1, y1, x2, y2), confidence, effect in _PARTS:
    x1, x2 = round(x1 * sx), round(x2 * sx)
    y1, y2 = round(y1 * sy), round(y2 * sy)
    crop = effect(image[:, y1:y2, x1:x2])
    mask = soft_ellipse(y2 - y1, x2 - x1)
    dx, dy = (x2 - x1) // 8, (y2 - y1) // 8
    segs.append(SEG(cropped_image=crop.astype(np.float32), cropped_mask=mask,
                    confidence=confidence, crop_region=(x1, y1, x2, y2),
                    bbox=(x1 + dx, y1 + dy, x2 - dx, y2 - dy), label=label))
  return (h, w), segs
