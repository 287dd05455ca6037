"""A slow, obviously correct SEGSPaste in numpy float64, from docs/node.rst.

Independent of the library: no imports from segspaste_jax. It follows the
node literally: a Python loop over frames, then over SEGs, a 2-D kernel built
as an outer product, explicit reflect padding and a direct convolution, and
bilinear resizing by the formula in docs/node.rst, "Resampling".

Two steps are not float64, because the node quantises there and truncation
turns float rounding into whole steps of 1/255: the bytes of a mask batch
(`uint8(m * 255)`) and of a crop sent to Pillow (`uint8(clip(255 * x))`) are
computed in the array's own float precision, as the node computes them.

Where the node crashes or wraps around (docs/node.rst, "Failure modes")
this reference implements the library's documented behaviour instead:
single-frame crops, masks and reference images serve every frame, and crop
regions are clipped
at the top and left edges the way the node clips at the right and bottom.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def as_array(x):
  if x is None:
    return None
  if hasattr(x, "detach"):
    return x.detach().cpu().numpy()
  return np.asarray(x)


def bilinear(x, out_h, out_w):
  """torch F.interpolate(bilinear, align_corners=False) on the last two axes."""
  x = np.asarray(x, np.float64)
  in_h, in_w = x.shape[-2:]

  def taps(n_in, n_out):
    lo, hi, frac = [], [], []
    for i in range(n_out):
      src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
      lo.append(min(int(np.floor(src)), n_in - 1))
      hi.append(min(lo[-1] + 1, n_in - 1))
      frac.append(src - lo[-1])
    return np.array(lo), np.array(hi), np.array(frac)

  r0, r1, a = taps(in_h, out_h)
  c0, c1, b = taps(in_w, out_w)
  a = a[:, None]
  top = (1 - b) * x[..., r0, :][..., c0] + b * x[..., r0, :][..., c1]
  bottom = (1 - b) * x[..., r1, :][..., c0] + b * x[..., r1, :][..., c1]
  return (1 - a) * top + a * bottom


def lanczos(crop, out_h, out_w):
  """The node's tensor_resize for C >= 3: 8 bits, Pillow LANCZOS, / 255."""
  crop = np.asarray(crop)
  precision = np.float64 if crop.dtype == np.float64 else np.float32
  frames = []
  for frame in crop:
    as_bytes = np.clip(precision(255.0) * frame.astype(precision), 0, 255)
    pil = Image.fromarray(as_bytes.astype(np.uint8))
    frames.append(np.asarray(
        pil.resize((out_w, out_h), Image.Resampling.LANCZOS)))
  return np.stack(frames).astype(np.float32) / np.float32(255.0)


def gaussian_blur(mask, feather):
  """tensor_gaussian_blur_mask on one [h, w] mask, float64."""
  mask = np.asarray(mask, np.float64)
  if feather <= 0:
    return mask
  k = 2 * feather + 1
  s = min(mask.shape)
  if s <= k:
    k = int(s / 2)
    if k % 2 == 0:
      k += 1
    if k < 3:
      return mask
  x = np.linspace(-(k - 1) / 2, (k - 1) / 2, k)
  g = np.exp(-0.5 * (x / 10.0) ** 2)
  g = g / g.sum()
  kernel = np.outer(g, g)
  pad = k // 2
  padded = np.pad(mask, pad, mode="reflect")
  out = np.zeros_like(mask)
  h, w = mask.shape
  for dy in range(k):
    for dx in range(k):
      out += kernel[dy, dx] * padded[dy:dy + h, dx:dx + w]
  return out


def scale_match(segs, image_shape, node_axis_mixup=False):
  (h0, w0), items = segs
  th, tw = image_shape[1], image_shape[2]
  if (h0 == th and w0 == tw) or h0 == 0 or w0 == 0:
    return segs
  rh, rw = th / h0, tw / w0
  out = []
  for seg in items:
    x1, y1, x2, y2 = seg.crop_region
    if node_axis_mixup:
      region = (int(x1 * rw), int(y1 * rw), int(x2 * rh), int(y2 * rh))
    else:
      region = (int(x1 * rw), int(y1 * rh), int(x2 * rw), int(y2 * rh))
    new_w, new_h = region[2] - region[0], region[3] - region[1]
    mask = as_array(seg.cropped_mask)
    mask = bilinear(mask, new_h, new_w).astype(
        np.float64 if mask.dtype == np.float64 else np.float32)
    crop = as_array(seg.cropped_image)
    if crop is not None:
      if crop.shape[-1] >= 3:
        crop = lanczos(crop, new_h, new_w)
      else:
        crop = np.moveaxis(bilinear(np.moveaxis(crop, -1, 1), new_h, new_w),
                           1, -1)
    out.append(seg._replace(cropped_image=crop, cropped_mask=mask,
                            crop_region=region))
  return (th, tw), out


