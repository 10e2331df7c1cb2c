#!/usr/bin/env bash
# bench/http.sh: Lua web handlers (luahost serve) against their native Go
# twins (bench/native), in one run on loopback with wrk. See
# docs/benchmarks.md.
#
#   bash bench/http.sh                          # ~5 minutes
#   ROUNDS=3 DURATION=2s bash bench/http.sh     # ~2 minutes
#   CONNS=64 DURATION=10s ROUNDS=2 bash bench/http.sh
#
# Runs, each Lua one next to its native twin (same connections, same
# GOMAXPROCS):
#   hello at every CONNS (default "32 256"), Lua with the module at
#     `instances: 1` (bench/luahost.yaml) and `instances: 2`
#     (bench/luahost-instances.yaml);
#   echo at the first CONNS, `instances: 1`;
#   hello at the first CONNS with both servers at GOMAXPROCS=1, against
#     the default servers (GOMAXPROCS = the machine's cores).
# Prints req/s per run and round with each round's ratios, the mean per
# run, and for each ratio the ratio of the means and the median of the
# rounds' ratios, which is what the goals are checked on, being robust to
# a burst of other work during one run. The order flips every round, so
# drift on a shared machine hits both sides alike; many short rounds beat
# few long ones.
set -euo pipefail

cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
CONNS=${CONNS:-32 256}
DURATION=${DURATION:-3s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-8}
HELLO=/_synapse/client/bench/hello
ECHO=/_synapse/client/bench/echo
read -r -a conns <<<"$CONNS"
c0=${conns[0]}
procs=${GOMAXPROCS:-$(nproc)}

if ! command -v wrk >/dev/null; then
	echo "installing wrk..." >&2
	apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi

