"""The ComfyUI node: the same interface as SEGSPaste, `segs_paste`'s output."""

import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest

import helpers
from segspaste_jax import SEG, comfy, segs_paste
from segspaste_jax._src import node_paste
from segspaste_jax.sample import load_sample_image, sample_segs

torch = pytest.importorskip("torch")


def test_input_types_match_the_node():
  """The Impact Pack's inputs (names, order, defaults, ranges), our three
  optional ones, and a tooltip on every input."""
  types = comfy.SEGSPasteJAX.INPUT_TYPES()
  tooltips = {}
  for group in types.values():
    for name, (_, options) in group.items():
      tooltips[name] = options.pop("tooltip")
  assert types == {
      "required": {
          "image": ("IMAGE", {}),
          "segs": ("SEGS", {}),
          "feather": ("INT", {"default": 5, "min": 0, "max": 100, "step": 1}),
          "alpha": ("INT", {"default": 255, "min": 0, "max": 255, "step": 1}),
      },
      "optional": {"ref_image_opt": ("IMAGE", {}),
                   "node_axis_mixup": ("BOOLEAN", {"default": False}),
                   "feather_mode": (["node", "soft_edges", "relative"],
                                    {"default": "node"}),
                   "grow": ("INT", {"default": 0, "min": -100, "max": 100,
                                    "step": 1}),
                   "rgba_mode": (["composite", "legacy"],
                                 {"default": "composite"}),
                   "color_match": (["none", "lowfreq", "rct", "mkl"],
                                   {"default": "none"}),
                   "color_strength": ("FLOAT", {"default": 1.0, "min": 0.0,
                                                "max": 1.0, "step": 0.05})},
  }
  assert list(types["required"]) == ["image", "segs", "feather", "alpha"]
  assert all(isinstance(t, str) and len(t) > 20 for t in tooltips.values())
  assert len(set(tooltips.values())) == len(tooltips)
  node = comfy.SEGSPasteJAX
  assert node.RETURN_TYPES == ("IMAGE",)
  assert node.FUNCTION == "doit" and callable(getattr(node(), node.FUNCTION))
  assert node.CATEGORY == "ImpactPack/Detailer"
  assert comfy.NODE_CLASS_MAPPINGS == {
      "SEGSPasteJAX": node, "SEGSPasteJAXPerImage": comfy.SEGSPasteJAXPerImage}
  assert set(comfy.NODE_DISPLAY_NAME_MAPPINGS) == set(comfy.NODE_CLASS_MAPPINGS)
  assert comfy.SEGSPasteJAXPerImage.INPUT_IS_LIST
  assert (comfy.SEGSPasteJAXPerImage.INPUT_TYPES()
          == comfy.SEGSPasteJAX.INPUT_TYPES())
  for cls in comfy.NODE_CLASS_MAPPINGS.values():
    assert len(cls.DESCRIPTION) > 40 and len(cls.OUTPUT_TOOLTIPS) == 1
  assert (comfy.SEGSPasteJAX.DESCRIPTION
          != comfy.SEGSPasteJAXPerImage.DESCRIPTION)


def _torch_case(seed):
  case = helpers.random_case(seed)
  image = torch.from_numpy(case.image)
  ref = (None if case.ref_image_opt is None
         else torch.from_numpy(case.ref_image_opt))
  return case, image, ref


def _clone(x):
  if x is None:
    return None
  return x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)


def _equal(a, b):
  if isinstance(a, torch.Tensor):
    return torch.equal(a, b)
  return np.array_equal(a, b)


@pytest.mark.parametrize("seed", [3000, 3001, 3002, 3003, 3004, 3005])
def test_output_equals_segs_paste(seed):
  case, image, ref = _torch_case(seed)
  before = [_clone(image), _clone(ref)] + [
      (_clone(s.cropped_image), _clone(s.cropped_mask)) for s in case.segs[1]]
  result = comfy.SEGSPasteJAX().doit(image, case.segs, case.feather,
                                     case.alpha, ref,
                                     feather_mode=case.feather_mode)
  assert isinstance(result, tuple) and len(result) == 1
  out = result[0]
  assert isinstance(out, torch.Tensor)
  assert out.device.type == "cpu" and out.dtype == torch.float32
  assert tuple(out.shape) == tuple(image.shape)
  want = np.asarray(segs_paste(case.image, case.segs, **case.kwargs()))
  np.testing.assert_array_equal(out.numpy(), want)
  # inputs unchanged
  assert _equal(image, before[0])
  assert ref is None or _equal(ref, before[1])
  for seg, (crop, mask) in zip(case.segs[1], before[2:]):
    assert crop is None or _equal(seg.cropped_image, crop)
    assert _equal(seg.cropped_mask, mask)


