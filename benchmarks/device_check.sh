#!/usr/bin/env bash
# One prepared run on an accelerator machine (a GPU with JAX installed, no
# network): the environment, the benchmark on the accelerator, then tests.
#
#   OUT=/some/dir bash benchmarks/device_check.sh
#
# Nothing is installed: the repository is put on PYTHONPATH and the
# machine's own jax, numpy, torch, chex and pytest are used. Each part has
# its own time limit (BENCH_S, COLOR_S, TEST_S ... seconds) so that the whole run fits a
# short lease; what each part printed is kept under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/segspaste_device}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Several test processes share the GPU: no process takes most of its memory.
export XLA_PYTHON_CLIENT_PREALLOCATE=false

{
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
  $PY -c "import jax, jaxlib, numpy, torch; print('jax', jax.__version__, \
'jaxlib', jaxlib.__version__, 'numpy', numpy.__version__, 'torch', \
torch.__version__); print(jax.devices())"
} 2>&1 | tee "$OUT/env.txt"

# b, d (an on-device copy: the floor) and e are timed 20 calls per sample
timeout "${BENCH_S:-240}" $PY -m benchmarks.run --no-peer \
  --repeats "${REPEATS:-5}" ${BENCH_ARGS:-} --json "$OUT/results.json" \
  2>&1 | tee "$OUT/bench.txt"
echo "benchmark exit: ${PIPESTATUS[0]}" | tee -a "$OUT/bench.txt"

timeout "${COMPILE_S:-90}" $PY -m benchmarks.compile_time --runs 1 \
  2>&1 | tee "$OUT/compile.txt"

# the detailer at the model's resolution: W2 to 512 x 512 and back, in the
# form crop_segs picks and in the dense form (no OpenCV peer on the device)
timeout "${ROUND_S:-120}" $PY -m benchmarks.round_trip --repeats 5 \
  2>&1 | tee "$OUT/round_trip.txt"

# the colour methods and the relative feathering against the plain paste
# on W2 (the issues' budget: at most 1.5x the plain paste, on a GPU too)
timeout "${COLOR_S:-90}" $PY -m benchmarks.color_cost --repeats 5 \
  --json "$OUT/color_cost.json" 2>&1 | tee "$OUT/color_cost.txt"
timeout "${RELATIVE_S:-60}" $PY -m benchmarks.relative_cost --repeats 5 \
  2>&1 | tee "$OUT/relative_cost.txt"

# the same programs on paper (XLA's FLOPs and bytes, compiled for this GPU,
# against the H100 roofline), to set beside the timings above
timeout "${ROOF_S:-120}" $PY -m benchmarks.roofline --json "$OUT/roofline.json" \
  2>&1 | tee "$OUT/roofline.txt"

timeout "${TEST_S:-200}" $PY -m pytest -q -x -n "${TEST_PROCS:-8}" \
  -p no:cacheprovider --durations=10 \
  ${TESTS:-tests/test_program.py tests/test_purity.py tests/test_against_reference.py tests/test_grad.py tests/test_model_resolution.py} \
  2>&1 | tee "$OUT/tests.txt"
echo "tests exit: ${PIPESTATUS[0]}" | tee -a "$OUT/tests.txt"
