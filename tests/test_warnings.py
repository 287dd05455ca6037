"""Warnings point at the caller: the user's line for a library call, the
command for the CLI, the node's `doit` (V1) or `execute` (V3) for the
ComfyUI nodes; never a line inside `segspaste_jax._src`, nor ComfyUI's
executor (here, the test's own call stands in for it)."""

import sys
import warnings

import comfy_stand_in
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import seg
from segspaste_jax import (cli, comfy, pack_segs, save_segs, segs_paste,
                           stream_segs_paste)
from segspaste_jax._src import types

N, H, W = 2, 16, 16


def _case():
  """A mask batch of 3 frames for 2 frames: combined, with a warning."""
  rng = np.random.default_rng(0)
  image = rng.random((N, H, W, 3), np.float32)
  mask = rng.random((3, 6, 6), np.float32)
  return image, ((H, W), [seg(rng.random((1, 6, 6, 3), np.float32), mask,
                              (2, 2, 8, 8))])


def _where(call):
  """`(file, function)` where `call()`'s one warning points."""
  with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    call()
  (warning,) = [w for w in seen if "combined" in str(w.message)]
  return warning.filename, warning.lineno


def test_library_calls_warn_at_the_callers_line():
  image, segs = _case()
  for call in (lambda: segs_paste(image, segs),
               lambda: pack_segs(segs, image.shape),
               lambda: list(stream_segs_paste(image, segs, chunk=N,
                                              progress=False))):
    filename, _ = _where(call)
    assert filename == __file__
  wrapped = ((H, W), [types.SEG(*segs[1][0][:-1], control_net_wrapper=1)])
  with pytest.warns(UserWarning, match="control_net_wrapper") as seen:
    save_segs("/dev/null", wrapped)
  assert seen[0].filename == __file__


def _lines_of(function):
  code = function.__code__
  return range(code.co_firstlineno, code.co_firstlineno + 60)


def test_v1_nodes_warn_at_doit():
  image, segs = _case()
  tensor = torch.from_numpy(image)
  filename, line = _where(lambda: comfy.SEGSPasteJAX().doit(tensor, segs))
  assert filename == comfy.__file__
  assert line in _lines_of(comfy.SEGSPasteJAX.doit)
  filename, line = _where(lambda: comfy.SEGSPasteJAXPerImage().doit(
      [tensor], [segs]))
  assert filename == comfy.__file__
  assert line in _lines_of(comfy.SEGSPasteJAXPerImage.doit)


def test_v3_nodes_warn_at_execute(monkeypatch):
  package, version = comfy_stand_in.modules()
  monkeypatch.setitem(sys.modules, "comfy_api", package)
  monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", version)
  batch, per_image = comfy.v3_nodes(comfy.load_schema_api()[1])
  image, segs = _case()
  tensor = torch.from_numpy(image)
  for node, kwargs in ((batch, dict(image=tensor, segs=segs)),
                       (per_image, dict(image=[tensor], segs=[segs]))):
    filename, line = _where(lambda: node.execute(**kwargs))  # noqa: B023
    assert filename == comfy.__file__
    assert line in _lines_of(node.execute.__func__)


def test_cli_warns_at_the_command(tmp_path, monkeypatch, capsys):
  image, segs = _case()
  folder = tmp_path / "frames"
  folder.mkdir()
  for k in range(N):
    Image.fromarray((image[k] * 255).astype(np.uint8)).save(
        folder / f"f{k}.png")
  save_segs(tmp_path / "segs.npz", segs)
  seen = []
  show = cli._show_warning  # pylint: disable=protected-access

  def record(message, category, filename, lineno, file=None, line=None):
    seen.append(filename)
    show(message, category, filename, lineno, file, line)

  monkeypatch.setattr(cli, "_show_warning", record)
  with warnings.catch_warnings():
    warnings.simplefilter("always")  # whatever was shown before
    assert cli.main(["paste", "--image", str(folder), "--segs",
                     str(tmp_path / "segs.npz"), "--out",
                     str(tmp_path / "out")]) == 0
  assert seen == [cli.__file__]
  assert "segspaste-jax: warning: segs[1][0].cropped_mask has 3 frames" in (
      capsys.readouterr().err)