def soft_edge_factor(h, w, feather):
  """feather_mode="soft_edges": smoothstep(d / (2 feather)), d the distance
  of a pixel from the nearest border pixel of an h x w rectangle."""
  if feather <= 0:
    return np.ones((h, w))
  factor = np.empty((h, w))
  for u in range(h):
    for v in range(w):
      d = min(u, h - 1 - u, v, w - 1 - v)
      t = min(d / (2.0 * feather), 1.0)
      factor[u, v] = 3 * t * t - 2 * t * t * t
  return factor


def blend_pixels(under, ref, m, rgba_mode="composite"):
  """Today's tensor_paste channel rules, float64 (docs/node.rst, "Today's
  Impact Pack").

  under [h, w, C1], ref [h, w, C2], m [h, w]; returns [h, w, C1].
  """
  c1, c2 = under.shape[-1], ref.shape[-1]
  m = m[..., None]
  if c1 == c2 and (c1 != 4 or rgba_mode == "legacy"):
    return (1 - m) * under + m * ref
  if c1 == 4 and c2 in (3, 4):
    out = np.empty_like(under)
    out[..., :3] = (1 - m) * under[..., :3] + m * ref[..., :3]
    a1 = under[..., 3:]
    if c2 == 4:
      out[..., 3:] = a1 + (ref[..., 3:] * m) * (1 - a1)
    else:
      out[..., 3:] = a1 * (1 - m) + m
    return out
  if c1 == 3 and c2 == 4:
    e = m * ref[..., 3:]
    return (1 - e) * under + e * ref[..., :3]
  raise ValueError(f"no rule for {c1} <- {c2}")


def paste_one(frame, ref, x, y, mask, feather=0, feather_mode="node",
              rgba_mode="composite"):
  """tensor_paste: frame [H, W, C] in place, ref [h, w, C'], mask [hm, wm]."""
  big_h, big_w = frame.shape[:2]
  ref_h, ref_w = ref.shape[:2]
  if mask.shape != (ref_h, ref_w):
    mask = bilinear(mask, ref_h, ref_w)
  if feather_mode == "soft_edges":
    mask = mask * soft_edge_factor(ref_h, ref_w, feather)
  # rows i of ref land on y + i; keep those inside [0, big_h), same for cols
  i0, i1 = max(0, -y), min(ref_h, big_h - y)
  j0, j1 = max(0, -x), min(ref_w, big_w - x)
  if i1 <= i0 or j1 <= j0:
    return
  m = mask[i0:i1, j0:j1]
  under = frame[y + i0:y + i1, x + j0:x + j1]
  frame[y + i0:y + i1, x + j0:x + j1] = blend_pixels(
      under, ref[i0:i1, j0:j1], m, rgba_mode)


def segs_paste(image, segs, feather=5, alpha=255, ref_image_opt=None,
               node_axis_mixup=False, feather_mode="node",
               rgba_mode="composite"):
  """The node's doit, float64, frame by frame and SEG by SEG."""
  image = as_array(image)
  ref_image_opt = as_array(ref_image_opt)
  segs = scale_match(segs, image.shape, node_axis_mixup)
  n, big_h, big_w = image.shape[:3]
  result = []
  blurred = {}  # the same 2-D mask blurs the same way in every frame
  for i in range(n):
    frame = image[i].astype(np.float64).copy()
    for seg in segs[1]:
      crop = as_array(seg.cropped_image)
      x1, y1, x2, y2 = seg.crop_region
      if ref_image_opt is None and crop is not None:
        ref = crop[i if len(crop) > 1 else 0]
        x, y = x1, y1
      elif ref_image_opt is not None:
        source = ref_image_opt[i if len(ref_image_opt) > 1 else 0]
        # Python slicing clips at the far edges; clip at the near ones too.
        y, x = max(y1, 0), max(x1, 0)
        ref = source[y:max(y2, y), x:max(x2, x)]
        if ref.shape[0] == 0 or ref.shape[1] == 0:
          continue  # the region misses the image: nothing to paste
      else:
        continue
      mask = as_array(seg.cropped_mask)
      per_frame = mask.ndim == 3 and len(mask) == n
      if per_frame:
        mask = mask[i]
      elif mask.ndim == 3 and len(mask) > 1:
        combined = (mask[0] * 255).astype(np.uint8)
        for other in mask[1:]:
          combined = combined | (other * 255).astype(np.uint8)
        mask = (combined / 255.0 > 0.1).astype(np.float64)
      elif mask.ndim == 3:
        mask = mask[0]
      key = (id(seg), i if per_frame else -1)
      if key not in blurred:
        blurred[key] = gaussian_blur(mask, feather)
      mask = blurred[key] * (alpha / 255)
      paste_one(frame, np.asarray(ref, np.float64), x, y, mask, feather,
                feather_mode, rgba_mode)
    result.append(frame)
  return np.stack(result)
