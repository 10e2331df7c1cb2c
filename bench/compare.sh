#!/usr/bin/env bash
# bench/compare.sh: the callback, host-call, chain, instances and memory
# benchmarks of bench/callbacks_bench_test.go and the CPython baseline
# (bench/python/spam_check.py), in alternating rounds; prints a Markdown
# table of medians and of each measure's ratio against the baseline
# measured in the same round. See docs/benchmarks.md.
#
#   bash bench/compare.sh            # 5 rounds of 1 s per benchmark, ~3-4 minutes
#   bash bench/compare.sh --quick    # 5 rounds of 0.2 s, ~1 minute
#   ROUNDS=7 BENCHTIME=2s bash bench/compare.sh
#
# Every benchmark runs in its own process, next to its baseline; the order
# within a round flips every round, so drift (other work on the machine,
# thermal) hits both sides of a ratio alike. Ratios are per round, then
# the median of the rounds; the range is their min-max. The raw `go test`
# and Python output goes to $RAW (default: a temp file, named at the end).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
BENCHTIME=${BENCHTIME:-1s}
PY_N=${PY_N:-200000}
PY_R=${PY_R:-5}
for arg in "$@"; do
	case $arg in
	--quick)
		BENCHTIME=200ms
		PY_N=50000
		PY_R=3
		;;
	-h | --help)
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "unknown argument $arg (try --help)" >&2
		exit 2
		;;
	esac
done
if [ "$ROUNDS" -lt 1 ]; then
	echo "ROUNDS must be at least 1" >&2
	exit 2
fi

tmp=$(mktemp -d /tmp/luahost-compare.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
RAW=${RAW:-$(mktemp /tmp/luahost-compare-raw.XXXXXX)}
data=$tmp/data.tsv # round, key, unit, value
: >"$data"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
echo "building..." >&2
go test -c -o "$tmp/bench.test" ./bench/
PY=$(command -v python3 || true)
if [ -z "$PY" ]; then
	echo "python3 not found: the CPython baseline is left out" >&2
else
	"$PY" bench/python/spam_check.py --check >&2
fi
# The twins must agree before their speeds are compared.
(cd bench && "$tmp/bench.test" -test.run 'TwinsAgree|ChainRunsEveryModule' >&2)

# Each unit is KEY and how to run it: a benchmark (regexp, benchtime) or
# the Python script. Pairs sit next to each other.
units=(
	"SpamCheck/engine|^BenchmarkSpamCheck$/^engine$|$BENCHTIME"
	"SpamCheck/naive|^BenchmarkSpamCheck$/^naive$|$BENCHTIME"
	"python|python|"
	"EmptyCallback/engine|^BenchmarkEmptyCallback$/^engine$|$BENCHTIME"
	"EmptyCallback/bare-resume|^BenchmarkEmptyCallback$/^bare-resume$|$BENCHTIME"
	"HostCall/exists/engine-inline|^BenchmarkHostCall$/^exists$/^engine-inline$|$BENCHTIME"
	"HostCall/exists/engine-goroutine|^BenchmarkHostCall$/^exists$/^engine-goroutine$|$BENCHTIME"
	"HostCall/exists/bare-yield|^BenchmarkHostCall$/^exists$/^bare-yield$|$BENCHTIME"
	"HostCall/exists/goroutine-post|^BenchmarkHostCall$/^exists$/^goroutine-post$|$BENCHTIME"
	"HostCall/profile/engine-inline|^BenchmarkHostCall$/^profile$/^engine-inline$|$BENCHTIME"
	"HostCall/profile/engine-goroutine|^BenchmarkHostCall$/^profile$/^engine-goroutine$|$BENCHTIME"
	"HostCall/profile/bare-yield|^BenchmarkHostCall$/^profile$/^bare-yield$|$BENCHTIME"
	"HostCall/profile/goroutine-post|^BenchmarkHostCall$/^profile$/^goroutine-post$|$BENCHTIME"
	"Chain/modules=1|^BenchmarkChain$/^modules=1$|$BENCHTIME"
	"Chain/modules=10|^BenchmarkChain$/^modules=10$|$BENCHTIME"
	"Chain/modules=50|^BenchmarkChain$/^modules=50$|$BENCHTIME"
	"Parallel/instances=1|^BenchmarkParallel$/^instances=1$|$BENCHTIME"
	"Parallel/instances=2|^BenchmarkParallel$/^instances=2$|$BENCHTIME"
	"ModuleMemory|^BenchmarkModuleMemory$|1x"
	"ParkedHostCall/engine|^BenchmarkParkedHostCall$/^engine$|1x"
	"ParkedHostCall/goroutine|^BenchmarkParkedHostCall$/^goroutine$|1x"
)

# run ROUND UNIT: run one unit and append its figures to $data.
run() {
	local round=$1 key re bt out
	IFS='|' read -r key re bt <<<"$2"
	if [ "$re" = python ]; then
		[ -n "$PY" ] || return 0
		out=$("$PY" bench/python/spam_check.py -n "$PY_N" -r "$PY_R")
		echo "round $round: $out" >>"$RAW"
		awk -v r="$round" '$1 == "ns/op" {print r "\tpython\tns/op\t" $2}' <<<"$out" >>"$data"
		return 0
	fi
	if ! out=$(cd bench && "$tmp/bench.test" -test.run '^$' -test.bench "$re" -test.benchtime "$bt" 2>&1); then
		echo "$out" >&2
		echo "FAIL: $key" >&2
		exit 1
	fi
	echo "round $round: $out" >>"$RAW"
	# "BenchmarkX/y-2  N  V ns/op  V B/op  V allocs/op  V unit": every
	# value-unit pair after the iteration count.
	awk -v r="$round" -v k="$key" '$1 ~ /^Benchmark/ {
		for (i = 3; i < NF; i += 2) print r "\t" k "\t" $(i + 1) "\t" $i
	}' <<<"$out" >>"$data"
	awk -F'\t' -v r="$round" -v k="$key" '$1 == r && $2 == k && $3 == "ns/op" {found = 1} END {exit !found}' "$data" || {
		echo "FAIL: $key printed no result:" >&2
		echo "$out" >&2
		exit 1
	}
}

