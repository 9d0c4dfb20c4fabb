#!/usr/bin/env bash
# hotkeys.sh: measure hot-key mitigation on a 3-node cluster (RF 3) with a
# zipfian read-heavy load through ONE node at consistency ONE, with and
# without mitigation (spreading ONE reads of hot keys over their replicas,
# plus the coordinator cache), and print throughput, p99 and the reads each
# node's replica served.
#
# Needs: a ringkv binary (RINGKV_BIN, default: go build). About 1 minute.
# Environment: KEYS [100000], DURATION [10s], ZIPF_S [1.2], CACHE_TTL [100ms],
# BASE_PORT [31000].
set -euo pipefail

KEYS=${KEYS:-100000}
DURATION=${DURATION:-10s}
ZIPF_S=${ZIPF_S:-1.2}
CACHE_TTL=${CACHE_TTL:-100ms}
BASE_PORT=${BASE_PORT:-31000}
OUT=$(mktemp -d -t ringkv-hotkeys-XXXXXX)
PIDS=()

reap() {
	local pid i
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	PIDS=()
}
trap 'reap; [[ -n ${KEEP:-} ]] || rm -rf "$OUT"' EXIT

if [[ -z ${RINGKV_BIN:-} ]]; then
	RINGKV_BIN=$OUT/ringkv
	(cd "$(dirname "$0")/.." && go build -o "$RINGKV_BIN" ./cmd/ringkv)
fi

port() { echo $((BASE_PORT + $1)); }

start_cluster() { # $1: extra server flags
	local i join
	for i in 1 2 3; do
		join=""
		[[ $i -gt 1 ]] && join="--join 127.0.0.1:$(port 13)"
		# shellcheck disable=SC2086
		"$RINGKV_BIN" server --node-id "h$i" --data-dir "$OUT/data/h$i" \
			--client-addr "127.0.0.1:$(port $((i * 10)))" --http-addr "127.0.0.1:$(port $((i * 10 + 1)))" \
			--peer-addr "127.0.0.1:$(port $((i * 10 + 2)))" --gossip-addr "127.0.0.1:$(port $((i * 10 + 3)))" \
			$join --log-level warn $1 >"$OUT/h$i.log" 2>&1 &
		PIDS+=($!)
		sleep 0.3
	done
	for _ in $(seq 300); do
		if [[ $("$RINGKV_BIN" status --addr "127.0.0.1:$(port 11)" -o json 2>/dev/null | grep -c '"state": "normal"' || true) -ge 3 ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "hotkeys.sh: cluster did not form (logs in $OUT)" >&2
	exit 1
}

reads() { # reads served by each node's replica
	local i
	for i in 1 2 3; do
		curl -s "127.0.0.1:$(port $((i * 10 + 1)))/metrics" | awk '/^ringkv_replica_reads_total /{printf "%d ", $2}'
	done
}

run() { # $1 label, $2 server flags
	start_cluster "$2"
	"$RINGKV_BIN" bench --addr "127.0.0.1:$(port 10)" --keys "$KEYS" --ratio 0:1:0 --requests "$KEYS" \
		--pipeline 16 --consistency ALL -q >/dev/null
	local before after
	before=$(reads)
	"$RINGKV_BIN" bench --addr "127.0.0.1:$(port 10)" --keys "$KEYS" --dist zipfian --zipf-s "$ZIPF_S" \
		--ratio 95:5:0 --consistency ONE --conns 50 --pipeline 1 --duration "$DURATION" -q --json >"$OUT/$1.json"
	after=$(reads)
	python3 - "$1" "$OUT/$1.json" "$before" "$after" <<'PY'
import json, sys
label, path, before, after = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
r = json.load(open(path))
ops = {o["op"]: o for o in r["ops"]}
get = ops["GET"]
reads = [int(a) - int(b) for a, b in zip(after, before)]
total = sum(reads) or 1
print(f"{label:<14} {ops['ALL']['ops_per_sec']:>10.0f} "
      f"{get['p99_ms']:>8.2f}   " + "  ".join(f"{x / total:>5.1%}" for x in reads))
PY
	reap
	rm -rf "$OUT/data"
}

echo "zipfian s=$ZIPF_S over $KEYS keys, 95:5 GET:SET at ONE through node 1, 50 conns, $DURATION"
printf '%-14s %10s %8s   %s\n' "MITIGATION" "OPS/S" "GET p99" "replica reads on h1 h2 h3"
run off "--hot-cache-ttl 0 --hot-keys-min-rate 1e12"
run spread "--hot-cache-ttl 0"
run spread+cache "--hot-cache-ttl $CACHE_TTL"
