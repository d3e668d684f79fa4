#!/usr/bin/env bash
# The GPU check in one command (issue 19, part A): on a CUDA machine, install the carried wheels
# (.whl/, made here by `bash benchmarks/wheels.sh`) into a scratch site folder, then measure and
# write benchmarks/results/*_cuda.{json,md} in at most about 8 minutes (benchmarks/gpu_check.py
# says what each step does). Without a GPU it says so and exits 0, installing and writing
# nothing.
#
# Usage: bash benchmarks/gpu_check.sh [options]      (e.g. --steps operators unet_memory)
#        bash benchmarks/gpu_check.sh --smoke        # CPU, toy sizes, scratch output only
#
# On the device tool: carry [".whl"] and run `bash benchmarks/gpu_check.sh`; with $OUT set the
# result files and the log are copied there.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
