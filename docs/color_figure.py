"""Draws docs/images/color_match.png: a tinted face pasted with each method.

The sample photo's face, cut at its crop region and tinted the way a
detailer sometimes returns it (warmer, brighter, flatter), pasted back at
feather 10 by the node's paste (`color_match="none"`) and by each colour
method, enlarged 2x around the face. Run from the repository root:

    python docs/color_figure.py
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from segspaste_jax import SEG, segs_paste
from segspaste_jax.sample import load_sample_image

OUT = os.path.join(os.path.dirname(__file__), "images", "color_match.png")
REGION = (160, 40, 288, 200)  # the sample's face crop region, x1 y1 x2 y2
FEATHER = 10
ZOOM = 2
MARGIN = 16  # pixels of the photo around the crop region


def tinted(crop: np.ndarray) -> np.ndarray:
  """Warmer, brighter and flatter: what a refined face sometimes is."""
  mean = crop.mean(axis=(-3, -2), keepdims=True)
  out = mean + 0.8 * (crop - mean)
  return np.clip(out * [1.18, 1.04, 0.82] + 0.06, 0, 1).astype(np.float32)


def face_mask(h: int, w: int) -> np.ndarray:
  """A soft ellipse, about where a face parser's mask would be."""
  yy, xx = np.mgrid[0:h, 0:w]
  r2 = ((yy - 0.5 * h) / (0.42 * h)) ** 2 + ((xx - 0.5 * w) / (0.4 * w)) ** 2
  return np.clip(3.0 * (1 - r2), 0, 1).astype(np.float32)


def main() -> None:
  image = load_sample_image()
  x1, y1, x2, y2 = REGION
  crop = tinted(image[:, y1:y2, x1:x2])
  seg = SEG(crop, face_mask(y2 - y1, x2 - x1), 0.9, REGION, REGION, "face")
  segs = (image.shape[1:3], [seg])
  panels = [("original", image[0])]
  for method in ("none", "lowfreq", "rct", "mkl"):
    out = np.asarray(segs_paste(image, segs, FEATHER, color_match=method))
    label = "node's paste" if method == "none" else f'"{method}"'
    panels.append((label, out[0]))
  top, left = max(y1 - MARGIN, 0), max(x1 - MARGIN, 0)
  tiles = []
  for label, picture in panels:
    view = picture[top:y2 + MARGIN, left:x2 + MARGIN]
    pixels = Image.fromarray(np.round(view * 255).astype(np.uint8))
    pixels = pixels.resize((pixels.width * ZOOM, pixels.height * ZOOM),
                           Image.Resampling.LANCZOS)
    tile = Image.new("RGB", (pixels.width, pixels.height + 22), "white")
    tile.paste(pixels, (0, 22))
    ImageDraw.Draw(tile).text((6, 5), label, fill="black")
    tiles.append(tile)
  gap = 8
  figure = Image.new("RGB", (sum(t.width for t in tiles)
                             + gap * (len(tiles) - 1), tiles[0].height),
                     "white")
  for i, tile in enumerate(tiles):
    figure.paste(tile, (i * (tile.width + gap), 0))
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  figure.save(OUT, optimize=True)
  print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
  main()
