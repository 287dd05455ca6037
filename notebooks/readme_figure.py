"""Draws docs/images/soft_edges.png: the node's seam beside soft edges.

The sample photo's face SEG with a mask that fills its crop (what a
box-shaped detection gives), pasted at feather 10 in both feather modes,
zoomed 3x at the crop's top-left corner. Run from the repository root:

    python notebooks/readme_figure.py
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from segspaste_jax import segs_paste
from segspaste_jax.sample import load_sample_image, sample_segs

OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "images",
                   "soft_edges.png")
FEATHER = 10
ZOOM = 3
VIEW = 72  # pixels of the photo on each side of the corner's view


def main() -> None:
  image = load_sample_image()
  size, segs = sample_segs(image)
  face = next(s for s in segs if s.label == "face")
  x1, y1, x2, y2 = face.crop_region
  box = face._replace(cropped_mask=np.ones((y2 - y1, x2 - x1), np.float32))
  panels = []
  for mode in ("node", "soft_edges"):
    out = np.asarray(segs_paste(image, (size, [box]), FEATHER,
                                feather_mode=mode))[0]
    top, left = max(y1 - VIEW // 3, 0), max(x1 - VIEW // 3, 0)
    view = out[top:top + VIEW, left:left + VIEW]
    pixels = Image.fromarray(np.round(view * 255).astype(np.uint8))
    pixels = pixels.resize((VIEW * ZOOM, VIEW * ZOOM), Image.Resampling.NEAREST)
    panel = Image.new("RGB", (pixels.width, pixels.height + 22), "white")
    panel.paste(pixels, (0, 22))
    ImageDraw.Draw(panel).text((6, 5), f'feather_mode="{mode}", feather '
                               f'{FEATHER}', fill="black")
    panels.append(panel)
  gap = 8
  figure = Image.new("RGB", (sum(p.width for p in panels) + gap,
                             panels[0].height), "white")
  figure.paste(panels[0], (0, 0))
  figure.paste(panels[1], (panels[0].width + gap, 0))
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  figure.save(OUT, optimize=True)
  print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
  main()
