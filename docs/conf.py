"""Sphinx configuration: the API reference, generated from the docstrings.

Build it (warnings as errors) with

    pip install -e '.[docs]'
    python -m sphinx -W --keep-going -b html docs /tmp/segspaste-docs
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

# A checkout's own package first, so the docs describe this source tree.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                "..")))

import segspaste_jax

project = "segspaste_jax"
author = "segspaste_jax contributors"
copyright = "segspaste_jax contributors"  # pylint: disable=redefined-builtin
release = segspaste_jax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

# The docstrings write names and shapes in single backticks, as Markdown
# does: make that a Python cross-reference (shown as code; a link where the
# name is documented here, plain code otherwise).
default_role = "py:obj"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# The NamedTuple fields are all annotated `Any`: the docstrings say the rest.
napoleon_attr_annotations = False

html_theme = "alabaster"
html_title = f"segspaste_jax {release}"
exclude_patterns = ["_build"]


class CliHelp(Directive):
  """`.. cli-help:: [COMMAND]`: the `segspaste-jax [COMMAND] --help` text."""

  optional_arguments = 1

  def run(self):
    from segspaste_jax import cli  # pylint: disable=import-outside-toplevel
    argv = self.arguments + ["--help"]
    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"  # argparse wraps at the terminal's width
    try:
      with contextlib.redirect_stdout(out):
        try:
          cli.main(argv)
        except SystemExit:
          pass
    finally:
      if old is None:
        del os.environ["COLUMNS"]
      else:
        os.environ["COLUMNS"] = old
    text = out.getvalue().rstrip()
    if not text:
      raise self.error(f"segspaste-jax {' '.join(argv)} printed nothing")
    return [nodes.literal_block(text, text)]


class ComfyInputs(Directive):
  """`.. comfy-inputs::`: the ComfyUI nodes' inputs, from their one table
  (`segspaste_jax.comfy._INPUTS`): name, kind, range, default, tooltip."""

  def run(self):
    from segspaste_jax import comfy  # pylint: disable=import-outside-toplevel
    lines = []
    for spec in comfy._INPUTS:  # pylint: disable=protected-access
      options = spec.options or {}
      kind = spec.kind
      if "choices" in options:
        kind += " " + " | ".join(f"``{c}``" for c in options["choices"])
      elif "min" in options:
        kind += f" {options['min']}..{options['max']}"
      facts = [kind] + (["optional"] if spec.optional else [])
      if "default" in options:
        facts.append(f"default ``{options['default']}``")
      lines.append(f"- ``{spec.name}`` ({', '.join(facts)}): "
                   f"{spec.tooltip}")
    node = nodes.container()
    self.state.nested_parse(StringList(lines, "comfy-inputs"),
                            self.content_offset, node)
    return node.children


def _check_all_documented(app, env):
  """Warns (an error under -W) for a public name the reference leaves out."""
  objects = env.get_domain("py").objects
  missing = [name for name in segspaste_jax.__all__
             if f"segspaste_jax.{name}" not in objects]
  if missing:
    from sphinx.util import logging  # pylint: disable=import-outside-toplevel
    logging.getLogger(__name__).warning(
        "segspaste_jax.__all__ names missing from the API reference: %s",
        ", ".join(missing))


def _public_name(app, env, node, contnode):
  """Resolves `segs_paste` in any module's docstring to `segspaste_jax.`'s."""
  if node.get("refdomain") != "py":
    return None
  target = f"segspaste_jax.{node.get('reftarget', '')}"
  domain = env.get_domain("py")
  if target not in domain.objects:
    return None
  return domain.resolve_xref(env, node["refdoc"], app.builder,
                             node["reftype"], target, node, contnode)


def setup(app):
  app.add_directive("cli-help", CliHelp)
  app.add_directive("comfy-inputs", ComfyInputs)
  app.connect("env-check-consistency", _check_all_documented)
  app.connect("missing-reference", _public_name)
  return {"parallel_read_safe": True}