tmp=$(mktemp -d /tmp/luahost-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "building..." >&2
go build -o "$tmp/luahost" ./cmd/luahost
go build -o "$tmp/native" ./bench/native

# start NAME CMD...: run a server on a free port (listen 127.0.0.1:0) in
# this shell, so the trap knows its pid; addr NAME then reads the address
# from its "serving ... on http://ADDR" line.
start() {
	local name=$1
	shift
	"$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	pids+=($!)
	echo $! >"$tmp/$name.pid"
}
addr() {
	local name=$1 a=""
	for _ in $(seq 100); do
		a=$(sed -n 's|.* on http://\([0-9.:]*\).*|\1|p' "$tmp/$name.out")
		[ -n "$a" ] && break
		kill -0 "$(cat "$tmp/$name.pid")" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$a" ]; then
		echo "FAIL: $name did not start:" >&2
		cat "$tmp/$name.out" "$tmp/$name.err" >&2
		exit 1
	fi
	echo "$a"
}
# Servers: the default ones, the module at instances: 2, and twins at
# GOMAXPROCS=1.
start native "$tmp/native" --listen 127.0.0.1:0
start lua "$tmp/luahost" serve -c bench/luahost.yaml --listen 127.0.0.1:0
start lua2 "$tmp/luahost" serve -c bench/luahost-instances.yaml --listen 127.0.0.1:0
start native_p1 env GOMAXPROCS=1 "$tmp/native" --listen 127.0.0.1:0
start lua_p1 env GOMAXPROCS=1 "$tmp/luahost" serve -c bench/luahost.yaml --listen 127.0.0.1:0
declare -A addrs
for s in native lua lua2 native_p1 lua_p1; do addrs[$s]=$(addr "$s"); done
echo "native ${addrs[native]}, lua ${addrs[lua]}, lua (instances: 2) ${addrs[lua2]}, GOMAXPROCS=1: native ${addrs[native_p1]}, lua ${addrs[lua_p1]}" >&2

# Check every server's answers once: status, content type, and body
# (compared as JSON, key order aside).
want_hello='{"message":"Hello, world!"}'
want_echo=$(jq -c '{echo: ., length: '"$(wc -c <bench/event.json)"'}' bench/event.json)
check() { # NAME URL WANT [curl args]
	local name=$1 url=$2 want=$3
	shift 3
	local out status ctype body
	out=$(curl -sS -o "$tmp/body" -w '%{http_code} %{content_type}' "$@" "$url")
	status=${out%% *}
	ctype=${out#* }
	body=$(cat "$tmp/body")
	if [ "$status" != 200 ] || [ "$ctype" != application/json ] ||
		[ "$(jq -cS . <<<"$body" 2>/dev/null)" != "$(jq -cS . <<<"$want")" ]; then
		echo "FAIL: $name $url answered $status ($ctype): $body" >&2
		echo "      want 200 (application/json): $want" >&2
		exit 1
	fi
}
post=(-X POST -H 'Content-Type: application/json' --data-binary @bench/event.json)
for s in native lua lua2 native_p1 lua_p1; do
	check "$s hello" "http://${addrs[$s]}$HELLO" "$want_hello"
	check "$s echo" "http://${addrs[$s]}$ECHO" "$want_echo" "${post[@]}"
done
echo "every server answers as expected" >&2

# The runs: KEY -> server, endpoint, connections.
declare -A server path conn
runs=()
add() { # KEY SERVER PATH CONNS
	runs+=("$1")
	server[$1]=$2 path[$1]=$3 conn[$1]=$4
}
for c in "${conns[@]}"; do
	add "native_hello_c$c" native "$HELLO" "$c"
	add "lua_hello_c$c" lua "$HELLO" "$c"
	add "lua2_hello_c$c" lua2 "$HELLO" "$c"
done
add "native_echo_c$c0" native "$ECHO" "$c0"
add "lua_echo_c$c0" lua "$ECHO" "$c0"
add "native_p1_hello_c$c0" native_p1 "$HELLO" "$c0"
add "lua_p1_hello_c$c0" lua_p1 "$HELLO" "$c0"

# The ratios: NAME -> "NUMERATOR DENOMINATOR GOAL" (GOAL "-" for none).
ratio_names=()
declare -A ratio_def
defratio() {
	ratio_names+=("$1")
	ratio_def[$1]="$2 $3 $4"
}
for c in "${conns[@]}"; do
	goal=-
	[ "$c" = 32 ] && goal=0.80 # issue 3, at its -c32
	defratio "hello c=$c: lua / native" "lua_hello_c$c" "native_hello_c$c" "$goal"
	defratio "hello c=$c: lua instances=2 / native" "lua2_hello_c$c" "native_hello_c$c" 0.90 # issue 13
	defratio "hello c=$c: lua instances=2 / instances=1" "lua2_hello_c$c" "lua_hello_c$c" -
done
defratio "echo c=$c0: lua / native" "lua_echo_c$c0" "native_echo_c$c0" 0.55 # issue 3
defratio "hello c=$c0, GOMAXPROCS=1: lua / native" "lua_p1_hello_c$c0" "native_p1_hello_c$c0" -
defratio "hello c=$c0: lua GOMAXPROCS=$procs / GOMAXPROCS=1" "lua_hello_c$c0" "lua_p1_hello_c$c0" -
defratio "hello c=$c0: native GOMAXPROCS=$procs / GOMAXPROCS=1" "native_hello_c$c0" "native_p1_hello_c$c0" -

# run KEY DURATION: req/s, failing on errors or non-2xx.
run() {
	local key=$1 dur=$2 args=()
	[ "${path[$key]}" = "$ECHO" ] && args=(-s bench/post.lua)
	wrk -t"$THREADS" -c"${conn[$key]}" -d"$dur" "${args[@]}" "http://${addrs[${server[$key]}]}${path[$key]}" >"$tmp/wrk.out" 2>&1 || {
		cat "$tmp/wrk.out" >&2
		exit 1
	}
	if grep -qE 'Non-2xx|Socket errors' "$tmp/wrk.out"; then
		echo "FAIL: $key: wrk saw errors:" >&2
		cat "$tmp/wrk.out" >&2
		exit 1
	fi
	awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.out"
}

echo "warming up ($WARMUP each)..." >&2
for k in "${runs[@]}"; do run "$k" "$WARMUP" >/dev/null; done

declare -A rps sum ratios
printf '%-6s %-22s %12s\n' round run req/s
for r in $(seq "$ROUNDS"); do
	# Alternate the order between rounds so drift (thermal, other work on
	# the machine) does not favour one side.
	order=("${runs[@]}")
	if [ $((r % 2)) = 0 ]; then
		order=()
		for ((i = ${#runs[@]} - 1; i >= 0; i--)); do order+=("${runs[i]}"); done
	fi
	for k in "${order[@]}"; do
		rps[$k]=$(run "$k" "$DURATION")
		sum[$k]=$(awk -v a="${sum[$k]:-0}" -v b="${rps[$k]}" 'BEGIN {print a + b}')
		printf '%-6s %-22s %12.0f\n' "$r" "$k" "${rps[$k]}"
	done
	line=""
	for n in "${ratio_names[@]}"; do
		read -r num den _ <<<"${ratio_def[$n]}"
		v=$(awk -v l="${rps[$num]}" -v d="${rps[$den]}" 'BEGIN {printf "%.3f", l / d}')
		ratios[$n]="${ratios[$n]:-} $v"
		line+="$(printf '  %s %.2f\n' "$n" "$v")"$'\n'
	done
	printf '%s' "$line"
done
mean() { awk -v s="${sum[$1]}" -v n="$ROUNDS" 'BEGIN {printf "%.0f", s / n}'; }
echo
printf '%-22s %12s\n' run "mean req/s"
for k in "${runs[@]}"; do
	printf '%-22s %12s\n' "$k" "$(mean "$k")"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo
printf '%-48s %10s %10s  %s\n' ratio "of means" "median" "goal"
for n in "${ratio_names[@]}"; do
	read -r num den goal <<<"${ratio_def[$n]}"
	# shellcheck disable=SC2086
	m=$(median ${ratios[$n]})
	verdict=""
	if [ "$goal" != - ]; then
		verdict=$(awk -v m="$m" -v g="$goal" 'BEGIN {printf ">= %.2f: %s", g, (m >= g ? "met" : "MISSED")}')
	fi
	printf '%-48s %10.2f %10s  %s\n' "$n" "$(awk -v l="${sum[$num]}" -v d="${sum[$den]}" 'BEGIN {print l / d}')" "$m" "$verdict"
done
echo "(wrk -t$THREADS -d$DURATION x $ROUNDS rounds, $(nproc) cores shared by wrk and the servers, default GOMAXPROCS=$procs; load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg))"