def test_sample_with_defaults_and_float64_image():
  image = torch.from_numpy(load_sample_image(64).astype(np.float64))
  segs = sample_segs(image)
  (out,) = comfy.SEGSPasteJAX().doit(image, segs, feather=5)
  assert out.dtype == torch.float32 and out.device.type == "cpu"
  np.testing.assert_allclose(
      out.numpy(), np.asarray(segs_paste(image.float(), segs)), atol=1e-6)


def test_node_axis_mixup_input():
  rng = np.random.default_rng(9)
  image = torch.from_numpy(rng.random((1, 60, 120, 3), np.float32))
  segs = ((30, 40), [helpers.seg(rng.random((1, 10, 10, 3), np.float32),
                               np.ones((10, 10), np.float32),
                               (5, 5, 15, 15))])
  node = comfy.SEGSPasteJAX()
  for mixup in (False, True):
    (out,) = node.doit(image, segs, 0, 255, node_axis_mixup=mixup)
    want = segs_paste(image.numpy(), segs, 0, node_axis_mixup=mixup)
    np.testing.assert_array_equal(out.numpy(), np.asarray(want))
  assert not np.array_equal(node.doit(image, segs, 0, 255)[0].numpy(),
                            node.doit(image, segs, 0, 255, None, True)[0]
                            .numpy())


def test_bad_input_raises_a_clear_error():
  image = torch.zeros(1, 32, 32, 3)
  with pytest.raises(ValueError, match="feather"):
    comfy.SEGSPasteJAX().doit(image, ((32, 32), []), feather=101)


@pytest.mark.slow
def test_module_imports_without_torch():
  code = ("import sys; sys.modules['torch'] = None; "
          "import segspaste_jax, segspaste_jax.comfy, segspaste_jax.cli; "
          "print(segspaste_jax.comfy.NODE_CLASS_MAPPINGS)")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "SEGSPasteJAX" in proc.stdout


@pytest.mark.slow
def test_numpy_fallback_when_dlpack_fails(monkeypatch):
  image = torch.from_numpy(load_sample_image(48))
  segs = sample_segs(image)
  (via_dlpack,) = comfy.SEGSPasteJAX().doit(image, segs, 3, 200)

  def refuse(_):
    raise BufferError("no DLPack here")

  monkeypatch.setattr(torch, "from_dlpack", refuse)
  (via_numpy,) = comfy.SEGSPasteJAX().doit(image, segs, 3, 200)
  assert via_numpy.dtype == torch.float32 and via_numpy.is_contiguous()
  assert torch.equal(via_numpy, via_dlpack)


def test_device_tensors_come_in_by_dlpack(monkeypatch):
  """A torch tensor off the CPU is shared with JAX by DLPack, never copied
  through host memory: the path taken here with a CPU tensor, by telling
  the library the tensor is on another device."""
  from segspaste_jax._src import arrays
  image = torch.rand(1, 64, 64, 3)  # torch's own (aligned) memory
  shared = arrays._from_dlpack(image)
  assert np.shares_memory(np.asarray(shared), image.numpy())
  seen = []
  real = arrays._from_dlpack
  monkeypatch.setattr(arrays, "_from_dlpack",
                      lambda t: seen.append(t) or real(t))

  class OnAnotherDevice:  # the tensor, with a device that is not the CPU
    def __init__(self, tensor):
      self._tensor = tensor
      self.device = torch.device("meta")

    def detach(self):
      return self

    def __getattr__(self, name):
      return getattr(self._tensor, name)

  fake = OnAnotherDevice(image)
  monkeypatch.setattr(arrays, "is_torch", lambda x: isinstance(
      x, (torch.Tensor, OnAnotherDevice)))
  array, owned, wait = arrays.to_device(fake)
  assert seen and not owned and wait
  np.testing.assert_array_equal(np.asarray(array), image.numpy())


@pytest.mark.slow
def test_per_image_node_takes_lists():
  """ComfyUI's list form: two image batches (3 images) and 3 SEGS."""
  rng = np.random.default_rng(7)
  batches = [torch.from_numpy(rng.random((k, 32, 40, 3), np.float32))
             for k in (1, 2)]
  segs = []
  for k in range(3):
    crop = rng.random((1, 10 + k, 12, 3), np.float32)
    mask = rng.random((10 + k, 12), np.float32)
    segs.append(((32, 40), [SEG(crop, mask, 0.9, (3 * k, 2, 3 * k + 12,
                                                  12 + k), (0, 0, 1, 1),
                                "face")]))
  out, = comfy.SEGSPasteJAXPerImage().doit(batches, segs, [4], [200])
  assert isinstance(out, torch.Tensor) and tuple(out.shape) == (3, 32, 40, 3)
  joined = torch.cat(batches).numpy()
  for k in range(3):
    want = np.asarray(segs_paste(joined[k:k + 1], segs[k], 4, 200))
    np.testing.assert_allclose(out[k:k + 1].numpy(), want, rtol=0, atol=1e-6)
  # one SEGS in the list: every image takes it
  out, = comfy.SEGSPasteJAXPerImage().doit(batches, segs[:1], [4], [200])
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(joined, segs[0], 4, 200)))


