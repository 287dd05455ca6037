"""The public API's own conventions, held by a test (as dm_pix's api_test).

- Everything public is in `segspaste_jax.__all__` (sorted), and nothing else
  leaks out of the package's namespace but its submodules.
- Options are keyword-only. The exceptions are the node's own call shape,
  `doit(image, segs, feather, alpha, ref_image_opt)`, which `segs_paste`
  and `stream_segs_paste` keep so that code written for the node ports
  unchanged, and two arguments that read naturally by position.
- One docstring shape: a one-line summary ending in a full stop, a blank
  line, then `Args:` naming every parameter, and `Returns:` (or `Yields:`)
  unless the function returns None; classes list `Attributes:`.
- Every public name is documented in the API reference (docs/api.rst; the
  Sphinx build, run in CI with warnings as errors, checks the rendering).
"""

import inspect
import pathlib
import re
import types

import pytest

import segspaste_jax

PUBLIC = segspaste_jax.__all__
FUNCTIONS = [n for n in PUBLIC if inspect.isfunction(getattr(segspaste_jax, n))]
CLASSES = [n for n in PUBLIC if inspect.isclass(getattr(segspaste_jax, n))]
# Public data (read-only tables such as FACE_TEMPLATES): upper-case names.
DATA = [n for n in PUBLIC if n not in FUNCTIONS and n not in CLASSES]

# name -> the parameters with defaults that may be passed by position
POSITIONAL_OPTIONS = {
    "segs_paste": {"feather", "alpha", "ref_image_opt"},  # the node's doit
    "stream_segs_paste": {"feather", "alpha", "ref_image_opt"},
    "frames_mesh": {"devices"},            # frames_mesh(jax.devices()[:2])
    "make_packed_segs": {"crops"},         # (regions, masks, crops)
}
DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def test_all_is_sorted_and_complete():
  assert PUBLIC == sorted(PUBLIC)
  assert len(set(PUBLIC)) == len(PUBLIC)
  assert FUNCTIONS and CLASSES
  assert all(n.isupper() for n in DATA), DATA
  leaked = [n for n in dir(segspaste_jax) if not n.startswith("_")
            and n not in PUBLIC
            and not isinstance(getattr(segspaste_jax, n), types.ModuleType)]
  assert leaked == []


@pytest.mark.parametrize("name", FUNCTIONS)
def test_options_are_keyword_only(name):
  params = inspect.signature(getattr(segspaste_jax, name)).parameters.values()
  positional = {p.name for p in params if p.default is not p.empty
                and p.kind is p.POSITIONAL_OR_KEYWORD}
  assert positional == POSITIONAL_OPTIONS.get(name, set())


def _section(doc: str, title: str) -> str | None:
  """The indented body of a Google-style docstring section, or None."""
  match = re.search(rf"^{title}:\n((?:(?:  .*)?\n)*)", doc + "\n", re.M)
  return None if match is None else match.group(1)


def _documented_names(body: str) -> set[str]:
  """The names a section documents: `name:` or `a, b:` at its first
  indentation level."""
  names = set()
  for line in body.splitlines():
    match = re.match(r"^  (\w+(?:, \w+)*)( \(.*\))?:", line)
    if match:
      names.update(match.group(1).split(", "))
  return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_docstrings_have_one_shape(name):
  function = getattr(segspaste_jax, name)
  doc = inspect.getdoc(function)
  assert doc, name
  lines = doc.splitlines()
  assert lines[0].endswith("."), lines[0]
  assert len(lines) == 1 or lines[1] == "", "one-line summary, then a blank"
  params = [p for p in inspect.signature(function).parameters
            if p not in ("self", "cls")]
  args = _section(doc, "Args")
  assert (args is None) == (not params), "Args: iff there are parameters"
  if params:
    assert set(params) <= _documented_names(args), (
        set(params) - _documented_names(args))
  returns_none = inspect.signature(function).return_annotation in (
      None, "None")
  has_result = (_section(doc, "Returns") is not None
                or _section(doc, "Yields") is not None)
  assert has_result != returns_none, "Returns:/Yields: unless it is None"


@pytest.mark.parametrize("name", CLASSES)
def test_class_docstrings_list_their_attributes(name):
  cls = getattr(segspaste_jax, name)
  doc = inspect.getdoc(cls)
  assert doc and doc.splitlines()[0].endswith(".")
  attributes = _section(doc, "Attributes")
  assert attributes is not None, name
  fields = getattr(cls, "_fields", None) or [
      f for f in getattr(cls, "__dataclass_fields__", {})]
  assert fields and set(fields) <= _documented_names(attributes), (
      set(fields) - _documented_names(attributes))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_in_the_api_reference(name):
  text = (DOCS / "api.rst").read_text()
  assert re.search(
      rf"^\.\. auto(function|class|data):: (segspaste_jax\.)?{name}$",
      text, re.M), name
