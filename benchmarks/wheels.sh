#!/usr/bin/env bash
# Download the wheels a bare GPU machine lacks into .whl/ (ignored by git), for
# benchmarks/gpu_check.sh to install offline there.
#
# The GPU machine has Python 3.12 with torch, triton, numpy, scipy, scikit-learn, scikit-image,
# matplotlib, numba, timm, safetensors, rich, typer, pyyaml, click, jinja2, msgpack, psutil,
# cloudpickle, fsspec, toolz, sortedcontainers, pytest and hypothesis, and no network. These are
# the project's dependencies (pyproject.toml) it does not have, with their own missing needs,
# pinned to the versions the CPU tests run with. One version of each: stale wheels are removed.
#
# Not carried: astra-toolbox. Its manylinux wheel links CUDA 12 (nvidia-cuda-runtime-cu12 and
# nvidia-cufft-cu12, about 200 MB), which neither fits the 64 MiB a device call carries nor
# matches the machine's CUDA 13; gpu_check records ASTRA as not importable there.
#
# Usage: bash benchmarks/wheels.sh            # into .whl/
#        WHEEL_DIR=/tmp/w bash benchmarks/wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${WHEEL_DIR:-.whl}
pins=(
    monai==1.6.1
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
    dask==2026.8.0 distributed==2026.8.0 partd==1.4.2 locket==1.0.0 zict==3.0.0
    tblib==3.2.2 tornado==6.6.1
    pydicom==3.0.2
    pydantic==2.13.4 pydantic_core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2
    typing_extensions==4.16.0
)
platforms=()
for p in manylinux_2_{17,24,27,28,31,34,35}_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
mkdir -p "$dest"
rm -f "$dest"/*.whl
start=$(date +%s.%N)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d "$dest" "${pins[@]}"
end=$(date +%s.%N)
n=$(ls "$dest"/*.whl | wc -l)
size=$(du -sh "$dest" | cut -f1)
printf 'wheels: %s files, %s in %s, downloaded in %.1f s\n' "$n" "$size" "$dest" "$(echo "$end - $start" | bc)"
