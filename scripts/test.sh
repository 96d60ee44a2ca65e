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
# The numerically sensitive tests (marker `numeric`) again as a CPU without AVX-512 or native bf16
# runs them: AVX2 kernels in ATen and in oneDNN (which picks its own), and fp32 wherever
# --precision auto would take bf16 here. Their assertions must hold on any CPU, not only this one.
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 RESTYLE_NO_NATIVE_BF16=1 \
        python -m pytest -q -p no:cacheprovider -m numeric "$@"
fi
