#!/usr/bin/env bash
# Create .venv and install restyle into it. torch is pinned to the CPU build and installed
# first, explicitly: any other spelling pulls gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check torch==2.13.0
python -m pip install -q --disable-pip-version-check -e '.[test]'
