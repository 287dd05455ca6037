"""A stand-in of ComfyUI's pinned V3 node API, `comfy_api.v0_0_2`.

Written from what ComfyUI's `comfy_api.latest._io` does (commit 004b1b5 of
comfyanonymous/ComfyUI; `v0_0_2` re-exports `latest`'s `io` and
`ComfyExtension`), not copied from it: inputs are objects that know their
V1 form, `("TYPE", {options without None})` under "required" or
"optional" by their `optional` flag (a combo's: `("COMBO", {"options":
[...], "multiselect": False, ...})`); a `Schema` lists them in order;
nodes subclass `io.ComfyNode` and define the classmethods `define_schema`
and `execute`, which returns `io.NodeOutput`; an extension lists its nodes
from `async get_node_list`.

`install(root)` writes it as a package under `root`, for subprocesses;
`modules()` builds it in memory.
"""

import pathlib
import types

SOURCE = '''
import abc


class _Input:
  def __init__(self, id, display_name=None, optional=False, tooltip=None,
               **options):
    self.id, self.display_name = id, display_name
    self.optional, self.tooltip, self.options = optional, tooltip, options

  def v1(self):
    options = {k: v for k, v in self.options.items() if v is not None}
    if self.tooltip is not None:
      options["tooltip"] = self.tooltip
    return (self.io_type, options)


class _Output:
  def __init__(self, id=None, display_name=None, tooltip=None,
               is_output_list=False):
    self.id, self.display_name, self.tooltip = id, display_name, tooltip
    self.is_output_list = is_output_list


def _type(name):
  input_cls = type("Input", (_Input,), {"io_type": name})
  output_cls = type("Output", (_Output,), {"io_type": name})
  return type(name, (), {"Input": input_cls, "Output": output_cls,
                         "io_type": name})


class _Io:
  Image = _type("IMAGE")
  Int = _type("INT")
  Float = _type("FLOAT")
  Boolean = _type("BOOLEAN")

  class Combo:
    io_type = "COMBO"

    class Input(_Input):
      io_type = "COMBO"

      def __init__(self, id, options=None, **kwargs):
        super().__init__(id, **kwargs)
        self.options.update(multiselect=False, options=list(options))

  @staticmethod
  def Custom(name):
    return _type(name)

  class Schema:
    def __init__(self, node_id, display_name=None, category="sd",
                 inputs=(), outputs=(), description="", is_input_list=False,
                 **flags):
      self.node_id, self.display_name, self.category = (
          node_id, display_name, category)
      self.inputs, self.outputs = list(inputs), list(outputs)
      self.description, self.is_input_list = description, is_input_list
      self.flags = flags

    def v1_input_types(self):
      types = {"required": {}}
      for i in self.inputs:
        types.setdefault("optional" if i.optional else "required",
                         {})[i.id] = i.v1()
      return types

  class ComfyNode(abc.ABC):
    @classmethod
    @abc.abstractmethod
    def define_schema(cls):
      raise NotImplementedError

    @classmethod
    @abc.abstractmethod
    def execute(cls, **kwargs):
      raise NotImplementedError

  class NodeOutput:
    def __init__(self, *args, ui=None):
      self.args, self.ui = args, ui


io = _Io


class ComfyExtension(abc.ABC):
  async def on_load(self):
    pass

  @abc.abstractmethod
  async def get_node_list(self):
    raise NotImplementedError
'''


def install(root) -> pathlib.Path:
  """Writes `comfy_api/v0_0_2/__init__.py` under `root`; returns `root`."""
  root = pathlib.Path(root)
  package = root / "comfy_api" / "v0_0_2"
  package.mkdir(parents=True)
  (root / "comfy_api" / "__init__.py").write_text("", encoding="utf-8")
  (package / "__init__.py").write_text(SOURCE, encoding="utf-8")
  return root


def modules():
  """`(comfy_api, comfy_api.v0_0_2)` as in-memory modules."""
  package = types.ModuleType("comfy_api")
  version = types.ModuleType("comfy_api.v0_0_2")
  exec(compile(SOURCE, "comfy_api/v0_0_2/__init__.py", "exec"),
       version.__dict__)
  package.v0_0_2 = version
  return package, version