# ----------------------------------------------------------------------------
# Chunks, progress and cancel, with stand-ins of ComfyUI's functions.

class _Bar:
  """Stands in for comfy.utils.ProgressBar: records its total and steps."""

  made: ClassVar[list] = []

  def __init__(self, total):
    self.total, self.steps = total, []
    _Bar.made.append(self)

  def update(self, value):
    self.steps.append(value)


class _Cancel(Exception):
  pass


def _hooks(cancel_at=None):
  """Hooks whose check raises `_Cancel` on call number `cancel_at`."""
  calls = []

  def check():
    calls.append(len(calls))
    if cancel_at is not None and len(calls) == cancel_at:
      raise _Cancel()

  _Bar.made = []
  return comfy.Hooks(_Bar, check), calls


def _video(frames=10, size=40, seed=0):
  """A batch with a per-frame crop, a 2-D mask and a per-frame mask."""
  rng = np.random.default_rng(seed)
  image = torch.from_numpy(rng.random((frames, size, size, 3), np.float32))
  segs = ((size, size), [
      helpers.seg(rng.random((frames, 12, 14, 3), np.float32),
                rng.random((12, 14), np.float32), (3, 5, 17, 17)),
      helpers.seg(rng.random((frames, 10, 9, 3), np.float32),
                rng.random((frames, 10, 9), np.float32), (20, 21, 29, 31)),
  ])
  return image, segs


@pytest.mark.parametrize("chunk", [1, 3, 4, 10, 16])
def test_chunks_equal_one_shot(chunk):
  image, segs = _video()
  before = image.clone()
  hooks, calls = _hooks()
  out = comfy.paste_batch(image, segs, 7, 200, chunk=chunk, hooks=hooks)
  want = np.asarray(segs_paste(image.numpy(), segs, 7, 200))
  assert out.dtype == torch.float32 and out.device.type == "cpu"
  np.testing.assert_array_equal(out.numpy(), want)
  assert torch.equal(image, before)
  chunks = -(-10 // chunk)
  (bar,) = _Bar.made
  assert bar.total == 10 and sum(bar.steps) == 10
  assert len(bar.steps) == chunks  # one step a chunk
  assert len(calls) == chunks + 1  # before the first chunk and after each


def test_cancel_in_the_middle_stops_the_paste():
  image, segs = _video(frames=12)
  hooks, calls = _hooks(cancel_at=3)  # after the second chunk
  with pytest.raises(_Cancel):
    comfy.paste_batch(image, segs, 5, 255, chunk=3, hooks=hooks)
  (bar,) = _Bar.made
  assert bar.steps == [3, 3] and len(calls) == 3


def test_cancel_before_the_first_chunk():
  image, segs = _video(frames=4)
  hooks, calls = _hooks(cancel_at=1)
  with pytest.raises(_Cancel):
    comfy.paste_batch(image, segs, 5, 255, chunk=2, hooks=hooks)
  assert _Bar.made == [] and len(calls) == 1


def test_chunk_size_from_bytes(monkeypatch):
  assert comfy.chunk_frames((512, 512, 3)) == max(
      1, node_paste.CHUNK_BYTES // (512 * 512 * 3 * 4))
  assert comfy.chunk_frames((8192, 8192, 4)) == 1
  monkeypatch.setattr(node_paste, "CHUNK_BYTES", 3 * 40 * 40 * 3 * 4)
  image, segs = _video()
  hooks, _ = _hooks()
  comfy.paste_batch(image, segs, 5, 255, hooks=hooks)
  assert _Bar.made[0].steps == [3, 3, 3, 1]


def test_one_compiled_program_for_all_chunks(compile_counter):
  image, segs = _video(frames=9, seed=4)
  comfy.paste_batch(image, segs, 6, 255, chunk=4)  # warm: 4-frame program
  del compile_counter[:]
  image, segs = _video(frames=11, seed=5)
  comfy.paste_batch(image, segs, 6, 255, chunk=4)
  assert not compile_counter


class _FakeComfy:
  """`comfy.utils` and `comfy.model_management` stand-ins in sys.modules."""

  def __init__(self, monkeypatch, cancel_at=None):
    import types
    self.checks = 0
    package = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    management = types.ModuleType("comfy.model_management")
    utils.ProgressBar = _Bar

    def check():
      self.checks += 1
      if self.checks == cancel_at:
        raise _Cancel()

    management.throw_exception_if_processing_interrupted = check
    package.utils, package.model_management = utils, management
    for name, module in (("comfy", package), ("comfy.utils", utils),
                         ("comfy.model_management", management)):
      monkeypatch.setitem(sys.modules, name, module)
    _Bar.made = []


def test_node_uses_comfyui_progress_and_cancel(monkeypatch):
  image, segs = _video(frames=10)
  monkeypatch.setattr(node_paste, "CHUNK_BYTES", 4 * 40 * 40 * 3 * 4)
  fake = _FakeComfy(monkeypatch)
  assert comfy.comfyui_hooks() == comfy.Hooks(
      _Bar, sys.modules["comfy.model_management"]
      .throw_exception_if_processing_interrupted)
  (out,) = comfy.SEGSPasteJAX().doit(image, segs, 5, 255)
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(image.numpy(), segs, 5, 255)))
  assert _Bar.made[0].steps == [4, 4, 2] and fake.checks == 4
  fake = _FakeComfy(monkeypatch, cancel_at=2)
  with pytest.raises(_Cancel):
    comfy.SEGSPasteJAX().doit(image, segs, 5, 255)
  assert _Bar.made[0].steps == [4]


