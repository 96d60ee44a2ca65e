#!/usr/bin/env bash
# Set up, then check the import layers, lint, type-check and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
lint-imports
ruff check src tests bench
mypy
python -m pytest -q "$@"
