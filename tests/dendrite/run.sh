#!/usr/bin/env bash
# End-to-end test of luahost embedded in Dendrite (docs/embedding-dendrite.md).
#
# Downloads Dendrite at a pinned release through the Go module proxy, drops in
# the glue (testdata/luahost_glue.go, testdata/hooks.patch), points Dendrite's
# go.mod at this checkout, builds the monolith, starts it with SQLite on
# 127.0.0.1 only (federation disabled), registers two users and checks with
# curl: a spam message is refused (403 M_FORBIDDEN), a clean one is sent, an
# invite of a refused user is refused, the module's web resources answer (and
# reach Dendrite through the Host: user info, profile, access token, room
# state, sending an event), and an edit of the Lua file takes effect while
# Dendrite runs.
#
# Not part of .ci/run: building Dendrite takes about ten minutes.
#
#   tests/dendrite/run.sh               # in a fresh temporary folder
#   WORK=/tmp/dw tests/dendrite/run.sh  # reuse a folder (kept afterwards)
#   BASELINE=1 tests/dendrite/run.sh    # also build unmodified Dendrite to compare binary sizes
#   PORT=18008 DENDRITE_VERSION=v0.15.2 are the defaults.
set -euo pipefail

DENDRITE_VERSION=${DENDRITE_VERSION:-v0.15.2}
PORT=${PORT:-18008}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${WORK:-$(mktemp -d /tmp/luahost-dendrite.XXXXXX)}
mkdir -p "$work"
base="http://127.0.0.1:$PORT"
pass=0
fail=0
dendrite_pid=

