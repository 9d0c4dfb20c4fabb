#!/usr/bin/env bash
# compare.sh: start redis-server, a Redis Cluster and ringkv (1 node and
# 3 nodes) on loopback, load each with redis-benchmark and `ringkv bench`
# using the same client settings, and print one table with ratios. Each row
# also gives the servers' CPU per request (CPU us: user + system time of every
# server process of that system, not the client's, divided by the requests),
# which a noisy box moves far less than throughput, their read and write
# system calls per request (R+W/req, from /proc/PID/io), and each system's
# resident memory after its first SETs. With RINGKV_BIN_B it also measures one
# build of ringkv against another.
#
# The open-loop sweep (SWEEP=1, the default) loads ringkv's 3 nodes (RF 3,
# QUORUM) and the Redis Cluster (3 masters + 3 replicas) with `ringkv bench`
# at fixed rates, no pipelining, 50:50 GET/SET, from SWEEP_START req/s up by
# SWEEP_STEP until p99 reaches SWEEP_P99_MS or the rate is not held (fewer
# than 99% of the requests due completed, or any error reply). Its row "open
# sweep p99<5ms" is the highest rate held under that p99; its xCLUSTER is
# ringkv's over the cluster's. Every step is in sweep.tsv and printed after
# the table.
#
# Needs: go (to build ringkv, unless RINGKV_BIN is set), redis-server,
# redis-cli, redis-benchmark. Takes about 3 minutes per round with the
# defaults on two cores, and the sweep 12 s per step, about 8 steps per
# system from 5000 req/s to 30000 req/s.
#
# Environment (defaults in brackets):
#   KEYS [1000000]       keyspace (-r of redis-benchmark, --keys of ringkv bench)
#   CONNS [50]           client connections
#   VALUE [100]          value size in bytes
#   REQ_P16 [500000]     redis-benchmark requests per test at pipeline 16
#   REQ_P1 [100000]      redis-benchmark requests per test without pipelining
#   CLUSTER_REQ_FACTOR [4] the 3-node systems' redis-benchmark runs make this
#                        many times REQ_P16 and REQ_P1 requests: with --cluster,
#                        redis-benchmark's elapsed time is counted in steps of
#                        250 ms, a tenth or more of a 2-second run
#   DURATION [10s]       each ringkv bench run, after a 2s warmup
#   OPEN_RATE [25000]    open-loop rate on the 3-node systems (req/s)
#   SWEEP [1]            0: no open-loop sweep
#   SWEEP_START [5000]   the sweep's first rate (req/s)
#   SWEEP_STEP [1.25]    each next rate is the last one times this
#   SWEEP_DURATION [10s] each step's measured time, after a SWEEP_WARMUP_S
#   SWEEP_WARMUP_S [2]   seconds warmup (not counted)
#   SWEEP_P99_MS [5]     the p99 a held rate must stay under
#   SWEEP_MAX [2000000]  a rate the sweep never passes
#   SWEEP_STEPS [40]     at most this many steps per system
#   ROUNDS [1]           run every system this many times, in turn, and report
#                        each row's median: on a shared box one system's figure
#                        can move 2x between runs, and its ratios with it
#   BASE_PORT [30000]    ports BASE_PORT..BASE_PORT+299 are used, the Redis
#                        Cluster's bus ports among them; each further round moves
#                        up 300, since a port whose last sockets are still closing
#                        cannot be listened on again at once. Keep them all below
#                        the kernel's ephemeral range (ip_local_port_range, from
#                        32768 by default): a client socket may hold a port there
#   RINGKV_PROCS         GOMAXPROCS for every ringkv server process (default:
#                        unset, Go's own: one per CPU). With 1 on two cores the
#                        3-node cluster's CPU per GET fell by a quarter, and a
#                        single node's SETs ran a third slower
#                        (docs/performance.md). The table's first line says
#                        which was used
#   RINGKV_ENGINE        --engine for every ringkv server (memory or pebble;
#                        default: unset, the binary's own default). The
#                        table's first line says which was used
#   RINGKV_PEER_TLS      1: every ringkv server protects its peer and gossip
#                        ports as in production (mutual TLS with certificates
#                        from `ringkv cert`, a gossip key), to measure their
#                        cost; the table's first line says which was used
#   RINGKV_BIN           a prebuilt ringkv binary (default: go build)
#   RINGKV_BIN_B         a second ringkv binary to measure against the first:
#                        each round then runs every ringkv system twice, on
#                        fresh nodes, once per binary (A then B, B then A in
#                        the next round), with the same client; B's rows
#                        (ringkv-1-B, ringkv-3-B) get their throughput and
#                        servers' CPU as ratios of A's (xA, CPUxA)
#   SYSTEMS [redis redis-aof redis-cluster ringkv-1 ringkv-3]
#                        the systems each round runs; a ratio column needs
#                        its reference system in the list
#   OUT                  directory for logs and raw results (default: a temp dir, kept)
# Quick run: KEYS=100000 REQ_P16=200000 REQ_P1=50000 DURATION=3s bench/compare.sh
# Two builds of ringkv, 3 nodes only:
#   SYSTEMS=ringkv-3 ROUNDS=3 RINGKV_BIN=old/ringkv RINGKV_BIN_B=bin/ringkv bench/compare.sh
set -euo pipefail

