#!/usr/bin/env bash
# Create .venv and install restyle into it (with the extras named in $EXTRAS, e.g. "all,test").
# torch is installed first, explicitly, as the CPU build torch==2.13.0: any other spelling pulls
# gigabytes of CUDA packages. pyproject.toml itself asks only for torch>=2.2, so a user's own
# torch (a CUDA build, say) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check torch==2.13.0
python -m pip install -q --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}"
