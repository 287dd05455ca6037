"""What the ComfyUI nodes run: SEGS into an IMAGE batch, a chunk at a time.

Both nodes (`segspaste_jax.comfy`) paste through `paste_batch`, which
chunks through `stream_segs_paste`, the library's one chunking path: the
SEGS (one, or a list of one per image) and the reference are read and
checked once, against the whole batch, before the first chunk; every error
names the SEGS by its index in the user's list; each chunk packs only its
own frames, to the whole batch's bucket and slot count, so every chunk
runs one compiled program. The chunks land in one float32 output tensor
allocated once, and between chunks the node advances ComfyUI's progress
bar and honours its cancel button. An IMAGE on a GPU is pasted there by
one `segs_paste` call. torch is imported only when a node runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from segspaste_jax._src import api, arrays, compile_cache, validate
from segspaste_jax._src.stream import stream_segs_paste

# Frames pasted per chunk: as many as fit in this many bytes of float32
# output (at least one). Small enough that a few chunks in flight stay well
# under the frames themselves; large enough that the per-chunk cost (a
# dispatch, cutting the SEGS' per-frame crops) does not show.
CHUNK_BYTES = 32 << 20


class Hooks(NamedTuple):
  """What a node calls between chunks.

  Attributes:
    progress: `progress(total)` returns a bar with `update(count)` (as
      ComfyUI's `comfy.utils.ProgressBar`), or None for no bar.
    check_interrupt: called before the first chunk and after each one;
      raises to cancel (as ComfyUI's `comfy.model_management.
      throw_exception_if_processing_interrupted`), or None.
  """

  progress: Callable[[int], Any] | None = None
  check_interrupt: Callable[[], None] | None = None


def comfyui_hooks() -> Hooks:
  """ComfyUI's own progress bar and interrupt check where ComfyUI is loaded
  (`comfy.utils`, `comfy.model_management`); empty `Hooks` elsewhere."""
  try:
    # pylint: disable=import-outside-toplevel
    from comfy import model_management, utils
    return Hooks(utils.ProgressBar,
                 model_management.throw_exception_if_processing_interrupted)
  except (ImportError, AttributeError):
    return Hooks()


def chunk_frames(frame_shape) -> int:
  """Frames per chunk for frames of `[H, W, C]`: `CHUNK_BYTES` of float32,
  at least 1."""
  h, w, c = (int(d) for d in frame_shape)
  return max(1, CHUNK_BYTES // max(1, 4 * h * w * c))


def _as_torch(image):
  import torch  # pylint: disable=import-outside-toplevel
  if arrays.is_torch(image):
    return image
  return torch.from_numpy(np.asarray(image))


def _one_shot(image, segs, feather, alpha, ref_image_opt, opts, hooks):
  """`segs_paste` in one call (an IMAGE on a GPU is pasted there)."""
  if hooks.check_interrupt is not None:
    hooks.check_interrupt()
  bar = hooks.progress(image.shape[0]) if hooks.progress else None
  out = api.segs_paste(image, segs, feather=feather, alpha=alpha,
                       ref_image_opt=ref_image_opt, **opts)
  tensor = arrays.to_torch(out, like=image)
  tensor = tensor if str(tensor.dtype) == "torch.float32" else tensor.float()
  if bar is not None:
    bar.update(image.shape[0])
  return tensor


def paste_batch(image, segs, feather: int = 5, alpha=255, ref_image_opt=None,
                *, chunk: int | None = None, hooks: Hooks | None = None,
                **options):
  """What both nodes do: SEGS into an IMAGE batch, in chunks.

  A host (CPU) batch is pasted `chunk` frames at a time by
  `stream_segs_paste` into one float32 tensor allocated once; the result
  equals `segs_paste(image, segs, ...)` (as float32) bit for bit. A batch
  on a GPU is pasted there by one `segs_paste` call (one progress step).

  Args:
    image: IMAGE, torch `[N, H, W, C]` float in [0, 1] (numpy is taken
      too). Not modified.
    segs: SEGS `((H0, W0), [SEG, ...])` for every image, or a list of N
      SEGS, one per image (image `n` takes `segs[n]`, as `segs_paste`).
    feather: int in 0..100.
    alpha: int in 0..255.
    ref_image_opt: optional IMAGE `[N', H, W, C']`, N' = 1 or N' >= N.
    chunk: frames per chunk; default `chunk_frames(image.shape[1:])`.
    hooks: progress bar and cancel check (`comfyui_hooks()` in ComfyUI);
      default none.
    **options: the keyword options of `segs_paste` and `stream_segs_paste`
      (`node_axis_mixup`, `feather_mode`, `rgba_mode`, `grow`, ...).

  Returns:
    float32 torch `[N, H, W, C]` on `image`'s device.

  Raises:
    TypeError, ValueError: as `segs_paste`, naming the argument (and the
      SEGS by its index in the list), before the first chunk.
    Whatever `hooks.check_interrupt` raises, between chunks.
  """
  image = _as_torch(image)
  opts = dict(options)  # node_axis_mixup: validate.options takes any truth
  hooks = Hooks() if hooks is None else hooks
  if (image.device.type != "cpu" or len(image.shape) != 4
      or not len(image)):
    return _one_shot(image, segs, feather, alpha, ref_image_opt, opts, hooks)
  import torch  # pylint: disable=import-outside-toplevel
  n = image.shape[0]
  if ref_image_opt is not None:  # in memory: its values too, before a chunk
    validate.check_ref_image(ref_image_opt,
                             validate.check_image(image, "image"))
  chunk = chunk_frames(image.shape[1:]) if chunk is None else chunk
  blocks = stream_segs_paste(image, segs, feather, alpha, ref_image_opt,
                             chunk=chunk, progress=False, **opts)
  if hooks.check_interrupt is not None:
    hooks.check_interrupt()
  out = torch.empty(tuple(image.shape), dtype=torch.float32)
  view, start = out.numpy(), 0
  bar = None
  try:
    for block in blocks:  # the first `next` reads and checks everything
      bar = hooks.progress(n) if hooks.progress and bar is None else bar
      view[start:start + len(block)] = block
      start += len(block)
      if bar is not None:
        bar.update(len(block))
      if hooks.check_interrupt is not None:
        hooks.check_interrupt()
  finally:
    blocks.close()
  return out


def joined(batches, name: str):
  """ComfyUI's list of IMAGE batches as one batch, joined in order.

  Raises:
    TypeError, ValueError: an item is no IMAGE batch, or the items differ
      in size (`[H, W, C]`): the message names each item's size.
  """
  shapes = [validate.check_image(b, f"{name}[{k}]")
            for k, b in enumerate(batches)]
  if len({s[1:] for s in shapes}) > 1:
    sizes = ", ".join(f"{name}[{k}] {w}x{h} ({c} channels)"
                      for k, (_, h, w, c) in enumerate(shapes))
    raise ValueError(
        f"{name}: the list holds images of different sizes ({sizes}); "
        "this node joins its list into one IMAGE batch, so every item must "
        "have one size. For images of different sizes use SEGSPaste (JAX), "
        "which ComfyUI runs once per item of a list")
  if len(batches) == 1:
    return batches[0]
  import torch  # pylint: disable=import-outside-toplevel
  return torch.cat([_as_torch(b) for b in batches])


_cache_checked = False


def enable_compile_cache() -> None:
  """Once per process: JAX's persistent compilation cache (docs/core.rst,
  "Compile cache")."""
  global _cache_checked
  if not _cache_checked:
    _cache_checked = True
    compile_cache.enable()


def run_batch(image, segs, feather, alpha, ref_image_opt, **options):
  """The batch node's inputs, as ComfyUI passes them (the options by
  name), through `paste_batch` with ComfyUI's progress bar and cancel."""
  enable_compile_cache()
  return paste_batch(image, segs, feather, alpha, ref_image_opt,
                     hooks=comfyui_hooks(), **options)


def run_lists(image, segs, feather, alpha, ref_image_opt, **options):
  """The per-image node's inputs, every one a list (ComfyUI's
  `INPUT_IS_LIST`): the images joined, the SEGS one per image (or one for
  every image), the options' first values."""
  refs = joined(ref_image_opt, "ref_image_opt") if ref_image_opt else None
  segs = segs[0] if len(segs) == 1 else list(segs)
  return run_batch(joined(image, "image"), segs, feather[0], alpha[0], refs,
                   **{name: value[0] for name, value in options.items()})
