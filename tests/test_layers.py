"""The checking module imports no compute module (docs/development.rst)."""

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parent.parent / "segspaste_jax" / "_src"


def _imported(path):
  """The `segspaste_jax._src` modules a file imports at its top level."""
  names = set()
  for node in ast.parse(path.read_text(encoding="utf-8")).body:
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module.startswith("segspaste_jax._src")):
      if node.module == "segspaste_jax._src":
        names.update(alias.name for alias in node.names)
      else:
        names.add(node.module.rsplit(".", 1)[1])
  return names


def test_validate_imports_no_compute_module():
  # arrays: the array kinds at the edge; types: shared names and shapes
  assert _imported(SRC / "validate.py") <= {"arrays", "types"}


def test_the_compute_imports_its_names_from_types():
  assert "types" in _imported(SRC / "feather.py")
  assert "types" in _imported(SRC / "blend.py")
