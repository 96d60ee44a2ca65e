#!/usr/bin/env bash
# Set up (every extra, the test tools, and Debian's chromium for the browser tests), then check
# the import layers, lint, type-check and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=all,test bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
    # Playwright's own browser download is not available here; Debian's chromium is.
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
. .venv/bin/activate
lint-imports
ruff check src tests bench
mypy
python -m pytest -q "$@"
