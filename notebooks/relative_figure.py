"""Draws docs/images/relative_feather.png: the node's feather on a large face
against `feather_mode="relative"`.

The sample photo at 2048 x 2048, so that the face's SEG is 512 x 640 px, its
mask made hard (a segmentation model's, thresholded at 0.5) and its crop
made too warm (the sample's effect, then red up and blue down 12 %), as a
face refined a bit too warm comes back. Pasted with the node's
feathering at feather 5 (the default) and 20 (its widest useful blur:
sigma 10), and in the relative mode at feather 10 (a ramp 10 % of the
square root of the mask's area wide, about 43 px here); top row the
pictures, bottom row the weights, both cut at the mask's left edge at
the cheek and enlarged 2x.
Run from the repository root:

    python notebooks/relative_figure.py
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from segspaste_jax import segs_paste
from segspaste_jax.sample import load_sample_image, sample_segs

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "images",
                   "relative_feather.png")
SIDE = 2048
VIEW = 128  # photo pixels on each side of a view
ZOOM = 2
MODES = (("node", 5, 'node, feather 5 (default)'),
         ("node", 20, 'node, feather 20 (its widest)'),
         ("relative", 10, 'relative, feather 10 (%)'))


def main() -> None:
  image = load_sample_image(SIDE)
  size, segs = sample_segs(image)
  face = next(s for s in segs if s.label == "face")
  x1, y1, x2, y2 = face.crop_region
  warm = np.clip(face.cropped_image * np.float32([1.12, 1.0, 0.88]), 0, 1)
  hard = face._replace(cropped_mask=(face.cropped_mask > 0.5).astype(
      np.float32), cropped_image=warm)
  ones = hard._replace(cropped_image=np.ones_like(hard.cropped_image))
  # the view: centred on the mask's left edge, at the cheek
  row = (y2 - y1) * 5 // 8
  edge = x1 + int(np.argmax(hard.cropped_mask[row] > 0.5))
  top, left = y1 + row - VIEW // 2, edge - VIEW // 2
  view = np.s_[0, top:top + VIEW, left:left + VIEW]
  columns = []
  for mode, feather, title in MODES:
    picture = np.asarray(segs_paste(image, (size, [hard]), feather,
                                    feather_mode=mode))[view]
    weights = np.asarray(segs_paste(np.zeros_like(image), (size, [ones]),
                                    feather, feather_mode=mode))[view]
    tiles = []
    for pixels in (picture, weights):
      tile = Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(
          np.uint8)).resize((VIEW * ZOOM, VIEW * ZOOM),
                            Image.Resampling.NEAREST)
      tiles.append(tile)
    column = Image.new("RGB", (VIEW * ZOOM, 2 * VIEW * ZOOM + 26), "white")
    column.paste(tiles[0], (0, 22))
    column.paste(tiles[1], (0, 26 + VIEW * ZOOM))
    ImageDraw.Draw(column).text((6, 5), title, fill="black")
    columns.append(column)
  gap = 8
  figure = Image.new("RGB", (len(columns) * (columns[0].width + gap) - gap,
                             columns[0].height), "white")
  for k, column in enumerate(columns):
    figure.paste(column, (k * (column.width + gap), 0))
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  figure.save(OUT, optimize=True)
  print("wrote", os.path.normpath(OUT), f"(face {x2 - x1}x{y2 - y1} px)")


if __name__ == "__main__":
  main()
