#!/usr/bin/env bash
# A real full disk (needs root, for the mount): `restyle serve` with its data folder on a 400 KB
# tmpfs; 40 submissions (chelsea at 128 px, 3 iterations), then the tmpfs grown to 8 MB. Prints
# each answer's status and error, the jobs by status and error, and the server's log lines counted.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
. .venv/bin/activate
mnt=$(mktemp -d)
mount -t tmpfs -o size=400k tmpfs "$mnt" || { echo "cannot mount a tmpfs here (root needed)"; exit 2; }
restyle serve --port 8799 --data "$mnt/srv" --max-size 256 --max-iterations 20 --threads 1 --log-level warning \
    2> "$mnt.log" &
server=$!
trap 'kill $server 2>/dev/null; sleep 1; umount "$mnt"; rmdir "$mnt"; rm -f "$mnt.log"' EXIT
for _ in $(seq 60); do curl -sf localhost:8799/api/server >/dev/null && break; sleep 0.5; done
for _ in $(seq 40); do
    curl -s -o "$mnt.json" -w "%{http_code} " -F content=@"$repo/src/restyle/examples/chelsea.jpg" \
        -F style=starry_night -F 'options={"size": 128, "iterations": 3}' localhost:8799/api/jobs
    python -c "import json,sys; d=json.load(open(sys.argv[1])); print(d.get('error') or d['id'])" "$mnt.json"
done | sort | uniq -c
sleep 10
mount -o remount,size=8m "$mnt"
echo "--- room again (8 MB)"
sleep 40
curl -s "localhost:8799/api/jobs?limit=100" | python -c "
import collections, json, sys
d = json.load(sys.stdin); print(d['counts'])
for (status, error), n in collections.Counter((j['status'], j['error']) for j in d['jobs']).most_common(): print(n, status, error)"
echo "--- the server's log"
cut -c1-240 "$mnt.log" | sed 's/[0-9a-f]\{12\}/ID/g' | sort | uniq -c | sort -rn
