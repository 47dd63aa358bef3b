#!/usr/bin/env bash
# The benchmark suite's device part, on a machine with a CUDA build of JAX.
#
# Needs jax with CUDA, numpyro, diffrax, equinox, xarray, scipy and numba (e.g. `pip install -e
# ".[gpu,bench]"`, or an image that already has them: nothing else of the package is imported,
# and the package need not be installed: it runs from this checkout). Writes
# benchmarks/results/*_gpu*.json, and copies them to $OUT when that is set (the device tool).
#
#   scripts/gpu_benchmarks.sh            # about 5 minutes on one H100/H200
#   PYTHON=/path/to/python scripts/gpu_benchmarks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
R=benchmarks/results
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
"$PY" -c "import jax; print('jax', jax.__version__, jax.default_backend(), jax.devices())"
"$PY" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 'no GPU backend: install a CUDA build of JAX')"
# S8 reference workload: trajectories and summaries on the device, 1e6 and 1e7 members, float32.
"$PY" benchmarks/bench_device.py --members 1000000 10000000 --output "$R/device_gpu.json"
# float64 on request: the same at 1e6 members.
"$PY" benchmarks/bench_device.py --members 1000000 --dtype float64 --no-diffrax --output "$R/device_gpu_float64.json"
# Large peer networks: edge-steps per second.
"$PY" benchmarks/bench_network.py --sites 10000 100000 --output "$R/network_gpu.json"
# Flagship model ensembles against numpy and diffrax.
"$PY" benchmarks/bench_simulate.py --members 1000 100000 1000000 --output "$R/simulate_gpu.json"
if [ -n "${OUT:-}" ]; then cp "$R"/*_gpu*.json "$OUT"/; fi
