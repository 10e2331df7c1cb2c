#!/usr/bin/env bash
# bench/rss.sh: the resident memory a loaded small module costs `luahost
# serve`. It starts serve with 1 module and with N (default 500) copies of
# the same small spam checker, reads each process's RssAnon (its own pages,
# not the mapped binary) once it is serving and settled, and prints
#   rss_per_module_kb <(RssAnon(N) - RssAnon(1)) / (N - 1)>
# as the median of ROUNDS (default 3) alternating runs. See docs/benchmarks.md.
#
#   bash bench/rss.sh
#   N=1000 ROUNDS=5 bash bench/rss.sh
set -euo pipefail

cd "$(dirname "$0")/.."
N=${N:-500}
ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-2}
tmp=$(mktemp -d /tmp/luahost-rss.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/luahost" ./cmd/luahost

for n in 1 "$N"; do
	d=$tmp/m$n
	mkdir -p "$d"
	printf 'server_name: example.org\nmodules:\n' >"$d/luahost.yaml"
	for i in $(seq 1 "$n"); do
		cat >"$d/m$i.lua" <<'EOF'
local evil = {}
return { new = function(config, api)
	api.register_spam_checker_callbacks{ check_event_for_spam = function(event)
		if evil[event.sender] then return api.Codes.FORBIDDEN end
		return api.NOT_SPAM
	end }
end }
EOF
		echo "  - module: m$i.lua" >>"$d/luahost.yaml"
	done
done

# rss N: start serve with N modules, wait until it serves, settle, print RssAnon in KiB.
rss() {
	local log=$tmp/log.$1 p
	"$tmp/luahost" serve -c "$tmp/m$1/luahost.yaml" --listen 127.0.0.1:0 --no-watch >"$log" 2>&1 &
	p=$!
	pids+=("$p")
	for _ in $(seq 1 300); do
		grep -q 'serving' "$log" && break
		if ! kill -0 "$p" 2>/dev/null; then
			echo "serve with $1 modules exited:" >&2
			cat "$log" >&2
			exit 1
		fi
		sleep 0.1
	done
	sleep "$SETTLE"
	awk '/^RssAnon:/ {print $2}' "/proc/$p/status"
	kill "$p"
	wait "$p" 2>/dev/null || true
}

per=()
for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then
		one=$(rss 1)
		many=$(rss "$N")
	else
		many=$(rss "$N")
		one=$(rss 1)
	fi
	kb=$(awk -v a="$many" -v b="$one" -v n="$N" 'BEGIN {printf "%.1f", (a - b) * 1024 / 1000 / (n - 1)}')
	echo "round $r: RssAnon 1 module $one KiB, $N modules $many KiB: $kb KB per module" >&2
	per+=("$kb")
done
printf '%s\n' "${per[@]}" | sort -n | awk '{v[NR] = $1} END {print "rss_per_module_kb", v[int((NR + 1) / 2)]}'
