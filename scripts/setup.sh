#!/usr/bin/env bash
# Create .venv and install speciesgan with the workflow tools, the studio and test tools.
#
# torch/torchvision: by default exactly the versions CI uses (torch 2.14.1 and
# torchvision 0.29.1 from PyPI, CUDA 13 builds), installed only when torch is missing;
# an existing torch in the venv is kept.  CUDA 13 needs NVIDIA driver >= 580 and has no
# kernels for P100/V100.  For an older driver or GPU choose a build from PyTorch's index
# (docs/cluster.md, "GPU builds and drivers"):
#
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 bash scripts/setup.sh
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu118 TORCH_VERSION=2.7.1 \
#       TORCHVISION_VERSION=0.22.1 bash scripts/setup.sh
#
# With TORCH_INDEX_URL set, torch and torchvision come from that index and replace the
# installed ones unless those already are TORCH_VERSION/TORCHVISION_VERSION with the
# index's tag (e.g. 2.14.1+cu126).  TORCH_VERSION and TORCHVISION_VERSION override the
# pins (any release that pyproject.toml's ranges admit).
# SETUP_DRY_RUN=1 prints the commands that would change .venv instead of running them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}

run() {
  if [ -n "${SETUP_DRY_RUN:-}" ]; then
    echo "+ $*"
  else
    "$@"
  fi
}

# "2.14.1+cu126 0.29.1+cu126" for the installed pair, empty when torch is missing
installed_torch() {
  python -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)' \
    2>/dev/null || true
}

if [ ! -x .venv/bin/python ]; then
  run "$PYTHON" -m venv .venv
fi
if [ -f .venv/bin/activate ]; then
  . .venv/bin/activate
fi
run python -m pip install --quiet --upgrade pip
if [ -n "$TORCH_INDEX_URL" ]; then
  tag=${TORCH_INDEX_URL%/}
  tag=${tag##*/}
  wanted="$TORCH_VERSION+$tag $TORCHVISION_VERSION+$tag"
  have=$(installed_torch)
  if [ "$have" != "$wanted" ]; then
    echo "torch from $TORCH_INDEX_URL: want $wanted, have ${have:-none}"
    if [ -n "$have" ]; then
      # pip counts 2.14.1+cu130 as satisfying torch==2.14.1: remove it to switch builds
      run python -m pip uninstall --quiet --yes torch torchvision
    fi
    run python -m pip install --quiet --index-url "$TORCH_INDEX_URL" \
      "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  fi
elif [ -z "$(installed_torch)" ]; then
  run python -m pip install --quiet "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
run python -m pip install --quiet -e ".[workflow,dev,studio]"
if [ -z "${SETUP_DRY_RUN:-}" ]; then
  echo "speciesgan installed in $(pwd)/.venv ($(python -c 'import torch; print("torch", torch.__version__, "CUDA build", torch.version.cuda or "none")'))"
  echo "check the GPU set-up on a GPU node with: speciesgan doctor"
fi
