"""A torch (CPU) re-statement of the SEGSPaste node, from docs/node.rst.

This is the baseline the benchmarks time and a second oracle for the tests:
it does what the node does, the way the node does it: one Python loop over
frames, one over segments, a fresh Gaussian blur of the mask for every
(frame, segment) pair, a real 2-D convolution, and an in-place blend into a
clone of each frame. Nothing is vectorised over frames or segments on
purpose. Arithmetic is in the inputs' dtype (float32 for ComfyUI data), as in
the node.

Like the node, it grows the output with one `torch.concat` per frame.

It does not import the Impact Pack, ComfyUI or torchvision; the pieces the node
borrows from them (`segs_scale_match`, `tensor_gaussian_blur_mask`,
`GaussianBlur`, `tensor_paste`, `crop_image`, `to_binary_mask`) are written
here from their description in docs/node.rst.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from segspaste_jax import SEG

SIGMA = 10.0  # the node's tensor_gaussian_blur_mask never changes it


def _to_torch(x):
  """numpy array or torch tensor -> torch tensor (no copy where possible)."""
  if isinstance(x, np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(x))
  return torch.as_tensor(x)


def _resize_bilinear_nchw(x, size):
  """torch bilinear resize, `align_corners=False`, no antialias.

  Args:
    x: tensor `[B, C, h, w]`, floating point.
    size: `(new_h, new_w)`.

  Returns:
    Tensor `[B, C, new_h, new_w]` of x's dtype.
  """
  return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear",
                       align_corners=False)


# --------------------------------------------------------------------------
# Scale match.


def _scale_box(box, rw, rh):
  """The node's box scaling, axis mix-up included.

  Args:
    box: `(x1, y1, x2, y2)` or None.
    rw: W / W0.
    rh: H / H0.

  Returns:
    `(int(x1*rw), int(y1*rw), int(x2*rh), int(y2*rh))` (sic), or None.
  """
  if box is None:
    return None
  x1, y1, x2, y2 = box
  return (int(x1 * rw), int(y1 * rw), int(x2 * rh), int(y2 * rh))


def _resize_mask(mask, new_h, new_w):
  """Bilinear (align_corners=False) resize of a `[h, w]` or `[M, h, w]` mask."""
  m = _to_torch(mask)
  if not torch.is_floating_point(m):
    m = m.to(torch.float32)
  if m.ndim == 2:
    return _resize_bilinear_nchw(m[None, None], (new_h, new_w))[0, 0]
  return _resize_bilinear_nchw(m[:, None], (new_h, new_w))[:, 0]


def _resize_cropped_image(cropped_image, new_h, new_w):
  """Resizes a `[Fc, h, w, C]` crop the way the node's scale match does.

  C >= 3: each frame goes through Pillow as 8-bit (`uint8(clip(255 x))`,
  truncating), `Image.resize((new_w, new_h), LANCZOS)`, then `/ 255` as
  float32. C < 3: bilinear, `align_corners=False`, no quantisation.
  """
  img = _to_torch(cropped_image)
  channels = img.shape[-1]
  if channels < 3:
    out = _resize_bilinear_nchw(img.permute(0, 3, 1, 2), (new_h, new_w))
    return out.permute(0, 2, 3, 1).contiguous()
  frames = []
  for frame in img:
    pixels = np.clip(255.0 * frame.numpy(), 0, 255).astype(np.uint8)
    resized = Image.fromarray(pixels).resize((new_w, new_h),
                                             Image.Resampling.LANCZOS)
    frames.append(
        torch.from_numpy(np.asarray(resized).astype(np.float32) / 255.0))
  return torch.stack(frames)


def segs_scale_match(segs, image_shape):
  """The Impact Pack's `segs_scale_match` (docs/node.rst, "Scale match").

  Args:
    segs: `((H0, W0), [SEG, ...])`.
    image_shape: `[N, H, W, C]` of the image the SEGS are pasted into.

  Returns:
    `segs` itself if `(H0, W0) == (H, W)` or either of H0, W0 is 0; else new
    SEGS with crop_region/bbox scaled (with the node's axis mix-up), masks
    resized bilinearly and crops resized via Pillow LANCZOS (C >= 3) or
    bilinearly (C < 3) to the new crop size.
  """
  (h0, w0), seg_list = segs
  h, w = int(image_shape[1]), int(image_shape[2])
  if (int(h0), int(w0)) == (h, w) or h0 == 0 or w0 == 0:
    return segs
  rh = h / h0
  rw = w / w0
  new_list = []
  for seg in seg_list:
    crop_region = _scale_box(seg.crop_region, rw, rh)
    bbox = _scale_box(seg.bbox, rw, rh)
    new_w = crop_region[2] - crop_region[0]
    new_h = crop_region[3] - crop_region[1]
    mask = _resize_mask(seg.cropped_mask, new_h, new_w)
    cropped_image = seg.cropped_image
    if cropped_image is not None:
      cropped_image = _resize_cropped_image(cropped_image, new_h, new_w)
    new_list.append(SEG(cropped_image, mask, seg.confidence, crop_region, bbox,
                        seg.label, seg.control_net_wrapper))
  return (h, w), new_list


# --------------------------------------------------------------------------
# Mask feathering.


def gaussian_kernel_2d(kernel_size: int, sigma: float, dtype):
  """torchvision-style Gaussian kernel: outer product of normalised 1-D taps.

  Args:
    kernel_size: odd size k.
    sigma: standard deviation.
    dtype: dtype of the returned kernel (taps are computed in float32).

  Returns:
    Tensor `[k, k]`.
  """
  half = (kernel_size - 1) * 0.5
  x = torch.linspace(-half, half, steps=kernel_size, dtype=torch.float32)
  pdf = torch.exp(-0.5 * (x / sigma) ** 2)
  taps = pdf / pdf.sum()
  return torch.outer(taps, taps).to(dtype)


def gaussian_blur_mask(mask, feather: int):
  """The Impact Pack's `tensor_gaussian_blur_mask(mask, feather)`, sigma 10.

  Args:
    mask: `[h, w]` or `[B, h, w]` tensor or numpy array.
    feather: the node's feather; kernel size `2 * feather + 1`, clamped for
      small masks (docs/node.rst, "Feather"); no blur for `feather <= 0` or
      a clamped kernel below 3.

  Returns:
    Tensor `[B, h, w, 1]` (B = 1 for a 2-D mask), blurred or not.
  """
  m = _to_torch(mask)
  if not torch.is_floating_point(m):
    m = m.to(torch.float32)
  if m.ndim == 2:
    m = m[None, :, :, None]
  elif m.ndim == 3:
    m = m[:, :, :, None]
  if feather <= 0:
    return m
  k = 2 * feather + 1
  shortest = min(m.shape[1], m.shape[2])
  if shortest <= k:
    k = int(shortest / 2)
    if k % 2 == 0:
      k += 1
    if k < 3:
      return m
  kernel = gaussian_kernel_2d(k, SIGMA, m.dtype)[None, None]  # [1, 1, k, k]
  x = m[:, None, :, :, 0]  # [B, 1, h, w]
  pad = k // 2
  x = F.pad(x, [pad, pad, pad, pad], mode="reflect")
  blurred = F.conv2d(x, kernel)  # valid convolution: back to [B, 1, h, w]
  return blurred[:, 0, :, :, None]


def to_binary_mask(mask, threshold: float):
  """1 where `mask > threshold`, else 0 (the node's `to_binary_mask`)."""
  return torch.where(mask > threshold, 1.0, 0.0).to(torch.float32)


def select_mask(cropped_mask, frame_index: int, num_frames: int):
  """The node's choice of mask for frame `frame_index`.

  Args:
    cropped_mask: the SEG's mask, `[h, w]` or `[M, h, w]`, numpy or torch.
    frame_index: i.
    num_frames: N, the image's frame count.

  Returns:
    Frame i's mask if the mask is 3-D with M == N; the byte-wise OR of all M
    frames (binarised at 0.1) if 3-D with M > 1 and M != N; else the mask
    as it is.
  """
  m = _to_torch(cropped_mask)
  if m.ndim == 3 and len(m) == num_frames:
    return m[frame_index]
  if m.ndim == 3 and len(m) > 1:
    print(f"[segspaste baseline] WARN: mask batch ({len(m)}) != image batch "
          f"({num_frames}); combining the mask frames.")
    combined = (m[0] * 255).to(torch.uint8)
    for frame_mask in m[1:]:
      combined |= (frame_mask * 255).to(torch.uint8)
    combined = (combined / 255.0).to(torch.float32)
    return to_binary_mask(combined, 0.1)
  return m


# --------------------------------------------------------------------------
# Paste.


def tensor_paste(image1, image2, left_top, mask, rules: str = "today"):
  """The Impact Pack's `tensor_paste`: blends image2 into image1 in place.

  Args:
    image1: `[1, H, W, C1]` tensor, modified in place.
    image2: `[1, h, w, C2]` pixels to paste.
    left_top: `(x, y)` where image2's top-left corner lands.
    mask: `[1, hm, wm, 1]`; resized bilinearly to `(h, w)` if it differs.
    rules: "today" (the 2025 node: docs/node.rst, "Today's Impact Pack";
      any other channel pair pastes nothing) or "seed" (the late-2024 node:
      every channel blended alike; C1 != C2 fails in torch's broadcasting).

  Returns:
    None. Nothing happens if the clipped extent is empty.
  """
  if tuple(image2.shape[1:3]) != tuple(mask.shape[1:3]):
    mask = _resize_bilinear_nchw(mask.permute(0, 3, 1, 2), image2.shape[1:3])
    mask = mask.permute(0, 2, 3, 1)
  x, y = left_top
  _, h1, w1, c1 = image1.shape
  _, h2, w2, c2 = image2.shape
  w = min(w1, x + w2) - x
  h = min(h1, y + h2) - y
  if w <= 0 or h <= 0:
    return
  m = mask[:, :h, :w, :]
  under = image1[:, y:y + h, x:x + w, :]
  over = image2[:, :h, :w, :]
  if rules == "seed" or (c1 == c2 == 3):
    image1[:, y:y + h, x:x + w, :] = (1 - m) * under + m * over
  elif c1 == 4 and c2 in (3, 4):
    rgb = (1 - m) * under[..., :3] + m * over[..., :3]
    a1 = under[..., 3:]
    if c2 == 4:
      alpha = a1 + (over[..., 3:] * m) * (1 - a1)
    else:
      alpha = a1 * (1 - m) + m
    image1[:, y:y + h, x:x + w, :] = torch.cat([rgb, alpha], dim=-1)
  elif c1 == 3 and c2 == 4:
    e = m * over[..., 3:]
    image1[:, y:y + h, x:x + w, :] = (1 - e) * under + e * over[..., :3]
  # today's node: any other pair (1-channel images included) pastes nothing


def crop_image(image, crop_region):
  """`image[:, y1:y2, x1:x2, :]` with plain Python slicing."""
  x1, y1, x2, y2 = crop_region
  return image[:, y1:y2, x1:x2, :]


# --------------------------------------------------------------------------
# The node.


def node_segs_paste(image, segs, feather: int = 5, alpha: int = 255,
                    ref_image_opt=None, rules: str = "today",
                    preallocate: bool = False):
  """SEGSPaste.doit, frame by frame and segment by segment, in torch on CPU.

  Args:
    image: IMAGE `[N, H, W, C]` float32, numpy or torch (not modified).
    segs: `((H0, W0), [SEG, ...])`; SEG fields numpy or torch, mixed.
    feather: int, blur kernel size `2 * feather + 1` (sigma 10).
    alpha: int 0..255, opacity of every pasted segment.
    ref_image_opt: optional IMAGE `[N, H, W, C]`; when given, the pixels
      pasted are cut from it at each crop_region instead of `cropped_image`.
    rules: the channel rules of `tensor_paste`, "today" or "seed".
    preallocate: write each frame into an output allocated once, as the
      node does since 2025 (docs/node.rst, "Today's Impact Pack"), instead
      of growing it with one `torch.concat` per frame (the 2024 node). The
      same values either way.

  Returns:
    torch float32 tensor `[N, H, W, C]`.
  """
  image = _to_torch(image)
  if image.dtype != torch.float32:
    image = image.to(torch.float32)
  if ref_image_opt is not None:
    ref_image_opt = _to_torch(ref_image_opt)
  segs = segs_scale_match(segs, image.shape)
  num_frames = len(image)

  result = torch.empty_like(image) if preallocate else None
  for i, single_image in enumerate(image):
    image_i = single_image.unsqueeze(0).clone()
    for seg in segs[1]:
      ref_image = None
      if ref_image_opt is None and seg.cropped_image is not None:
        ref_image = _to_torch(seg.cropped_image)[i].unsqueeze(0)
      elif ref_image_opt is not None:
        ref_image = crop_image(ref_image_opt[i].unsqueeze(0), seg.crop_region)
      if ref_image is None:
        continue
      mask = select_mask(seg.cropped_mask, i, num_frames)
      mask = gaussian_blur_mask(mask, feather) * (alpha / 255)
      x, y, *_ = seg.crop_region
      tensor_paste(image_i, ref_image, (int(x), int(y)), mask, rules)
    if preallocate:
      result[i] = image_i[0]
      continue
    # The 2024 node grows its result one frame at a time (a copy of every
    # frame so far, each time); that cost is part of what it does.
    result = image_i if result is None else torch.concat((result, image_i),
                                                          dim=0)
  return result
