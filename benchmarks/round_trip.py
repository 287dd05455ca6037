"""The detailer's round trip at the model's resolution, on W2.

    python -m benchmarks.round_trip [--size 512] [--repeats 5]

W2's 16 frames of 1024 x 1024 and its 8 regions (192-320 px) are cut to
`size x size` (`crop_segs(..., size=..., fit="contain")`, Lanczos 3),
passed through an identity "model", brought back to the regions' sizes
(`resize_to_regions`), packed (`make_packed_segs`, the regions' own soft
masks) and pasted with feather 5: each step alone and the whole chain in
one `jax.jit`, also with `detail_segs` doing the first three steps a crop
at a time, plus `jax.image.scale_and_translate` doing the first step's
resampling on the same bucket windows, for scale. Every row is its own
program: the first call (trace, compile, run) and the median of the warm
calls, on device-resident inputs, `block_until_ready` included.

The two resamplings are also timed in their dense matrix form (every
output reading the whole bucket row, what 0.4.0 did everywhere) beside
the form `crop_segs` and `resize_to_regions` pick (banded where it pays,
see `segspaste_jax._src.model_size._form`), in the same run.

The peer (with opencv-python-headless installed, on the host): what a
capable user writes by hand for the same round trip, a crop at a time on
all of OpenCV's threads: the region sliced out of each frame, `cv2.resize`
to its content box (Lanczos 4, the quality choice for enlarging) and back
to the region's size (`INTER_AREA`, OpenCV's antialiased choice for
shrinking), then pasted with the feathered masks by the project's OpenCV
peer (`benchmarks.opencv_peer`, blending in place); the resamplings alone
are a row of their own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import segspaste_jax
from benchmarks.workloads import WORKLOADS, make_workload
from segspaste_jax._src import model_size


def _inputs(bucket: int):
  image, segs = make_workload("W2")
  regions = np.array([s.crop_region for s in segs[1]], np.int32)
  masks = np.zeros((len(regions), bucket, bucket), np.float32)
  for k, seg in enumerate(segs[1]):
    h, w = seg.cropped_mask.shape
    masks[k, :h, :w] = seg.cropped_mask
  return image, regions, masks, segs


def _time(fn, args, repeats: int):
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - start
  warm = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    warm.append(time.perf_counter() - start)
  return first, statistics.median(warm)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args(argv)
  size = (args.size, args.size)
  feather = WORKLOADS["W2"][0]
  bucket = 320  # W2's largest region side
  image, regions, masks, segs = _inputs(bucket)
  image, regions, masks = jax.device_put((image, regions, masks))
  jax.block_until_ready((image, regions, masks))

  def to_model(image, regions):
    return segspaste_jax.crop_segs(image, regions, bucket, size=size,
                                   fit="contain")

  def chain(image, regions, masks):
    cut = to_model(image, regions)
    refined = cut.crops  # the identity model
    back = segspaste_jax.resize_to_regions(refined, cut.transform)
    packed = segspaste_jax.make_packed_segs(regions, masks, back)
    return segspaste_jax.paste(image, packed, feather=feather)

  def identity(x):  # the "model", one function for every call
    return x

  def fused(image, regions, masks):
    back = segspaste_jax.detail_segs(image, regions, bucket, identity,
                                     size=size, fit="contain")
    packed = segspaste_jax.make_packed_segs(regions, masks, back.crops)
    return segspaste_jax.paste(image, packed, feather=feather)

  cut = jax.jit(to_model)(image, regions)
  native = segspaste_jax.crop_segs(image, regions, bucket)

  def paste_native(image, regions, masks, crops):
    packed = segspaste_jax.make_packed_segs(regions, masks, crops)
    return segspaste_jax.paste(image, packed, feather=feather)

  def scale_and_translate(crops, transform):
    """jax.image's resampling of the bucket windows to the content boxes
    (it reads the whole window, zeros past the region included)."""
    scale = transform.scales
    shift = transform.content[..., :2].astype(jnp.float32)

    def one(crop, scale, shift):
      return jax.image.scale_and_translate(
          crop, (crop.shape[0],) + size + (crop.shape[-1],), (1, 2), scale,
          shift, method="lanczos3", antialias=True)

    return jax.vmap(one)(crops, scale, shift)

  def dense(x, transform, to_model):
    return model_size._resample_core(  # pylint: disable=protected-access
        x, transform, method="lanczos3", to_model=to_model, form="dense")

  rows = [
      ("crop_segs(size=...) (cut + resample)", jax.jit(to_model),
       (image, regions)),
      ("  its resampling alone", jax.jit(segspaste_jax.resize_to_model),
       (native.crops, cut.transform)),
      ("  its resampling alone, dense form", jax.jit(
          lambda x, t: dense(x, t, True)), (native.crops, cut.transform)),
      ("resize_to_regions", jax.jit(segspaste_jax.resize_to_regions),
       (cut.crops, cut.transform)),
      ("resize_to_regions, dense form", jax.jit(
          lambda x, t: dense(x, t, False)), (cut.crops, cut.transform)),
      ("make_packed_segs + paste, native crops", jax.jit(paste_native),
       (image, regions, masks, native.crops)),
      ("whole round trip, one jax.jit", jax.jit(chain),
       (image, regions, masks)),
      ("the same with detail_segs, one jax.jit", jax.jit(fused),
       (image, regions, masks)),
      ("jax.image.scale_and_translate (resample only)",
       jax.jit(scale_and_translate), (native.crops, cut.transform)),
  ]
  print(f"W2: {image.shape[0]} x {image.shape[1]} x {image.shape[2]}, "
        f"{len(regions)} regions in a {bucket} bucket, to {size[0]} x "
        f"{size[1]} and back, on {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}); warm: median of {args.repeats}")
  print(f"| {'step':<46} | first call (s) | warm (s) |")
  print(f"|{'-' * 48}|----------------|----------|")
  peers = _opencv_peer(np.asarray(image), segs, feather,
                       np.asarray(cut.transform.content))
  if peers is not None:
    rows += [("OpenCV peer: both resamplings, crop by crop", peers[0], ()),
             ("OpenCV peer: the whole round trip", peers[1], ())]
  times = {}
  for name, fn, fn_args in rows:
    times[name] = _time(fn, fn_args, args.repeats)
    first, warm = times[name]
    print(f"| {name:<46} | {first:14.2f} | {warm:8.3f} |", flush=True)
  if peers is not None:
    theirs = times["OpenCV peer: the whole round trip"][1]
    for name in ("whole round trip, one jax.jit",
                 "the same with detail_segs, one jax.jit"):
      print(f"{name}: ours / OpenCV peer = {times[name][1] / theirs:.2f}")
  return 0


def _opencv_peer(image, segs, feather, content):
  """`(both resamplings, the whole round trip)` by hand with OpenCV (see
  the module docstring), or None without OpenCV. W2's regions are inside
  the image."""
  try:
    import cv2  # pylint: disable=import-outside-toplevel
    from benchmarks.opencv_peer import (  # pylint: disable=import-outside-toplevel
        peer_segs_paste)
  except ImportError:
    return None
  cv2.setNumThreads(os.cpu_count())
  size, seg_list = segs

  def resample():
    out = []
    for s, seg in enumerate(seg_list):
      x1, y1, x2, y2 = seg.crop_region
      _, _, ch, cw = content[s]
      frames = []
      for frame in image:
        up = cv2.resize(frame[y1:y2, x1:x2], (int(cw), int(ch)),
                        interpolation=cv2.INTER_LANCZOS4)
        frames.append(cv2.resize(up, (int(x2 - x1), int(y2 - y1)),
                                 interpolation=cv2.INTER_AREA))
      out.append(np.stack(frames))
    return out

  def round_trip():
    crops = resample()
    refined = [seg._replace(cropped_image=crop)
               for seg, crop in zip(seg_list, crops)]
    return peer_segs_paste(image, (size, refined), feather)

  return resample, round_trip


if __name__ == "__main__":
  raise SystemExit(main())
