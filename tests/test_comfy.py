"""The ComfyUI node: the same interface as SEGSPaste, `segs_paste`'s output."""

import subprocess
import sys

import numpy as np
import pytest

import helpers
from segspaste_jax import SEG, comfy, segs_paste
from segspaste_jax.sample import load_sample_image, sample_segs

torch = pytest.importorskip("torch")


def test_input_types_match_the_node():
  types = comfy.SEGSPasteJAX.INPUT_TYPES()
  assert types == {
      "required": {
          "image": ("IMAGE",),
          "segs": ("SEGS",),
          "feather": ("INT", {"default": 5, "min": 0, "max": 100, "step": 1}),
          "alpha": ("INT", {"default": 255, "min": 0, "max": 255, "step": 1}),
      },
      "optional": {"ref_image_opt": ("IMAGE",),
                   "node_axis_mixup": ("BOOLEAN", {"default": False}),
                   "feather_mode": (["node", "soft_edges"],
                                    {"default": "node"}),
                   "rgba_mode": (["composite", "legacy"],
                                 {"default": "composite"})},
  }
  node = comfy.SEGSPasteJAX
  assert node.RETURN_TYPES == ("IMAGE",)
  assert node.FUNCTION == "doit" and callable(getattr(node(), node.FUNCTION))
  assert node.CATEGORY.startswith("ImpactPack")
  assert comfy.NODE_CLASS_MAPPINGS == {
      "SEGSPasteJAX": node, "SEGSPasteJAXPerImage": comfy.SEGSPasteJAXPerImage}
  assert set(comfy.NODE_DISPLAY_NAME_MAPPINGS) == set(comfy.NODE_CLASS_MAPPINGS)
  assert comfy.SEGSPasteJAXPerImage.INPUT_IS_LIST
  assert comfy.SEGSPasteJAXPerImage.INPUT_TYPES() == types


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


def test_module_imports_without_torch():
  code = ("import sys; sys.modules['torch'] = None; "
          "import segspaste_jax, segspaste_jax.comfy, segspaste_jax.cli; "
          "print(segspaste_jax.comfy.NODE_CLASS_MAPPINGS)")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "SEGSPasteJAX" in proc.stdout


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
