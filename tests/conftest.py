"""Shared test setup: the test folder's helpers importable, warnings quiet."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


def pytest_configure(config):
  # The node warns when it combines mask batches; so do we, on purpose.
  config.addinivalue_line(
      "filterwarnings", "ignore:.*frames are combined.*:UserWarning")


@pytest.fixture
def compile_counter():
  """Counts XLA backend compilations while the test runs."""
  import jax.monitoring
  from jax._src import dispatch

  events = []

  def listener(event, duration, **kwargs):
    if event == dispatch.BACKEND_COMPILE_EVENT:
      events.append(duration)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield events
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
