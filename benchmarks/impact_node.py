"""Runs the real Impact Pack `SEGSPaste.doit` from a local checkout.

The speed issue is checked against the real node, not against our
re-statement of it (`tests/node_baseline.py`). This module loads the
node's own code from a checkout of ComfyUI-Impact-Pack that the user points
at, so the benchmark can time it beside ours in one process. Nothing of the
Impact Pack is copied into this repository: the functions are read from the
checkout's source at run time.

The node's modules import ComfyUI (`comfy`, `nodes`, `folder_paths`), cv2
and a server at import time. Rather than importing them, this module parses
`modules/impact/utils.py`, `core.py` and `segs_nodes.py` with `ast`, takes
the top-level function definitions and the `SEGSPaste` class, and executes
them in one namespace that holds torch, torchvision, numpy, Pillow and a
stand-in for the two ComfyUI attributes the paste path reads
(`comfy.model_management.get_torch_device()` and `args.highvram` /
`args.gpu_only`). Functions that need anything else fail only if called.

torchvision is required (the node blurs with `torchvision.transforms.
GaussianBlur`); on this project's machines it imports beside
`torch==2.14.1 torchvision==0.29.1`, not beside the CPU build torch 2.13.0.

Usage:
  python -m benchmarks.run --impact-pack /path/to/ComfyUI-Impact-Pack
"""

from __future__ import annotations

import ast
import pathlib
import types

import numpy as np


def _definitions(path: pathlib.Path, names=None, classes=()):
  """Source of top-level functions (all, or `names`) and `classes`."""
  tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
  keep = []
  for node in tree.body:
    if isinstance(node, ast.FunctionDef) and (names is None
                                              or node.name in names):
      keep.append(node)
    elif isinstance(node, ast.ClassDef) and node.name in classes:
      keep.append(node)
  return compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec")


def load_node(checkout):
  """Returns the real node's `doit(image, segs, feather, alpha, ref)`.

  Args:
    checkout: path to a ComfyUI-Impact-Pack checkout (the folder holding
      `modules/impact/`).

  Raises:
    FileNotFoundError: `checkout` has no `modules/impact/segs_nodes.py`.
    ImportError: torch or torchvision does not import.
  """
  import torch
  import torch.nn.functional as F
  import torchvision
  from PIL import Image

  root = pathlib.Path(checkout) / "modules" / "impact"
  if not (root / "segs_nodes.py").is_file():
    raise FileNotFoundError(
        f"impact pack checkout: expected {root / 'segs_nodes.py'}")

  model_management = types.SimpleNamespace(
      get_torch_device=lambda: torch.device("cpu"))
  comfy = types.SimpleNamespace(model_management=model_management)
  namespace = {
      "__name__": "impact_node", "torch": torch, "torchvision": torchvision,
      "np": np, "F": F, "Image": Image, "comfy": comfy,
      "args": types.SimpleNamespace(highvram=False, gpu_only=False),
  }
  exec(_definitions(root / "utils.py"), namespace)
  namespace["utils"] = types.SimpleNamespace(
      **{k: v for k, v in namespace.items() if callable(v)})
  core_namespace = dict(namespace)
  exec(_definitions(root / "core.py"), core_namespace)
  namespace["core"] = types.SimpleNamespace(
      **{k: v for k, v in core_namespace.items() if callable(v)})
  exec(_definitions(root / "segs_nodes.py", names=(), classes=("SEGSPaste",)),
       namespace)
  node = namespace["SEGSPaste"]

  def doit(image, segs, feather=5, alpha=255, ref_image_opt=None):
    if isinstance(image, np.ndarray):
      image = torch.from_numpy(image)
    return node.doit(image, segs, feather, alpha, ref_image_opt)[0]

  return doit