KEYS=${KEYS:-1000000}
CONNS=${CONNS:-50}
VALUE=${VALUE:-100}
REQ_P16=${REQ_P16:-500000}
REQ_P1=${REQ_P1:-100000}
CLUSTER_REQ_FACTOR=${CLUSTER_REQ_FACTOR:-4}
DURATION=${DURATION:-10s}
OPEN_RATE=${OPEN_RATE:-25000}
SWEEP=${SWEEP:-1}
SWEEP_START=${SWEEP_START:-5000}
SWEEP_STEP=${SWEEP_STEP:-1.25}
SWEEP_DURATION=${SWEEP_DURATION:-10s}
SWEEP_WARMUP_S=${SWEEP_WARMUP_S:-2}
SWEEP_P99_MS=${SWEEP_P99_MS:-5}
SWEEP_MAX=${SWEEP_MAX:-2000000}
SWEEP_STEPS=${SWEEP_STEPS:-40}
[[ $SWEEP == 0 || $SWEEP == 1 ]] || { echo "compare.sh: SWEEP must be 0 or 1" >&2; exit 1; }
[[ $SWEEP_START =~ ^[1-9][0-9]*$ && $SWEEP_MAX =~ ^[1-9][0-9]*$ && $SWEEP_STEPS =~ ^[1-9][0-9]*$ && $SWEEP_WARMUP_S =~ ^[0-9]+$ ]] ||
	{ echo "compare.sh: SWEEP_START, SWEEP_MAX and SWEEP_STEPS must be positive integers, SWEEP_WARMUP_S a whole number" >&2; exit 1; }
awk -v s="$SWEEP_STEP" -v p="$SWEEP_P99_MS" 'BEGIN { exit !(s + 0 > 1 && p + 0 > 0) }' ||
	{ echo "compare.sh: SWEEP_STEP must be above 1 and SWEEP_P99_MS above 0" >&2; exit 1; }
ROUNDS=${ROUNDS:-1}
BASE_PORT=${BASE_PORT:-30000}
WARMUP_S=2 # each ringkv bench run's warmup, in seconds
RINGKV_PROCS=${RINGKV_PROCS:-}
RINGKV_ENGINE=${RINGKV_ENGINE:-}
RINGKV_PEER_TLS=${RINGKV_PEER_TLS:-0}
[[ $RINGKV_PEER_TLS =~ ^[01]$ ]] || { echo "compare.sh: RINGKV_PEER_TLS must be 0 or 1" >&2; exit 1; }
[[ -z $RINGKV_ENGINE || $RINGKV_ENGINE =~ ^(memory|pebble)$ ]] || { echo "compare.sh: RINGKV_ENGINE must be memory or pebble" >&2; exit 1; }
[[ -z $RINGKV_PROCS || $RINGKV_PROCS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: RINGKV_PROCS must be a positive integer" >&2; exit 1; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: ROUNDS must be a positive integer" >&2; exit 1; }
SYSTEMS=${SYSTEMS:-redis redis-aof redis-cluster ringkv-1 ringkv-3}
for sys in $SYSTEMS; do
	case $sys in
	redis | redis-aof | redis-cluster | ringkv-1 | ringkv-3) ;;
	*) echo "compare.sh: unknown system in SYSTEMS: $sys" >&2; exit 1 ;;
	esac