def test_without_comfyui_no_hooks(monkeypatch):
  monkeypatch.setitem(sys.modules, "comfy", None)
  assert comfy.comfyui_hooks() == comfy.Hooks()


def _per_image_case(n=7, size=36, seed=11):
  rng = np.random.default_rng(seed)
  image = torch.from_numpy(rng.random((n, size, size, 3), np.float32))
  segs = []
  for k in range(n):
    items = []
    for j in range(k % 3):  # 0, 1 or 2 segments; sides up to 20
      h, w = 6 + (3 * k + j) % 15, 5 + (2 * k + 5 * j) % 16
      x, y = (4 * k + 7 * j) % (size - w), (5 * k + 3 * j) % (size - h)
      items.append(helpers.seg(rng.random((1, h, w, 3), np.float32),
                             rng.random((h, w), np.float32),
                             (x, y, x + w, y + h)))
    segs.append(((size, size), items))
  return image, segs


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [2, 3, 7])
def test_per_image_chunks_equal_one_shot(chunk):
  image, segs = _per_image_case()
  hooks, _ = _hooks()
  out = comfy.paste_per_image(image, segs, 4, 230, chunk=chunk, hooks=hooks)
  want = np.asarray(segs_paste(image.numpy(), segs, 4, 230))
  np.testing.assert_array_equal(out.numpy(), want)
  (bar,) = _Bar.made
  assert sum(bar.steps) == 7 and len(bar.steps) == (1 if chunk == 7 else
                                                    -(-7 // chunk))
  ref = torch.from_numpy(np.random.default_rng(2).random((7, 36, 36, 3),
                                                         np.float32))
  out = comfy.paste_per_image(image, segs, 4, 230, ref, chunk=chunk)
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(image.numpy(), segs, 4, 230,
                                         ref.numpy())))


def test_per_image_one_program_for_all_chunks(compile_counter):
  # every SEG side is at most 20 and every image has at most 2 SEGs: any
  # chunk packs to the default bucket (128) and slot count (4)
  image, segs = _per_image_case(n=8, seed=3)
  comfy.paste_per_image(image[:3], segs[:3], 4, 255, chunk=3)  # one chunk
  del compile_counter[:]
  comfy.paste_per_image(image, segs, 4, 255, chunk=3)  # 3, 3, 2 (padded)
  assert not compile_counter


def test_batch_node_takes_a_list_of_segs_as_segs_paste_does():
  image, segs = _per_image_case()
  (out,) = comfy.SEGSPasteJAX().doit(image, segs, 4, 255)
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(image.numpy(), segs, 4, 255)))


def test_per_image_cancel():
  image, segs = _per_image_case()
  hooks, _ = _hooks(cancel_at=2)
  with pytest.raises(_Cancel):
    comfy.paste_per_image(image, segs, 4, 255, chunk=2, hooks=hooks)
  assert _Bar.made[0].steps == [2]


@pytest.mark.slow
def test_per_image_node_chunked(monkeypatch):
  image, segs = _per_image_case()
  monkeypatch.setattr(node_paste, "CHUNK_BYTES", 2 * 36 * 36 * 3 * 4)
  _FakeComfy(monkeypatch)
  (out,) = comfy.SEGSPasteJAXPerImage().doit(
      [image[:3], image[3:]], segs, [4], [255])
  np.testing.assert_array_equal(
      out.numpy(), np.asarray(segs_paste(image.numpy(), segs, 4, 255)))
  assert _Bar.made[0].steps == [2, 2, 2, 1]
