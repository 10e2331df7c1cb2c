#!/usr/bin/env bash
# Start or stop the throwaway Redis server that the engine/storage tests use.
#
#   eval "$(bash .ci/redis.sh start)"   # installs redis-server if missing, starts it on
#                                        # 127.0.0.1:6390, prints the export line
#   bash .ci/redis.sh stop
#
# No persistence: the data lives in memory only. Progress goes to stderr; stdout carries
# only the export line, so `eval "$(...)"` works.
set -euo pipefail

PORT="${LUAHOST_REDIS_PORT:-6390}"
PIDFILE="/tmp/luahost-redis.pid"
URL="redis://127.0.0.1:${PORT}/0"

log() { echo "redis.sh: $*" >&2; }

ping() { redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; }

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

start() {
	install
	if ping; then
		log "already running on port $PORT"
	else
		# The Debian package may have started its own server on 6379; ours is separate.
		redis-server --save "" --appendonly no --daemonize yes \
			--pidfile "$PIDFILE" --port "$PORT" --bind 127.0.0.1 >&2
		for _ in $(seq 1 100); do
			if ping; then break; fi
			sleep 0.1
		done
		if ! ping; then
			log "redis-server did not answer on port $PORT"
			exit 1
		fi
		log "started on port $PORT"
	fi
	echo "export LUAHOST_TEST_REDIS_URL=$URL"
}

stop() {
	if command -v redis-cli >/dev/null && ping; then
		redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
	fi
	if [ -f "$PIDFILE" ]; then
		local pid
		pid="$(cat "$PIDFILE")"
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		rm -f "$PIDFILE"
	fi
	log "stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
