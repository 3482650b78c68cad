#!/usr/bin/env bash
# Create .venv and install speciesgan with the workflow tools and test tools.
# torch/torchvision are installed first at the versions this project's CI uses;
# on a GPU cluster install your CUDA build of torch into the venv instead
# (any release that pyproject.toml's ranges admit), then rerun this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if ! python -c "import torch, torchvision" 2>/dev/null; then
  python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi
python -m pip install --quiet -e ".[workflow,dev]"
echo "speciesgan installed in $(pwd)/.venv ($(python -c 'import torch; print("torch", torch.__version__)'))"
