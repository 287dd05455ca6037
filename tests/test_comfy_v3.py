"""The V3 form of the ComfyUI nodes, against a stand-in of `comfy_api`.

Saved workflows store node ids, widget names and values in input order: the
V3 schema must give ComfyUI the same V1 view (`INPUT_TYPES`) as the V1
nodes, and run the same paste.
"""

import asyncio
import subprocess
import sys

import comfy_stand_in
import numpy as np
import pytest

from segspaste_jax import comfy, segs_paste

torch = pytest.importorskip("torch")


@pytest.fixture(name="api")
def fixture_api(monkeypatch):
  package, version = comfy_stand_in.modules()
  monkeypatch.setitem(sys.modules, "comfy_api", package)
  monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", version)
  api = comfy.load_schema_api()
  assert api is not None and api[1] is version.io
  return api


def test_no_schema_api_outside_comfyui(monkeypatch):
  monkeypatch.setitem(sys.modules, "comfy_api", None)
  assert comfy.load_schema_api() is None


def test_schema_gives_the_v1_inputs(api):
  _, io = api
  batch, per_image = comfy.v3_nodes(io)
  for cls, v1 in ((batch, comfy.SEGSPasteJAX),
                  (per_image, comfy.SEGSPasteJAXPerImage)):
    assert issubclass(cls, io.ComfyNode)
    schema = cls.define_schema()
    node_id = schema.node_id
    assert comfy.NODE_CLASS_MAPPINGS[node_id] is v1
    assert schema.display_name == comfy.NODE_DISPLAY_NAME_MAPPINGS[node_id]
    assert schema.category == v1.CATEGORY
    assert schema.description == v1.DESCRIPTION
    assert schema.is_input_list == bool(getattr(v1, "INPUT_IS_LIST", False))
    got = schema.v1_input_types()
    want = _as_combo(v1.INPUT_TYPES())
    assert got == want
    # the order widgets_values follow
    assert [list(g) for g in got.values()] == [list(g) for g in want.values()]
    assert all(i.tooltip for i in schema.inputs)
    (output,) = schema.outputs
    assert output.io_type == "IMAGE" and output.tooltip
    assert output.display_name is None  # shown, and saved, as "IMAGE"


def _as_combo(types):
  """V1 `INPUT_TYPES` with each list-of-choices input written as V3's
  V1 view writes a combo: `("COMBO", {"options": [...], "multiselect":
  False, ...})`; the frontend shows both as the same dropdown widget."""
  out = {}
  for group, inputs in types.items():
    out[group] = {}
    for name, (kind, options) in inputs.items():
      if isinstance(kind, list):
        kind, options = "COMBO", dict(options, options=kind,
                                      multiselect=False)
      out[group][name] = (kind, options)
  return out


def test_execute_runs_the_same_paste(api):
  _, io = api
  batch, per_image = comfy.v3_nodes(io)
  rng = np.random.default_rng(5)
  image = torch.from_numpy(rng.random((3, 40, 48, 3), np.float32))
  segs = ((40, 48), [comfy_seg(rng, 3)])
  result = batch.execute(image=image, segs=segs, feather=6, alpha=220)
  assert isinstance(result, io.NodeOutput)
  (out,) = result.args
  want = np.asarray(segs_paste(image.numpy(), segs, 6, 220))
  np.testing.assert_array_equal(out.numpy(), want)
  result = per_image.execute(image=[image[:1], image[1:]], segs=[segs],
                             feather=[6], alpha=[220],
                             feather_mode=["soft_edges"])
  (out,) = result.args
  want = np.asarray(segs_paste(image.numpy(), segs, 6, 220,
                               feather_mode="soft_edges"))
  np.testing.assert_array_equal(out.numpy(), want)


def comfy_seg(rng, frames):
  import helpers
  return helpers.seg(rng.random((frames, 12, 10, 3), np.float32),
                     rng.random((12, 10), np.float32), (4, 6, 14, 18))


def test_extension_lists_both_nodes(api):
  extension = comfy.v3_extension(api)
  assert isinstance(extension, api[0])
  nodes = asyncio.run(extension.get_node_list())
  assert [n.define_schema().node_id for n in nodes] == [
      "SEGSPasteJAX", "SEGSPasteJAXPerImage"]


@pytest.mark.slow
def test_module_picks_the_form_at_import(tmp_path):
  """With comfy_api importable, the module offers `comfy_entrypoint` and a
  pack exports only that (ComfyUI reads V1 mappings first)."""
  comfy_stand_in.install(tmp_path)
  code = (
      "import asyncio, sys\n"
      f"sys.path.insert(0, {str(tmp_path)!r})\n"
      "from segspaste_jax import comfy\n"
      "assert comfy.V3_AVAILABLE\n"
      "exports = comfy.pack_exports()\n"
      "assert list(exports) == ['comfy_entrypoint'], exports\n"
      "ext = asyncio.run(exports['comfy_entrypoint']())\n"
      "nodes = asyncio.run(ext.get_node_list())\n"
      "print(sorted(n.define_schema().node_id for n in nodes))\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "['SEGSPasteJAX', 'SEGSPasteJAXPerImage']" in proc.stdout
  proc = subprocess.run(
      [sys.executable, "-c", ("from segspaste_jax import comfy; assert not "
                              "comfy.V3_AVAILABLE; "
                              "print(sorted(comfy.pack_exports()))")],
      capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "['NODE_CLASS_MAPPINGS', 'NODE_DISPLAY_NAME_MAPPINGS']" in proc.stdout
