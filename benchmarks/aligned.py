"""Aligned faces: crop to the 512 template and paste back, against OpenCV.

    python -m benchmarks.aligned [--repeats 5] [--frames 16] [--faces 4]

16 frames of 1024 x 1024 RGB float32 and 4 faces of 250-330 px, rotated by
up to 30 degrees, aligned to facexlib's 512 x 512 template
(`similarity_from_landmarks` on landmarks placed from known transforms):
`crop_aligned` to `[4, 16, 512, 512, 3]`, and `paste_aligned` of those
crops back with the default edge (facexlib's: feather 4, grow -5). Each
row is one compiled program for the whole batch: the first call (trace,
compile, run) and the median of warm calls, device-resident inputs,
`block_until_ready` included; rows interleaved round by round.
"per-frame" rows give every frame its own matrices (`[S, N, 2, 3]`, faces
that move in a video).

The peer (opencv-python-headless, all threads): what a capable user writes
by hand. Crop: `cv2.warpAffine` per face and frame (what facexlib's
`align_warp_face` does). Paste, facexlib's steps (`paste_faces_to_input_
image`): invert the matrix, warp the restored face and a mask of ones,
erode 2 x 2, `w_edge = int(sqrt(area)) // 20`, erode `2 w_edge`,
`GaussianBlur(2 w_edge + 1)`, blend; two ways: over the whole frame as
facexlib does, and only in the face's bounding window (as FaceFusion's
`paste_back` does, the faster way a capable user would choose). Results
are float32 throughout (facexlib casts to uint8 at the end).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import cv2
import jax
import numpy as np

import segspaste_jax

cv2.setNumThreads(os.cpu_count() or 1)
SIZE = 512


def _workload(frames: int, faces: int, side: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  image = rng.random((frames, side, side, 3), dtype=np.float32)
  template = segspaste_jax.FACE_TEMPLATES["ffhq_512"].astype(np.float64)
  points = []
  for k in range(faces):
    scale = rng.uniform(250, 330) / SIZE  # crop to image
    theta = np.deg2rad(rng.uniform(-30, 30))
    rot = scale * np.array([[np.cos(theta), -np.sin(theta)],
                            [np.sin(theta), np.cos(theta)]])
    centre = np.array([side / 4 + (k % 2) * side / 2,
                       side / 4 + (k // 2 % 2) * side / 2])
    centre += rng.uniform(-40, 40, 2)
    pts = (template - SIZE / 2) @ rot.T + centre
    points.append(pts + rng.normal(0, 1.0, pts.shape))
  matrices = np.asarray(segspaste_jax.similarity_from_landmarks(
      np.array(points), template))
  # the same faces drifting a few pixels from frame to frame
  drift = rng.normal(0, 2.0, (faces, frames, 2)).cumsum(axis=1)
  per_frame = np.repeat(matrices[:, None], frames, axis=1)
  per_frame[..., 2] += drift.astype(np.float32)
  return image, matrices, per_frame


def _cv_crop(image, matrices):
  out = np.empty((len(matrices), len(image), SIZE, SIZE, 3), np.float32)
  for s, m in enumerate(matrices):
    for n, frame in enumerate(image):
      out[s, n] = cv2.warpAffine(frame, m, (SIZE, SIZE))
  return out


def _cv_paste(image, crops, matrices, windowed: bool):
  """facexlib's paste-back steps, per face and frame."""
  out = image.copy()
  _, hh, ww, _ = image.shape
  ones = np.ones((SIZE, SIZE), np.float32)
  corners = np.array([[-0.5, -0.5, 1], [SIZE - 0.5, -0.5, 1],
                      [-0.5, SIZE - 0.5, 1], [SIZE - 0.5, SIZE - 0.5, 1]])
  for s, m in enumerate(matrices):
    inverse = cv2.invertAffineTransform(m)
    if windowed:
      xy = corners @ inverse.T
      x0, y0 = np.maximum(np.floor(xy.min(0)).astype(int), 0)
      x1 = min(int(np.ceil(xy[:, 0].max())) + 1, ww)
      y1 = min(int(np.ceil(xy[:, 1].max())) + 1, hh)
      inverse = inverse.copy()
      inverse[:, 2] -= (x0, y0)
    else:
      x0, y0, x1, y1 = 0, 0, ww, hh
    dsize = (x1 - x0, y1 - y0)
    mask = cv2.warpAffine(ones, inverse, dsize)
    mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    w_edge = int(mask.sum() ** 0.5) // 20
    soft = cv2.erode(mask, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
    soft = cv2.GaussianBlur(soft, (2 * w_edge + 1, 2 * w_edge + 1), 0)
    soft, mask = soft[..., None], mask[..., None]
    for n in range(len(image)):
      face = cv2.warpAffine(crops[s, n], inverse, dsize)
      region = out[n, y0:y1, x0:x1]
      region[...] = soft * (mask * face) + (1 - soft) * region
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--frames", type=int, default=16)
  parser.add_argument("--faces", type=int, default=4)
  parser.add_argument("--side", type=int, default=1024)
  args = parser.parse_args(argv)

  image_np, matrices, per_frame = _workload(args.frames, args.faces,
                                            args.side)
  image = jax.device_put(image_np)
  shared, moving = jax.device_put(matrices), jax.device_put(per_frame)
  crops = segspaste_jax.crop_aligned(image, shared, size=(SIZE, SIZE))
  crops_np = np.asarray(crops)
  window = segspaste_jax.aligned_window(per_frame, (SIZE, SIZE),
                                        image.shape[1:3])

  @jax.jit
  def round_trip(image, matrices):
    faces = segspaste_jax.crop_aligned(image, matrices, size=(SIZE, SIZE))
    edited = 0.9 * faces + 0.05  # the "model"
    return segspaste_jax.paste_aligned(image, edited, matrices,
                                       window=window)

  cv_crop = "OpenCV crop (warpAffine per face and frame)"
  cv_paste = "OpenCV paste, facexlib's steps, face window"
  rows = {  # name: (function, what OpenCV's best does of it)
      "crop_aligned": (lambda: segspaste_jax.crop_aligned(
          image, shared, size=(SIZE, SIZE)), "crop"),
      "crop_aligned, per-frame": (lambda: segspaste_jax.crop_aligned(
          image, moving, size=(SIZE, SIZE)), "crop"),
      "paste_aligned": (lambda: segspaste_jax.paste_aligned(
          image, crops, shared), "paste"),
      "paste_aligned, per-frame": (lambda: segspaste_jax.paste_aligned(
          image, crops, moving, window=window), "paste"),
      "crop_aligned, then paste_aligned (two calls)": (
          lambda: segspaste_jax.paste_aligned(
              image, segspaste_jax.crop_aligned(image, shared,
                                                size=(SIZE, SIZE)),
              shared), "both"),
      "crop + model + paste, one jit": (
          lambda: round_trip(image, shared), "both"),
      cv_crop: (lambda: _cv_crop(image_np, matrices), "crop"),
      "OpenCV paste, facexlib's steps, whole frame": (
          lambda: _cv_paste(image_np, crops_np, matrices, False), "paste"),
      cv_paste: (lambda: _cv_paste(image_np, crops_np, matrices, True),
                 "paste"),
  }
  first, warm = {}, {k: [] for k in rows}
  for name, (fn, _) in rows.items():
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first[name] = time.perf_counter() - start
  for _ in range(args.repeats):
    for name, (fn, _) in rows.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      warm[name].append(time.perf_counter() - start)
  median = {k: statistics.median(v) for k, v in warm.items()}
  best = {"crop": median[cv_crop], "paste": median[cv_paste]}
  best["both"] = best["crop"] + best["paste"]

  print(f"{args.frames} frames of {args.side} x {args.side}, {args.faces} "
        f"faces at {SIZE} x {SIZE}, window {window}; jax "
        f"{jax.__version__} on {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs; seconds, median of {args.repeats}")
  print()
  print("| step | first call | warm | warm / OpenCV's best |")
  print("|---|---|---|---|")
  for name, (_, kind) in rows.items():
    print(f"| {name} | {first[name]:.2f} | {median[name]:.3f} | "
          f"{median[name] / best[kind]:.2f} |")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