say() { printf '== %s\n' "$*"; }
cleanup() {
	if [ -n "$dendrite_pid" ]; then
		kill "$dendrite_pid" 2>/dev/null || true
		wait "$dendrite_pid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# check NAME WANT_STATUS GOT_STATUS BODY [PATTERN...]: one assertion, printed;
# the body must contain every pattern (grep -F).
check() {
	local name=$1 want=$2 got=$3 body=$4 ok=1 p
	shift 4
	[ "$got" = "$want" ] || ok=
	for p in "$@"; do grep -qF -- "$p" <<<"$body" || ok=; done
	if [ -n "$ok" ]; then
		pass=$((pass + 1))
		printf 'ok   %s: %s %s\n' "$name" "$got" "$body"
	else
		fail=$((fail + 1))
		printf 'FAIL %s: got %s %s; want %s containing %s\n' "$name" "$got" "$body" "$want" "$*"
	fi
}

# api METHOD PATH TOKEN [BODY]: sets $status and $body. Loopback only.
api() {
	local method=$1 path=$2 token=$3 data=${4:-}
	local args=(-sS --max-time 30 -o "$work/body" -w '%{http_code}' -X "$method")
	[ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
	[ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data "$data")
	status=$(curl "${args[@]}" "$base$path") || status=000
	body=$(cat "$work/body" 2>/dev/null || true)
}

say "Dendrite $DENDRITE_VERSION in $work (go: $(go version | cut -d' ' -f3))"
src=$(go mod download -json "github.com/element-hq/dendrite@$DENDRITE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "module download failed" >&2; exit 1; }
rm -rf "$work/dendrite"
cp -r "$src" "$work/dendrite"
chmod -R u+w "$work/dendrite"
cd "$work/dendrite"

say "glue: testdata/luahost_glue.go -> clientapi/routing/, testdata/hooks.patch"
cp "$here/testdata/luahost_glue.go" clientapi/routing/luahost_glue.go
patch -p1 --no-backup-if-mismatch <"$here/testdata/hooks.patch"
cp go.mod "$work/go.mod.orig"
go mod edit -require=github.com/luahost/luahost@v0.0.0 -replace="github.com/luahost/luahost=$root"
go mod tidy
say "Dendrite's go.mod after adding luahost (go line and changed requirements):"
diff "$work/go.mod.orig" go.mod | grep '^[<>]' | grep -v '^> replace\|^>$' || true

say "glue line counts (non-blank lines that are not // comments)"
code_lines() { grep -v '^[[:space:]]*$' "$1" | grep -cv '^[[:space:]]*//'; }
imports=$(sed -n '/^import (/,/^)/p' clientapi/routing/luahost_glue.go | wc -l)
hooks=$(grep -c '^+[^+]' "$here/testdata/hooks.patch")
glue=$(code_lines clientapi/routing/luahost_glue.go)
echo "luahost_glue.go: $glue (of which import block: $imports); hook lines added by hooks.patch: $hooks; total: $((glue + hooks))"

say "build (go build ./cmd/...)"
start=$(date +%s)
go build -trimpath -o "$work/bin/" ./cmd/dendrite ./cmd/generate-config ./cmd/generate-keys ./cmd/create-account
echo "built in $(($(date +%s) - start))s; dendrite binary: $(stat -c %s "$work/bin/dendrite") bytes"
if [ "${BASELINE:-}" = 1 ]; then
	rm -rf "$work/pristine" && cp -r "$src" "$work/pristine" && chmod -R u+w "$work/pristine"
	(cd "$work/pristine" && go build -trimpath -o "$work/bin-pristine/" ./cmd/dendrite)
	echo "unmodified dendrite binary: $(stat -c %s "$work/bin-pristine/dendrite") bytes"
fi

say "config: SQLite, federation disabled, no key perspectives, loopback only"
mkdir -p "$work/run"
cd "$work/run"
rm -rf ./*
"$work/bin/generate-keys" --private-key matrix_key.pem
# -ci: SQLite files in -dir, in-memory JetStream, no rate limits, no key
# perspectives (nothing fetched from matrix.org), shared-secret registration.
"$work/bin/generate-config" -ci -dir "$work/run" -server localhost >dendrite.yaml
# Federation off; open registration off (users come from shared-secret registration).
perl -0pi -e 's/disable_federation: false/disable_federation: true/; s/registration_disabled: false/registration_disabled: true/; s/level: trace/level: info/' dendrite.yaml
grep -q 'disable_federation: true' dendrite.yaml && grep -q 'registration_disabled: true' dendrite.yaml ||
	{ echo "could not edit dendrite.yaml" >&2; exit 1; }
cp "$here/testdata/luahost.yaml" "$here/testdata/moderation.lua" .

say "start Dendrite on 127.0.0.1:$PORT with LUAHOST_CONFIG=luahost.yaml"
LUAHOST_CONFIG="$work/run/luahost.yaml" "$work/bin/dendrite" -config dendrite.yaml \
	-http-bind-address "127.0.0.1:$PORT" >"$work/dendrite.log" 2>&1 &
dendrite_pid=$!
for _ in $(seq 120); do
	curl -sf --max-time 2 "$base/_matrix/client/versions" >/dev/null 2>&1 && break
	kill -0 "$dendrite_pid" 2>/dev/null || { tail -30 "$work/dendrite.log"; exit 1; }
	sleep 1
done
grep 'module loaded\|module failed\|luahost:' "$work/dendrite.log" | cut -c1-200 || true

say "register alice and bob (shared secret, create-account)"
token() {
	"$work/bin/create-account" -config dendrite.yaml -url "$base" -username "$1" -password "pw-$1-luahost" 2>&1 |
		sed -n 's/.*AccessToken: \([^)]*\)).*/\1/p'
}
alice=$(token alice)
bob=$(token bob)
[ -n "$alice" ] && [ -n "$bob" ] || { echo "registration failed" >&2; exit 1; }
echo "alice and bob have access tokens"

say "checks"
api POST /_matrix/client/v3/createRoom "$alice" '{"name":"luahost test room"}'
check "alice creates a room" 200 "$status" "$body" room_id
room=$(sed -n 's/.*"room_id":"\([^"]*\)".*/\1/p' <<<"$body")

api PUT "/_matrix/client/v3/rooms/$room/send/m.room.message/t1" "$alice" '{"msgtype":"m.text","body":"hello there"}'
check "a clean message is sent" 200 "$status" "$body" event_id
api PUT "/_matrix/client/v3/rooms/$room/send/m.room.message/t2" "$alice" '{"msgtype":"m.text","body":"buy spam now"}'
check "a message with the banned word is refused" 403 "$status" "$body" '"errcode":"M_FORBIDDEN"' '"word":"spam"'

api POST "/_matrix/client/v3/rooms/$room/invite" "$alice" '{"user_id":"@bob:localhost"}'
check "inviting bob is allowed" 200 "$status" "$body"
api POST "/_matrix/client/v3/rooms/$room/invite" "$alice" '{"user_id":"@mallory:localhost"}'
check "inviting a refused user is refused" 403 "$status" "$body" M_FORBIDDEN

api GET "/_synapse/client/moderation/whoami?room_id=$room" "$alice"
check "web resource: token, user info, profile and room state through the Host" 200 "$status" "$body" \
	'"user_id":"@alice:localhost"' '"admin":false' '"displayname":"alice"' '"membership":"join"' '"room_name":"luahost test room"'
api GET /_synapse/client/moderation/whoami ""
check "web resource without a token" 401 "$status" "$body" M_MISSING_TOKEN
api POST /_synapse/client/moderation/notice "$alice" "{\"room_id\":\"$room\"}"
check "web resource sends an event through the Host" 200 "$status" "$body" event_id
notice=$(sed -n 's/.*"event_id":"\([^"]*\)".*/\1/p' <<<"$body")
api GET "/_matrix/client/v3/rooms/$room/event/${notice//\$/%24}" "$alice"
check "the module's event is in the room" 200 "$status" "$body" 'moderation notice for @alice:localhost'

say "hot reload: moderation.lua now refuses \"eggs\" instead of the configured word"
perl -pi -e 's/local word = config\.banned_word/local word = "eggs"/' moderation.lua
grep -q 'local word = "eggs"' moderation.lua || { echo "edit failed" >&2; exit 1; }
for i in $(seq 30); do
	api PUT "/_matrix/client/v3/rooms/$room/send/m.room.message/r$i" "$alice" '{"msgtype":"m.text","body":"green eggs"}'
	[ "$status" = 403 ] && break
	sleep 0.5
done
check "after the edit, \"eggs\" is refused (try $i, 0.5 s apart)" 403 "$status" "$body" M_FORBIDDEN '"word":"eggs"'
api PUT "/_matrix/client/v3/rooms/$room/send/m.room.message/after" "$alice" '{"msgtype":"m.text","body":"buy spam now"}'
check "after the edit, the old banned word passes" 200 "$status" "$body" event_id
grep -i 'reload' "$work/dendrite.log" | cut -c1-200 | tail -3 || true

say "Dendrite's TCP sockets: each must listen on, or talk to, 127.0.0.1"
if command -v ss >/dev/null; then
	sockets=$(ss -tanp 2>/dev/null | grep "pid=$dendrite_pid," | awk '{print $1, $4, $5}' || true)
	echo "${sockets:-none}"
	outside=$(awk '($1 == "LISTEN" && $2 !~ /^127\.0\.0\.1:/) || ($1 != "LISTEN" && $3 !~ /^127\.0\.0\.1:/)' <<<"$sockets")
	check "no socket beyond loopback" 0 "$(grep -c . <<<"$outside" || true)" "${outside:-none}"
fi

echo
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
