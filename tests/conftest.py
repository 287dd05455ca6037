"""Shared test setup: the test folder's helpers importable, warnings quiet."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest


def pytest_configure(config):
  # The node warns when it combines mask batches; so do we, on purpose.
  config.addinivalue_line(
      "filterwarnings", "ignore:.*frames are combined.*:UserWarning")


# The event JAX records for every XLA compilation (jax.monitoring).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def compile_counter():
  """Counts XLA backend compilations while the test runs."""
  import jax.monitoring

  events = []
  listening = [True]

  def listener(event, duration, **kwargs):
    del kwargs
    if listening[0] and event == BACKEND_COMPILE_EVENT:
      events.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield events
  finally:
    listening[0] = False
    # (jax 0.8, the oldest supported, cannot unregister listeners)
    unregister = getattr(jax.monitoring, "unregister_event_duration_listener",
                         None)
    if unregister is not None:
      unregister(listener)


# Hypothesis: "ci" (default) keeps the property tests to a couple of minutes
# on two cores, since nearly every example is a new shape and so a new
# compile; HYPOTHESIS_PROFILE=long runs them properly.
try:
  from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test extra; its tests skip without it
  pass
else:
  _QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
  settings.register_profile("ci", max_examples=12, deadline=None,
                            print_blob=True, suppress_health_check=_QUIET)
  settings.register_profile("long", max_examples=500, deadline=None,
                            print_blob=True, suppress_health_check=_QUIET)
  settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
