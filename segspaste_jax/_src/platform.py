"""Which form of the paste program to build: the one backend switch.

Everything that depends on the backend asks here. The paste has two forms
of one computation (`segspaste_jax._src.accelerator` and
`segspaste_jax._src.cpu`; `paste.paste_core` picks one):

- "accelerator": straight-line, for GPUs and TPUs: every segment's mask is
  feathered and resized at once (`vmap`, matrix products), then the
  segments are blended in order without a single branch or loop, so that
  nothing waits on a predicate read back to the host.
- "cpu": XLA:CPU runs branches for free, so it skips padding slots and
  same-size resizes with `lax.cond` inside a `lax.scan`, and blurs with
  banded sums, which cost far less than matrix products there.

The CPU form is used only where the image is known, before tracing, to
live on a CPU; everything else (GPU and TPU arrays, tracers inside a
caller's `jit`, `vmap` or `grad`, programs exported for another platform)
gets the accelerator form, which is correct everywhere.

The resampling to and from a model's resolution (`model_size`) follows
the same rule for the arrays it can see (a loop over crops on a CPU,
every crop at once elsewhere); for tracers it leaves the choice to the
compiler (`lax.platform_dependent`, `model_size.loop_for`), which costs
nothing there: both forms give the same values, neither branches on data.
"""

from __future__ import annotations

import jax

FORMS = ("cpu", "accelerator")


def form_of(x) -> str:
  """"cpu" or "accelerator": the paste form for an image `x`.

  Args:
    x: a JAX array (concrete or traced), or host data (numpy, torch), which
      goes to the default backend.
  """
  if isinstance(x, jax.core.Tracer):
    return "accelerator"
  if isinstance(x, jax.Array):
    on_cpu = all(d.platform == "cpu" for d in x.devices())
  else:
    on_cpu = jax.default_backend() == "cpu"
  return "cpu" if on_cpu else "accelerator"


def form_of_devices(devices) -> str:
  """The paste form for a program that runs on `devices` (e.g. a mesh's)."""
  return "cpu" if all(d.platform == "cpu" for d in devices) else "accelerator"