for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then
		order=("${units[@]}")
	else
		order=()
		for ((i = ${#units[@]} - 1; i >= 0; i--)); do order+=("${units[i]}"); done
	fi
	printf 'round %d/%d...' "$r" "$ROUNDS" >&2
	for u in "${order[@]}"; do run "$r" "$u"; done
	echo " done ($(($(date +%s) - start)) s)" >&2
done

# med KEY UNIT: the median of the rounds' values.
med() {
	awk -F'\t' -v k="$1" -v u="$2" '$2 == k && $3 == u {print $4}' "$data" | sort -g |
		awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else printf "%.6g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# ratio KEY_A KEY_B UNIT: "median min max" of the rounds' A/B.
ratio() {
	awk -F'\t' -v a="$1" -v b="$2" -v u="$3" '$3 == u && $2 == a {x[$1] = $4} $3 == u && $2 == b {y[$1] = $4}
		END {for (r in x) if ((r in y) && y[r] != 0) print x[r] / y[r]}' "$data" | sort -g |
		awk '{v[NR] = $1} END {if (NR == 0) {print "nan nan nan"; exit}
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.3f %.3f %.3f", m, v[1], v[NR]}'
}
us() { awk -v n="$1" 'BEGIN {if (n == "nan") print "–"; else printf "%.2f µs", n / 1000}'; }
num() { awk -v n="$1" -v d="${2:-1}" 'BEGIN {if (n == "nan") print "–"; else printf "%.*f", d, n}'; }
kb() { awk -v n="$1" 'BEGIN {if (n == "nan") print "–"; else printf "%.1f KiB", n / 1024}'; }
# fmt_ratio "MED MIN MAX": "**0.52×** (0.48–0.60)".
fmt_ratio() {
	local m lo hi
	read -r m lo hi <<<"$1"
	if [ "$m" = nan ]; then
		echo "–"
		return
	fi
	printf '**%.2f×** (%.2f–%.2f)' "$m" "$lo" "$hi"
}
# goal VALUE OP LIMIT: "met" or "MISSED".
goal() { awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN {if (v == "nan") print "–"; else if (op == "<=" ? v <= g : v >= g) print "met"; else print "MISSED"}'; }
timed() { # KEY: "1.23 µs, 18 allocs"
	echo "$(us "$(med "$1" ns/op)"), $(num "$(med "$1" allocs/op)" 1) allocs"
}

echo
echo "| measure | luahost | baseline (same run) | luahost / baseline, median of rounds (range) | goal (issue 13) |"
echo "|---|---:|---:|---:|---|"
row() { echo "| $1 | $2 | $3 | $4 | $5 |"; }

e=$(med SpamCheck/engine ns/op)
r=$(ratio SpamCheck/engine SpamCheck/naive ns/op)
row '`check_event_for_spam`, 1 module, vs naive embedding' "$(timed SpamCheck/engine)" \
	"naive: $(timed SpamCheck/naive)" "$(fmt_ratio "$r")" \
	"≤ 1.5 µs: $(goal "$e" '<=' 1500); ≤ 0.2×: $(goal "${r%% *}" '<=' 0.2)"
r=$(ratio SpamCheck/engine python ns/op)
row '`check_event_for_spam` vs CPython await' "$(us "$e")" \
	"CPython $("${PY:-false}" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '–'): $(us "$(med python ns/op)")" \
	"$(fmt_ratio "$r")" "aim ≤ 5×: $(goal "${r%% *}" '<=' 5)"
e=$(med EmptyCallback/engine ns/op)
row 'empty callback (fixed cost) vs bare coroutine resume' "$(timed EmptyCallback/engine)" \
	"$(timed EmptyCallback/bare-resume)" "$(fmt_ratio "$(ratio EmptyCallback/engine EmptyCallback/bare-resume ns/op)")" \
	"≤ 1 µs: $(goal "$e" '<=' 1000)"
for call in exists profile; do
	case $call in
	exists) name='`api.check_user_exists` (string)' ;;
	profile) name='`api.get_profile_for_user` (table)' ;;
	esac
	for mode in engine-inline engine-goroutine; do
		case $mode in
		engine-inline) how='HostHonoursContext' ;;
		engine-goroutine) how='default (goroutine per call)' ;;
		esac
		k=HostCall/$call/$mode
		e=$(med "$k" ns/op)
		a=$(med "$k" allocs/op)
		g="≤ 1.5 µs: $(goal "$e" '<=' 1500); ≤ 6 allocs: $(goal "$a" '<=' 6)"
		row "host call $name, $how, vs bare yield" "$(timed "$k")" "$(timed "HostCall/$call/bare-yield")" \
			"$(fmt_ratio "$(ratio "$k" "HostCall/$call/bare-yield" ns/op)")" "$g"
		row "host call $name, $how, vs goroutine + channel post" "$(us "$e")" "$(timed "HostCall/$call/goroutine-post")" \
			"$(fmt_ratio "$(ratio "$k" "HostCall/$call/goroutine-post" ns/op)")" ""
	done
done
c1=$(med Chain/modules=1 ns/module)
c10=$(med Chain/modules=10 ns/module)
c50=$(med Chain/modules=50 ns/module)
r=$(ratio Chain/modules=50 Chain/modules=10 ns/module)
row 'spam-checker chain, per module: 50 modules vs 10' "$(us "$c50") (at 1: $(us "$c1"))" "at 10: $(us "$c10")" \
	"$(fmt_ratio "$r")" "≤ 1.2×: $(goal "${r%% *}" '<=' 1.2); ≤ 2 µs: $(goal "$c50" '<=' 2000)"
r=$(ratio Parallel/instances=1 Parallel/instances=2 ns/op)
row 'callback throughput from 8 goroutines, `instances: 2` vs `1` (higher is better)' \
	"$(us "$(med Parallel/instances=2 ns/op)")/call" "$(us "$(med Parallel/instances=1 ns/op)")/call" \
	"$(fmt_ratio "$r")" "≥ 1.6×: $(goal "${r%% *}" '>=' 1.6)"
m=$(med ModuleMemory B/module)
row "heap+stack per loaded small module (500 modules)" "$(kb "$m")" "–" "–" \
	"RSS ≤ 150 KB (this counts Go heap+stacks in use; RSS is the next row): $(goal "$m" '<=' 150000)"
rss=$(bash bench/rss.sh 2>>"$RAW" | awk '/^rss_per_module_kb/ {print $2}')
row "RSS per loaded small module, \`luahost serve\` with 500 vs 1 (bench/rss.sh)" "${rss} KB" "–" "–" \
	"≤ 150 KB: $(goal "$rss" '<=' 150)"
m=$(med ParkedHostCall/engine B/parked)
row "heap+stack per parked host call (1,000 in \`api.sleep\`)" "$(kb "$m")" \
	"a goroutine blocked on a channel: $(kb "$(med ParkedHostCall/goroutine B/parked)")" \
	"$(fmt_ratio "$(ratio ParkedHostCall/engine ParkedHostCall/goroutine B/parked)")" "≤ 8 KB: $(goal "$m" '<=' 8192)"

echo
echo "$ROUNDS alternating rounds, \`-benchtime $BENCHTIME\` per benchmark (memory: 1 run per round), CPython $PY_R × $PY_N calls per round;"
echo "$(go env GOVERSION), GOMAXPROCS=${GOMAXPROCS:-$(nproc)} ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)); load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - start)) s."
echo "Raw output: $RAW" >&2
