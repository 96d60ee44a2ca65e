#!/usr/bin/env bash
# Set up, then stylise the bundled cat photo with The Starry Night at 256 px (about a minute on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
mkdir -p out
restyle run src/restyle/examples/chelsea.jpg src/restyle/examples/starry_night.jpg --size 256 -o out/chelsea_starry_night.png "$@"