done
RINGKV_BIN_B=${RINGKV_BIN_B:-}
[[ -z $RINGKV_BIN_B || -x $RINGKV_BIN_B ]] || { echo "compare.sh: RINGKV_BIN_B is not an executable: $RINGKV_BIN_B" >&2; exit 1; }

for tool in redis-server redis-cli redis-benchmark; do
	command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found (apt-get install redis-server redis-tools)" >&2; exit 1; }
done

OUT=${OUT:-$(mktemp -d -t ringkv-compare-XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
SWEEP_TSV=$OUT/sweep.tsv
: >"$SWEEP_TSV"
PIDS=()

# thp_mode prints the kernel's transparent huge page mode (always, madvise or
# never): ringkv's writes cost about a quarter less CPU on huge pages, which it
# gets under "always" and, advising its own heap (--huge-pages), under
# "madvise", not under "never" (docs/operations.md), so a table is only
# comparable with one of the same mode.
thp_mode() {
	local f=/sys/kernel/mm/transparent_hugepage/enabled
	if [[ -r $f ]]; then sed 's/.*\[\(.*\)\].*/\1/' "$f"; else echo unknown; fi
}

cleanup() {
	reap
	rm -rf "$OUT/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }

if [[ -z ${RINGKV_BIN:-} ]]; then
	RINGKV_BIN=$OUT/ringkv
	log "building ringkv"
	(cd "$(dirname "$0")/.." && go build -o "$RINGKV_BIN" ./cmd/ringkv)
fi
if [[ $RINGKV_PEER_TLS == 1 ]]; then
	"$RINGKV_BIN" cert ca --dir "$OUT/certs" >/dev/null
	head -c 32 /dev/urandom | base64 >"$OUT/certs/gossip.key"
fi

wait_ping() { # port
	local i
	for i in $(seq 1 200); do
		if redis-cli -p "$1" PING 2>/dev/null | grep -q PONG; then return 0; fi
		sleep 0.1
	done
	echo "compare.sh: nothing answers PING on port $1 (logs in $OUT)" >&2
	exit 1
}

start_redis() { # name port extra-args...
	local name=$1 port=$2
	shift 2
	mkdir -p "$OUT/data/$name"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$OUT/data/$name" --save '' \
		--logfile "$OUT/$name.log" "$@" &
	PIDS+=($!)
	wait_ping "$port"
}

# want system: whether SYSTEMS lists it.
want() { [[ " $SYSTEMS " == *" $1 "* ]]; }

# ringkv_node name client-port join [extra flags]: HTTP, peer and gossip use
# the next three ports. The server is $SERVER_BIN (the binary under test);
# every client is $RINGKV_BIN.
SERVER_BIN=
ringkv_node() {
	ringkv_start "$@"
	wait_ping "$2"
}

# ringkv_start name client-port join [extra flags]: ringkv_node without the
# wait, for nodes that form a cluster together (--initial-cluster) and
# answer no client until all of them are up.
ringkv_start() {
	local name=$1 port=$2 join=$3 tls=()
	shift 3
	mkdir -p "$OUT/data/$name"
	if [[ $RINGKV_PEER_TLS == 1 ]]; then
		[[ -f $OUT/certs/$name.crt ]] || "$RINGKV_BIN" cert node --dir "$OUT/certs" --name "$name" --host 127.0.0.1 >/dev/null
		tls=(--peer-tls-cert "$OUT/certs/$name.crt" --peer-tls-key "$OUT/certs/$name.key" --peer-tls-ca "$OUT/certs/ca.crt"
			--gossip-key-file "$OUT/certs/gossip.key")
	fi
	env ${RINGKV_PROCS:+GOMAXPROCS=$RINGKV_PROCS} "${SERVER_BIN:-$RINGKV_BIN}" server --node-id "$name" --data-dir "$OUT/data/$name" \
		--client-addr "127.0.0.1:$port" --http-addr "127.0.0.1:$((port + 1))" \
		--peer-addr "127.0.0.1:$((port + 2))" --gossip-addr "127.0.0.1:$((port + 3))" \
		${join:+--join "$join"} ${RINGKV_ENGINE:+--engine "$RINGKV_ENGINE"} --sync periodic --log-level warn "${tls[@]}" "$@" \
		>"$OUT/$name.log" 2>&1 &
	PIDS+=($!)
}

# wait_settled http-port...: until anti-entropy's comparisons owed at start
# (every range with every peer it first sees) are done on each node: their
# leaf scans otherwise overlap the first test and charge it for a cost a
# cluster pays once. Gives up after 60 s.
wait_settled() {
	local i port last now
	for port in "$@"; do
		last=-1
		for i in $(seq 1 60); do
			now=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^ringkv_antientropy_ranges_compared_total/ { print $2 }')
			[[ -n $now && $now == "$last" ]] && break
			last=$now
			sleep 1
		done
	done
}

# wait_members http-port n: until the node sees n members up and normal.
wait_members() {
	local i
	for i in $(seq 1 300); do
		if [[ $("$RINGKV_BIN" status --addr "127.0.0.1:$1" -o json 2>/dev/null | grep -c '"state": "normal"' || true) -ge $2 ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "compare.sh: the cluster did not form (logs in $OUT)" >&2
	exit 1
}

# reap waits up to 5 s for each process to exit after SIGTERM, then kills it:
# a Redis Cluster node was seen to hang in shutdown, and the run with it.
reap() {
	local pid i
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

stop_all() {
	reap
	PIDS=()
	rm -rf "$OUT/data"
}

CLK_TCK=$(getconf CLK_TCK)

# sum_procs file awk-program: the sum over the running system's server
# processes of the number awk-program prints from /proc/PID/file (0 for a
# process that has gone).
sum_procs() {
	local pid sum=0 n
	for pid in "${PIDS[@]}"; do
		n=$(awk "$2" "/proc/$pid/$1" 2>/dev/null || echo 0)
		sum=$((sum + ${n:-0}))
	done
	echo "$sum"
}

# server_ticks: the CPU time (user + system, in clock ticks) that the running
# system's server processes have used so far. Throughput on a shared box moves
# by 2x from one minute to the next; the CPU a server spends per request
# moves far less, so the table reports both.
server_ticks() { sum_procs stat '{ print $14 + $15 }'; }

# server_iocalls: the read and write system calls (socket and file alike:
# syscr + syscw of /proc/PID/io) that the running system's server processes
# have made so far. On loopback each socket write also runs the receiver's
# side of TCP, so their count per request is most of what a request costs
# the kernel.
server_iocalls() { sum_procs io '/^sysc[rw]:/ { s += $2 } END { print s + 0 }'; }

# server_rss_mb: the resident memory of the running system's server
# processes, summed, in MB (VmRSS).
server_rss_mb() { echo $(($(sum_procs status '/^VmRSS:/ { print $2 }') / 1024)); }

# rb system pipeline requests redis-benchmark-args...: SET and GET rows, each
# with the servers' CPU per request in µs. The first call on a fresh system
# (the SETs at -P 16) adds a row "RSS MB after SET P16": the servers' resident
# memory right after those random SETs, the same for every system of one
# size (the 3-node systems make CLUSTER_REQ_FACTOR times as many), in the
# OPS/S column, so its xREDIS and xCLUSTER are memory ratios (lower is less).
rb() {
	local system=$1 p=$2 n=$3 t before io_before out
	shift 3
	log "$system: redis-benchmark -t set,get -P $p -n $n"
	for t in set get; do
		before=$(server_ticks) io_before=$(server_iocalls)
		out=$(redis-benchmark "$@" -t "$t" -P "$p" -n "$n" -c "$CONNS" -d "$VALUE" -r "$KEYS" --csv --precision 3 \
			2>>"$OUT/redis-benchmark.err")
		printf '%s\n' "$out" >>"$OUT/redis-benchmark.csv"
		printf '%s\n' "$out" | awk -F'","' -v sys="$system" -v p="$p" \
			-v cpu="$(( ($(server_ticks) - before) * 1000000 / CLK_TCK ))" -v calls="$(($(server_iocalls) - io_before))" -v n="$n" '{ gsub(/"/, "", $1) }
			$1 == "SET" || $1 == "GET" {
				printf "%s\tredis-benchmark\t%s P%s\t%.0f\t%s\t%s\t%.2f\t%.2f\n", sys, $1, p, $2, $5, $7, cpu / n, calls / n
			}' >>"$RESULTS"
		if [[ $t == set && $p == 16 ]]; then
			printf '%s\tredis-benchmark\tRSS MB after SET P16\t%s\t-\t-\t-\t-\n' "$system" "$(server_rss_mb)" >>"$RESULTS"
		fi
	done
}

# seconds duration: a Go duration of whole s, ms or m as a number of seconds.
seconds() {
	awk -v d="$1" 'BEGIN {
		if (d ~ /ms$/) { sub(/ms$/, "", d); print d / 1000 }
		else if (d ~ /m$/) { sub(/m$/, "", d); print d * 60 }
		else { sub(/s$/, "", d); print d + 0 }
	}'
}

# rkb system label ringkv-bench-args...: one row per op type. CPU us is the
# servers' CPU over the whole run, warmup included, per request of the whole
# run (the measured count scaled to warmup + duration, which both run at the
# same offered rate or pipeline), the same for every op of the run.
rkb() {
	local system=$1 label=$2 before io_before out
	shift 2
	log "$system: ringkv bench $label $*"
	before=$(server_ticks) io_before=$(server_iocalls)
	out=$("$RINGKV_BIN" bench --keys "$KEYS" --conns "$CONNS" --value-size "$VALUE" \
		--duration "$DURATION" --warmup "${WARMUP_S}s" -q "$@")
	printf '%s\n' "$out" >>"$OUT/ringkv-bench.txt"
	printf '%s\n' "$out" | awk -v sys="$system" -v label="$label" \
		-v cpu="$(( ($(server_ticks) - before) * 1000000 / CLK_TCK ))" -v calls="$(($(server_iocalls) - io_before))" \
		-v d="$(seconds "$DURATION")" -v w="$WARMUP_S" '
		$1 == "GET" || $1 == "SET" || $1 == "DEL" { row[++n] = $0 }
		$1 == "ALL" { all = $2 }
		END {
			per = (all > 0 && d > 0) ? sprintf("%.2f", cpu / (all * (d + w) / d)) : "-"
			io = (all > 0 && d > 0) ? sprintf("%.2f", calls / (all * (d + w) / d)) : "-"
			for (i = 1; i <= n; i++) {
				split(row[i], f, " ")
				printf "%s\tringkv bench\t%s %s\t%.0f\t%s\t%s\t%s\t%s\n", sys, label, f[1], f[3], f[5], f[7], per, io
				if (f[4] > 0) printf "%s\tringkv bench\t%s %s errors\t%d\t-\t-\t-\t-\n", sys, label, f[1], f[4]
			}
		}' >>"$RESULTS"
}

# sweep system ringkv-bench-args...: the open-loop sweep (see the top). One
# line per step goes to sweep.tsv (system, round, offered and completed req/s,
# p50, p99, errors, whether held, the servers' CPU and read and write calls per
# request) and one row, the highest rate held, to the table; its P50, P99 and
# CPU us are that step's.
# Each step counts its own servers' CPU, warmup included, as rkb does.
sweep() {
	local system=$1 rate=$SWEEP_START steps=0 best=0 best_p50=- best_p99=- best_cpu=- best_calls=- before ticks out
	local all p50 p99 errs fell held cpu io_before calls
	shift
	while ((steps < SWEEP_STEPS && rate <= SWEEP_MAX)); do
		steps=$((steps + 1))
		log "$system: sweep step $steps, ${rate} req/s"
		before=$(server_ticks) io_before=$(server_iocalls)
		out=$("$RINGKV_BIN" bench --keys "$KEYS" --conns "$CONNS" --value-size "$VALUE" --ratio 50:50:0 --pipeline 1 \
			--duration "$SWEEP_DURATION" --warmup "${SWEEP_WARMUP_S}s" --rate "$rate" -q "$@")
		ticks=$(($(server_ticks) - before)) calls=$(($(server_iocalls) - io_before))
		printf '%s\n' "$out" >>"$OUT/sweep.txt"
		# The ALL row: OP COUNT OPS/S ERRORS P50 P90 P99 ...; FELL BEHIND
		# is ringkv bench's own verdict that under 99% of the due requests
		# completed.
		read -r all p50 p99 errs fell < <(printf '%s\n' "$out" | awk '
			$1 == "ALL" { a = $3; p = $5; q = $7; e = $4 }
			/^FELL BEHIND/ { f = 1 }
			END { print a + 0, p + 0, q + 0, e + 0, f + 0 }')
		held=no
		if ((fell == 0 && errs == 0)) && awk -v q="$p99" -v m="$SWEEP_P99_MS" 'BEGIN { exit !(q < m) }'; then held=yes; fi
		# The servers' CPU (µs) and read and write calls over the step,
		# warmup included, per request: all is the completed rate (req/s),
		# held through warmup and duration.
		read -r cpu calls < <(awk -v t="$((ticks * 1000000 / CLK_TCK))" -v c="$calls" -v a="$all" \
			-v d="$(seconds "$SWEEP_DURATION")" -v w="$SWEEP_WARMUP_S" \
			'BEGIN { if (a > 0) { n = a * (d + w); printf "%.2f %.2f\n", t / n, c / n } else print "- -" }')
		printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\n' "$system" "$round" "$rate" "$all" "$p50" "$p99" "$errs" "$held" "$cpu" "$calls" >>"$SWEEP_TSV"
		[[ $held == yes ]] || break
		best=$rate best_p50=$p50 best_p99=$p99 best_cpu=$cpu best_calls=$calls
		rate=$(awk -v r="$rate" -v s="$SWEEP_STEP" 'BEGIN { n = int(r * s + 0.5); print (n > r ? n : r + 1) }')
	done
	printf '%s\tringkv bench\topen sweep p99<%sms\t%s\t%s\t%s\t%s\t%s\n' "$system" "$SWEEP_P99_MS" "$best" "$best_p50" "$best_p99" "$best_cpu" "$best_calls" >>"$RESULTS"
}

# one_round runs every system once, in turn, each alone on the box, on the
# ports from p; with RINGKV_BIN_B, each ringkv system once per binary, in the
# order the round number picks.
one_round() {
	if want redis; then
		log "redis-server, no persistence"
		start_redis redis $((p + 1)) --appendonly no
		rb redis 16 "$REQ_P16" -p $((p + 1))
		rb redis 1 "$REQ_P1" -p $((p + 1))
		rkb redis "mix50 P16" --addr 127.0.0.1:$((p + 1)) --consistency "" --pipeline 16
		stop_all
	fi

	if want redis-aof; then
		log "redis-server, appendonly everysec"
		start_redis redis-aof $((p + 2)) --appendonly yes --appendfsync everysec
		rb redis-aof 16 "$REQ_P16" -p $((p + 2))
		rb redis-aof 1 "$REQ_P1" -p $((p + 2))
		rkb redis-aof "mix50 P16" --addr 127.0.0.1:$((p + 2)) --consistency "" --pipeline 16
		stop_all
	fi

	if want redis-cluster; then
		log "Redis Cluster, 3 masters + 3 replicas, appendonly everysec"
		cluster=()
		for i in 1 2 3 4 5 6; do
			port=$((p + 10 + i))
			start_redis "cluster$i" $port --cluster-enabled yes --cluster-config-file "$OUT/data/cluster$i/nodes.conf" \
				--cluster-port $((p + 30 + i)) --appendonly yes --appendfsync everysec
			cluster+=("127.0.0.1:$port")
		done
		redis-cli --cluster create "${cluster[@]}" --cluster-replicas 1 --cluster-yes >"$OUT/cluster-create.log" 2>&1
		for i in $(seq 1 300); do
			if redis-cli -p $((p + 11)) CLUSTER INFO | grep -q 'cluster_state:ok'; then break; fi
			sleep 0.1
		done
		sleep 2 # replicas finish their first sync
		rb redis-cluster 16 $((REQ_P16 * CLUSTER_REQ_FACTOR)) --cluster -p $((p + 11))
		rb redis-cluster 1 $((REQ_P1 * CLUSTER_REQ_FACTOR)) --cluster -p $((p + 11))
		# ringkv bench routes by slot from one seed (--cluster on fails the
		# run if the seed is not a cluster node): the same client as ringkv's
		# rows, so those get an xCLUSTER too.
		rkb redis-cluster "mix50 P16" --addr 127.0.0.1:$((p + 11)) --consistency "" --cluster on --pipeline 16
		rkb redis-cluster "open ${OPEN_RATE}/s P1" --addr 127.0.0.1:$((p + 11)) --consistency "" --cluster on --rate "$OPEN_RATE"
		if ((SWEEP)); then sweep redis-cluster --addr 127.0.0.1:$((p + 11)) --consistency "" --cluster on; fi
		stop_all
	fi

	local runs=("A") run
	if [[ -n $RINGKV_BIN_B ]]; then
		runs=("A" "B")
		((round % 2)) || runs=("B" "A")
	fi
	for run in "${runs[@]}"; do
		if [[ $run == A ]]; then
			SERVER_BIN=$RINGKV_BIN ringkv_round "" 0
		else
			SERVER_BIN=$RINGKV_BIN_B ringkv_round "-B" 50
		fi
	done
}

# ringkv_round suffix port-offset: the ringkv systems of one round, with
# SERVER_BIN as the server, their names ending in suffix.
ringkv_round() {
	local sfx=$1 q=$((p + $2)) nodes
	if want ringkv-1; then
		log "ringkv$sfx, 1 node, RF 1, --sync periodic ($SERVER_BIN)"
		ringkv_node single $((q + 100)) "" --replicas 1
		rb "ringkv-1$sfx" 16 "$REQ_P16" -p $((q + 100))
		rb "ringkv-1$sfx" 1 "$REQ_P1" -p $((q + 100))
		rkb "ringkv-1$sfx" "mix50 P16" --addr 127.0.0.1:$((q + 100)) --pipeline 16
		stop_all
	fi

	if want ringkv-3; then
		log "ringkv$sfx, 3 nodes, RF 3, QUORUM, --sync periodic ($SERVER_BIN)"
		# Formed as docs/operations.md says a new cluster is: every node
		# names all three and they start serving together.
		local members="n1=127.0.0.1:$((q + 203)),n2=127.0.0.1:$((q + 213)),n3=127.0.0.1:$((q + 223))"
		ringkv_start n1 $((q + 200)) "" --replicas 3 --consistency QUORUM --initial-cluster "$members"
		ringkv_start n2 $((q + 210)) "" --replicas 3 --consistency QUORUM --initial-cluster "$members"
		ringkv_start n3 $((q + 220)) "" --replicas 3 --consistency QUORUM --initial-cluster "$members"
		wait_ping $((q + 200))
		wait_ping $((q + 210))
		wait_ping $((q + 220))
		wait_members $((q + 201)) 3
		wait_members $((q + 221)) 3
		wait_settled $((q + 201)) $((q + 211)) $((q + 221))
		# Driven as the Redis Cluster is: ringkv answers CLUSTER SLOTS, so
		# redis-benchmark --cluster and ringkv bench (--cluster auto) send
		# each key to a replica of it, spread over the three nodes.
		rb "ringkv-3$sfx" 16 $((REQ_P16 * CLUSTER_REQ_FACTOR)) --cluster -p $((q + 200))
		rb "ringkv-3$sfx" 1 $((REQ_P1 * CLUSTER_REQ_FACTOR)) --cluster -p $((q + 200))
		nodes="127.0.0.1:$((q + 200)),127.0.0.1:$((q + 210)),127.0.0.1:$((q + 220))"
		rkb "ringkv-3$sfx" "mix50 P16" --addr "$nodes" --pipeline 16 --consistency QUORUM
		rkb "ringkv-3$sfx" "open ${OPEN_RATE}/s P1" --addr "$nodes" --rate "$OPEN_RATE" --consistency QUORUM
		if ((SWEEP)); then sweep "ringkv-3$sfx" --addr "$nodes" --consistency QUORUM; fi
		stop_all
	fi
}

# A port inside the ephemeral range can be taken by any outgoing connection of
# the run itself (one try of three rounds from 36000 died on that), so say so
# before starting rather than after minutes of work.
ephemeral=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
if ((BASE_PORT + ROUNDS * 300 > ephemeral)); then
	echo "compare.sh: warning: ports up to $((BASE_PORT + ROUNDS * 300 - 1)) reach the ephemeral range (from $ephemeral); a client socket may take one" >&2
fi

for round in $(seq "$ROUNDS"); do
	[[ $ROUNDS -gt 1 ]] && log "round $round of $ROUNDS"
	p=$((BASE_PORT + (round - 1) * 300))
	one_round
done

# The table: every row (with ROUNDS > 1, the median of each column over the
# rounds), then its throughput as a ratio of the reference systems' same tool
# and test, and a B binary's throughput and CPU per request as ratios of A's.
echo
echo "keys $KEYS, $VALUE-byte values, $CONNS connections, 3-node redis-benchmark runs x$CLUSTER_REQ_FACTOR requests; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); $(redis-server --version | cut -d' ' -f3); transparent huge pages: $(thp_mode); ringkv GOMAXPROCS: ${RINGKV_PROCS:-default}; ringkv engine: ${RINGKV_ENGINE:-default}; ringkv peer TLS: $([[ $RINGKV_PEER_TLS == 1 ]] && echo on || echo off)"
[[ -n $RINGKV_BIN_B ]] && echo "ringkv servers: A $RINGKV_BIN, B $RINGKV_BIN_B (A's rows are ringkv-N, B's ringkv-N-B; the client is A's)"
[[ $ROUNDS -gt 1 ]] && echo "each figure is the median of $ROUNDS rounds; every round's rows are in $RESULTS"
awk -F'\t' '
	{
		id = $1 SUBSEP $2 SUBSEP $3
		if (!(id in seen)) { seen[id] = 1; order[++n] = id }
		k = ++cnt[id]; v4[id, k] = $4; v5[id, k] = $5; v6[id, k] = $6; v7[id, k] = $7; v8[id, k] = ($8 == "" ? "-" : $8)
	}
	# median of column c of row id; "-" (no figure) sorts as a string and
	# only occurs on error rows, which carry it in every round.
	function median(id, c,    m, i, j, a, t) {
		m = cnt[id]
		for (i = 1; i <= m; i++) a[i] = (c == 4 ? v4[id, i] : c == 5 ? v5[id, i] : c == 6 ? v6[id, i] : c == 7 ? v7[id, i] : v8[id, i])
		if (a[1] == "-") return "-"
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		if (m % 2) return a[(m + 1) / 2]
		return c == 4 ? sprintf("%.0f", (a[m/2] + a[m/2+1]) / 2) : sprintf(c >= 7 ? "%.2f" : "%.3f", (a[m/2] + a[m/2+1]) / 2)
	}
	function ratio(sys, key, v,    id) {
		id = sys SUBSEP key
		return ((id in ops) && ops[id] > 0 && v != "") ? sprintf("%.2f", v / ops[id]) : ""
	}
	END {
		for (i = 1; i <= n; i++) { ops[order[i]] = median(order[i], 4); cpu[order[i]] = median(order[i], 7) }
		printf "%-14s %-16s %-26s %10s %9s %9s %7s %7s %8s %9s %9s %6s %6s\n", "SYSTEM", "TOOL", "TEST", "OPS/S", "P50 ms", "P99 ms", "CPU us", "R+W/req", "xREDIS", "xREDIS-AOF", "xCLUSTER", "xA", "CPUxA"
		for (i = 1; i <= n; i++) {
			split(order[i], f, SUBSEP); key = f[2] SUBSEP f[3]; o = ops[order[i]]; c = cpu[order[i]]
			r1 = r2 = r3 = ra = rc = ""
			if (f[1] ~ /^ringkv/ && f[3] !~ /errors/) { r1 = ratio("redis", key, o); r2 = ratio("redis-aof", key, o); r3 = ratio("redis-cluster", key, o) }
			if (f[1] ~ /^ringkv-1/) r3 = ""
			if (f[1] ~ /^ringkv-3/) { r1 = ""; r2 = "" }
			if (f[1] ~ /-B$/ && f[3] !~ /errors/) {
				a = substr(f[1], 1, length(f[1]) - 2)
				ra = ratio(a, key, o)
				if ((a SUBSEP key) in cpu && cpu[a SUBSEP key] > 0 && c != "-") rc = sprintf("%.2f", c / cpu[a SUBSEP key])
			}
			printf "%-14s %-16s %-26s %10s %9s %9s %7s %7s %8s %9s %9s %6s %6s\n", f[1], f[2], f[3], o, median(order[i], 5), median(order[i], 6), c, median(order[i], 8), r1, r2, r3, ra, rc
		}
	}' "$RESULTS" | tee "$OUT/table.txt"
if [[ -s $SWEEP_TSV ]]; then
	echo
	echo "open-loop sweep steps (no pipelining, 50:50 GET/SET, ${SWEEP_DURATION} each after ${SWEEP_WARMUP_S}s warmup; held: p99 < ${SWEEP_P99_MS} ms, >= 99% of due requests done, no errors)"
	awk -F'\t' 'BEGIN { printf "%-14s %5s %10s %10s %9s %9s %7s %5s %7s %8s\n", "SYSTEM", "ROUND", "RATE", "DONE/S", "P50 ms", "P99 ms", "ERRORS", "HELD", "CPU us", "R+W/req" }
		{ printf "%-14s %5s %10s %10s %9s %9s %7s %5s %7s %8s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }' "$SWEEP_TSV" | tee "$OUT/sweep-table.txt"
fi
echo
echo "raw results and logs: $OUT"
