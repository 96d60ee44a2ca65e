#!/usr/bin/env bash
# Build the training photo corpus from the packages that ship it (see src/restyle/train/CORPUS.md).
# Usage: bash scripts/corpus.sh [DEST]   (default: $RESTYLE_CORPUS or ~/.cache/restyle/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# apt-get download needs the package lists; fetch them once if there are none.
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
    $SUDO apt-get update -qq
fi
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m restyle.train.corpus build "$@"
