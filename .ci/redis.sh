#!/usr/bin/env bash
# Start or stop a throwaway Redis server for the storage tests.
#
#   eval "$(bash .ci/redis.sh start)"   # installs redis-server if missing, starts one on a free
#                                        # 127.0.0.1 port, prints the export lines
#   bash .ci/redis.sh stop              # stops that server (found through LUAHOST_TEST_REDIS_DIR)
#
# Each start runs its own redis-server in its own temporary folder, which holds its pid file and
# log, on a port nothing else listens on; stop stops only the process whose pid that folder holds.
# Other Redis servers on the machine (6379, or another run's) are never touched.
# No persistence: the data lives in memory only. Progress goes to stderr; stdout carries only the
# export lines, so `eval "$(...)"` works.
set -euo pipefail

log() { echo "redis.sh: $*" >&2; }

# answers PORT PID: the server answering on 127.0.0.1:PORT is process PID, not another Redis that
# held the port when ours failed to bind it.
answers() {
	redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$2"
}

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install() {
	if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
		return
	fi
	log "installing redis-server"
	local sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update >&2
	$sudo apt-get install -y redis-server >&2
}

# ours DIR: DIR's pid file names a live redis-server started in DIR. Checked before any signal,
# so a pid reused by another process after ours died is left alone.
ours() {
	local dir="$1" pid
	[ -f "$dir/redis.pid" ] || return 1
	pid="$(cat "$dir/redis.pid")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# redis-server chdirs into its --dir; its title names the program.
	[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$dir" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q redis-server
}

print_exports() {
	printf 'export LUAHOST_TEST_REDIS_URL=%q\n' "redis://127.0.0.1:$(cat "$1/port")/0"
	printf 'export LUAHOST_TEST_REDIS_DIR=%q\n' "$1"
}

start() {
	install
	# Started already in this shell: keep that server.
	if [ -n "${LUAHOST_TEST_REDIS_DIR:-}" ] && ours "$LUAHOST_TEST_REDIS_DIR"; then
		log "already running on port $(cat "$LUAHOST_TEST_REDIS_DIR/port") ($LUAHOST_TEST_REDIS_DIR)"
		print_exports "$LUAHOST_TEST_REDIS_DIR"
		return
	fi
	local dir
	dir="$(mktemp -d "${TMPDIR:-/tmp}/luahost-redis.XXXXXX")"
	dir="$(cd "$dir" && pwd -P)"
	# redis-server cannot pick a free port itself (--port 0 turns TCP off), so try ports below
	# Linux's ephemeral range (32768 and up), where outgoing connections take theirs. A port taken
	# between the check and redis' bind makes redis exit; then the next one is tried.
	local try port pid
	for try in $(seq 1 20); do
		port=$((20000 + RANDOM % 12000))
		if listening "$port"; then continue; fi
		redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize no \
			--save "" --appendonly no --logfile "" </dev/null >"$dir/redis.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/redis.pid"
		echo "$port" >"$dir/port"
		for _ in $(seq 1 100); do
			if ! kill -0 "$pid" 2>/dev/null; then break; fi
			if answers "$port" "$pid"; then
				log "started on port $port (pid $pid, $dir)"
				print_exports "$dir"
				return
			fi
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			log "redis-server (pid $pid) did not answer on port $port within 10s:"
			cat "$dir/redis.log" >&2
			rm -rf "$dir"
			exit 1
		fi
		wait "$pid" 2>/dev/null || true
		log "port $port: redis-server exited ($(tail -n 1 "$dir/redis.log")), trying another"
	done
	log "no free port after $try tries; the last log:"
	cat "$dir/redis.log" >&2
	rm -rf "$dir"
	exit 1
}

stop() {
	local dir="${1:-${LUAHOST_TEST_REDIS_DIR:-}}"
	if [ -z "$dir" ]; then
		log "nothing to stop: LUAHOST_TEST_REDIS_DIR is not set (pass the folder start printed)"
		return
	fi
	if [ ! -d "$dir" ]; then
		log "nothing to stop: $dir is gone"
		return
	fi
	dir="$(cd "$dir" && pwd -P)"
	if [ ! -f "$dir/port" ]; then
		log "$dir was not made by redis.sh start; leaving it alone"
		exit 1
	fi
	if ours "$dir"; then
		local pid
		pid="$(cat "$dir/redis.pid")"
		kill -TERM "$pid"
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid ignored SIGTERM for 5s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		log "stopped pid $pid (port $(cat "$dir/port"))"
	else
		log "its server is not running any more"
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*)
	echo "usage: $0 start | stop [DIR]" >&2
	exit 2
	;;
esac
