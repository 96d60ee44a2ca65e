#!/usr/bin/env bash
# The API contract, as an integrator checks it: for each seed given, a fresh
# `restyle serve --max-size 256 --max-iterations 20` (one CPU worker) and schemathesis against its
# /openapi.json, every phase, 30 examples an operation, one worker, with the one allowance of
# tests/server/schemathesis.toml; run from an empty folder, so no project config applies.
# Usage: bash bench/api/fuzz.sh 1 2 3   (after EXTRAS=all,test bash scripts/setup.sh)
# Writes bench/api/results/fuzz-seed-N.txt (schemathesis's report) and prints one line a seed.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
. .venv/bin/activate
out=$repo/bench/api/results
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
for seed in "$@"; do
    rm -rf "$work/data"
    restyle serve --port 0 --data "$work/data" --max-size 256 --max-iterations 20 --log-level warning \
        2> "$work/serve.log" &
    server=$!
    url=""
    for _ in $(seq 120); do
        url=$(grep -o 'http://[^/ ]*/' "$work/serve.log" | head -1) && [ -n "$url" ] && break
        sleep 0.5
    done
    (cd "$work" && schemathesis --config-file "$repo/tests/server/schemathesis.toml" run "${url}openapi.json" \
        -n 30 -w 1 --request-timeout 20 --seed "$seed" --no-color) > "$out/fuzz-seed-$seed.txt" 2>&1
    rc=$?
    jobs=$(curl -s "${url}api/server" | python -c 'import json,sys; print(json.load(sys.stdin)["counts"])')
    echo "seed $seed: exit $rc; $(grep -Eo '[0-9]+ generated, [^=]*' "$out/fuzz-seed-$seed.txt" | tail -1); jobs $jobs"
    kill "$server"; wait "$server" 2>/dev/null
done
