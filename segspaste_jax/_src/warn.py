"""Warnings that point at the caller.

A warning raised deep in the library (a mask batch combined, a SEG field
not saved) is reported at the first frame outside `segspaste_jax._src`:
the user's line for a library call (`segs_paste`, `stream_segs_paste`,
`pack_segs`, `save_segs`), the command's line in `segspaste_jax.cli` for
the CLI, and the node's `doit` (V1) or `execute` (V3) in
`segspaste_jax.comfy` for the ComfyUI nodes, rather than ComfyUI's own
executor, which calls every node alike.
"""

from __future__ import annotations

import os
import sys
import warnings

_SRC_DIR = os.path.dirname(os.path.abspath(__file__))


def caller_stacklevel() -> int:
  """The `stacklevel` of the first frame outside `segspaste_jax._src`, as
  seen from the function that calls this one."""
  frame, level = sys._getframe(1), 1  # pylint: disable=protected-access
  while frame is not None and os.path.abspath(
      frame.f_code.co_filename).startswith(_SRC_DIR + os.sep):
    frame, level = frame.f_back, level + 1
  return level


def warn(message: str) -> None:
  """`warnings.warn(message)` (a `UserWarning`), at the caller's line."""
  warnings.warn(message, stacklevel=caller_stacklevel())
