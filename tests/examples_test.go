package tests

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/internal/invoke"
)

// Every example in scripts/examples/ loads without errors, and its
// callbacks answer as its comments say. The calls run in order against one
// engine, as `luahost call` would run them one by one (but keeping module
// state between calls), and each answer is compared as JSON with what
// `luahost call` prints.

// exampleCall is one invocation: callback ("category.name") with JSON
// arguments, and the JSON answer expected, or an error containing wantErr.
type exampleCall struct {
	callback string
	args     []string
	want     string
	wantErr  string
}

func call(callback string, want string, args ...string) exampleCall {
	return exampleCall{callback: callback, args: args, want: want}
}

func callErr(callback string, wantErr string, args ...string) exampleCall {
	return exampleCall{callback: callback, args: args, wantErr: wantErr}
}

// sharedSecretToken is the token shared_secret_auth accepts for userID
// with the secret of its sample config (its shared_secret.txt).
func sharedSecretToken(userID string) string {
	return sharedSecretTokenWith("change-me-to-a-long-random-secret", userID)
}

func sharedSecretTokenWith(secret, userID string) string {
	mac := hmac.New(sha512.New, []byte(secret))
	mac.Write([]byte(userID))
	return hex.EncodeToString(mac.Sum(nil))
}

func message(roomID, sender, body string) string {
	ev, _ := json.Marshal(map[string]any{
		"type": "m.room.message", "room_id": roomID, "sender": sender, "event_id": "$ev1",
		"content": map[string]any{"msgtype": "m.text", "body": body},
	})
	return string(ev)
}

// exampleCalls lists the calls per example folder. An example without an
// entry (a module with only web resources, say) is only loaded.
var exampleCalls = map[string][]exampleCall{
	"spam_checker": {
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@alice:example.org", "hello")),
		call("spam_checker.check_event_for_spam", `"M_FORBIDDEN"`, message("!r:example.org", "@spammer:example.org", "hello")),
		call("spam_checker.check_event_for_spam", `["M_FORBIDDEN", {"reason": "banned word", "word": "buy cheap"}]`,
			message("!r:example.org", "@alice:example.org", "BUY CHEAP watches")),
		call("spam_checker.user_may_invite", `"NOT_SPAM"`, `"@alice:example.org"`, `"@bob:example.org"`, `"!r:example.org"`),
		call("spam_checker.user_may_invite", `"M_FORBIDDEN"`, `"@spammer:example.org"`, `"@bob:example.org"`, `"!r:example.org"`),
	},
	"shared_secret_auth": {
		call("password_auth_provider.auth_checkers", `["@alice:example.org"]`,
			`"alice"`, `"com.devture.shared_secret_auth"`, `{"token": "`+sharedSecretToken("@alice:example.org")+`"}`),
		call("password_auth_provider.auth_checkers", `["@alice:example.org"]`,
			`"@alice:example.org"`, `"com.devture.shared_secret_auth"`, `{"token": "`+sharedSecretToken("@alice:example.org")+`"}`),
		// A token for someone else, a wrong token, an unknown user.
		call("password_auth_provider.auth_checkers", `null`,
			`"alice"`, `"com.devture.shared_secret_auth"`, `{"token": "`+sharedSecretToken("@bob:example.org")+`"}`),
		call("password_auth_provider.auth_checkers", `null`,
			`"alice"`, `"com.devture.shared_secret_auth"`, `{"token": "00ff"}`),
		call("password_auth_provider.auth_checkers", `null`,
			`"nobody"`, `"com.devture.shared_secret_auth"`, `{"token": "`+sharedSecretToken("@nobody:example.org")+`"}`),
		// Password logins are not enabled in the sample config.
		call("password_auth_provider.auth_checkers", `null`,
			`"alice"`, `"m.login.password"`, `{"password": "`+sharedSecretToken("@alice:example.org")+`"}`),
	},
	"third_party_rules": {
		// Announcement room: only the listed senders post messages.
		call("third_party_rules.check_event_allowed", `[false, null]`,
			message("!news:example.org", "@bob:example.org", "hi all"), `{}`),
		call("third_party_rules.check_event_allowed", `[true, null]`,
			message("!news:example.org", "@comms:example.org", "Office closed on Friday"), `{}`),
		call("third_party_rules.check_event_allowed", `[true, null]`,
			`{"type": "m.room.member", "room_id": "!news:example.org", "sender": "@bob:example.org", "state_key": "@bob:example.org", "content": {"membership": "join"}}`, `{}`),
		// Replacement: the words are replaced, the HTML body dropped.
		call("third_party_rules.check_event_allowed",
			`[true, {"type": "m.room.message", "room_id": "!r:example.org", "sender": "@bob:example.org", "event_id": "$ev1", "content": {"msgtype": "m.text", "body": "what the h*ck, d**n it"}}]`,
			`{"type": "m.room.message", "room_id": "!r:example.org", "sender": "@bob:example.org", "event_id": "$ev1", "content": {"msgtype": "m.text", "body": "what the Heck, darn it", "format": "org.matrix.custom.html", "formatted_body": "what the <b>Heck</b>, darn it"}}`, `{}`),
		call("third_party_rules.check_event_allowed", `[true, null]`,
			message("!r:example.org", "@bob:example.org", "checking the darned hecktic schedule"), `{}`),
		call("third_party_rules.check_visibility_can_be_modified", `true`, `"!lobby:example.org"`, `{}`, `"public"`),
		call("third_party_rules.check_visibility_can_be_modified", `false`, `"!secret:example.org"`, `{}`, `"public"`),
		call("third_party_rules.check_visibility_can_be_modified", `true`, `"!secret:example.org"`, `{}`, `"private"`),
		call("third_party_rules.check_threepid_can_be_invited", `true`, `"email"`, `"Carol@Example.org"`, `{}`),
		call("third_party_rules.check_threepid_can_be_invited", `false`, `"email"`, `"carol@gmail.com"`, `{}`),
		call("third_party_rules.check_threepid_can_be_invited", `false`, `"msisdn"`, `"447700900000"`, `{}`),
		call("third_party_rules.on_create_room", `{"name": "Team", "creation_content": {"m.federate": false}}`,
			`{"user_id": "@bob:example.org"}`, `{"name": "Team"}`, `false`),
		call("third_party_rules.on_create_room", `{"name": "Town hall", "visibility": "public"}`,
			`{"user_id": "@admin:example.org"}`, `{"name": "Town hall", "visibility": "public"}`, `true`),
		callErr("third_party_rules.on_create_room", "Only server admins may create rooms in the public directory",
			`{"user_id": "@bob:example.org"}`, `{"name": "Town hall", "visibility": "public"}`, `false`),
	},
	"account_validity": {
		call("account_validity.is_user_expired", `true`, `"@former-employee:example.org"`),
		call("account_validity.is_user_expired", `false`, `"@admin:example.org"`),
		call("account_validity.is_user_expired", `null`, `"@alice:example.org"`),
		call("account_validity.on_user_registration", `null`, `"@new:example.org"`),
		call("account_validity.is_user_expired", `false`, `"@new:example.org"`),
		call("account_validity.on_user_login", `null`, `"@new:example.org"`, `"m.login.sso"`, `"oidc-github"`),
		call("account_validity.on_user_login", `null`, `"@new:example.org"`, `"m.login.password"`, `null`),
	},
	"presence_router": {
		call("presence_router.get_interested_users", `["@bob:example.org", "@carol:other.org"]`, `"@alice:example.org"`),
		call("presence_router.get_interested_users", `"ALL"`, `"@presence-bot:example.org"`),
		call("presence_router.get_interested_users", `[]`, `"@dave:example.org"`),
		call("presence_router.get_users_for_states",
			`{"@alice:example.org": [{"user_id": "@bob:example.org", "state": "online", "currently_active": true}],
			  "@presence-bot:example.org": [{"user_id": "@bob:example.org", "state": "online", "currently_active": true},
			                                {"user_id": "@dave:example.org", "state": "offline", "currently_active": false}]}`,
			`[{"user_id": "@bob:example.org", "state": "online", "currently_active": true},
			  {"user_id": "@dave:example.org", "state": "offline"}]`),
		call("presence_router.get_users_for_states", `{}`, `[{"user_id": "@presence-bot:example.org", "state": "online"}]`),
	},
	"background_update_controller": {
		call("background_update_controller.on_update", `500`, `"populate_stats_process_rooms"`, `"main"`, `false`),
		call("background_update_controller.on_update", `50`, `"event_search_postgres_gin"`, `"main"`, `true`),
		call("background_update_controller.default_batch_size", `200`, `"populate_stats_process_rooms"`, `"main"`),
		call("background_update_controller.min_batch_size", `20`, `"populate_stats_process_rooms"`, `"main"`),
	},
	"account_data": {
		call("account_data.on_account_data_updated", `null`,
			`"@alice:example.org"`, `null`, `"m.ignored_user_list"`, `{"ignored_users": {"@spammer:example.org": {}}}`),
		call("account_data.on_account_data_updated", `null`,
			`"@alice:example.org"`, `"!r:example.org"`, `"org.example.notes"`, `{}`),
		call("account_data.on_account_data_updated", `null`,
			`"@alice:example.org"`, `"!r:example.org"`, `"m.fully_read"`, `{"event_id": "$ev1"}`),
	},
	"add_extra_fields_to_unsigned_client_event": {
		call("add_extra_fields_to_unsigned_client_event.add_field_to_unsigned_callback", `{"org.example.bot": true}`,
			message("!r:example.org", "@github:example.org", "PR merged")),
		call("add_extra_fields_to_unsigned_client_event.add_field_to_unsigned_callback", `{"org.example.untrusted_server": "spam.example.net"}`,
			message("!r:example.org", "@someone:spam.example.net", "hello")),
		call("add_extra_fields_to_unsigned_client_event.add_field_to_unsigned_callback", `{}`,
			message("!r:example.org", "@alice:example.org", "hello")),
		// A field the event's unsigned already has is never overwritten.
		call("add_extra_fields_to_unsigned_client_event.add_field_to_unsigned_callback", `{}`,
			`{"type": "m.room.message", "sender": "@github:example.org", "content": {}, "unsigned": {"org.example.bot": "set by the server"}}`),
	},
	"media_repository": {
		call("media_repository.is_user_allowed_to_upload_media_of_size", `true`, `"@alice:example.org"`, `1048576`),
		call("media_repository.is_user_allowed_to_upload_media_of_size", `false`, `"@alice:example.org"`, `20000000`),
		call("media_repository.is_user_allowed_to_upload_media_of_size", `true`, `"@archivist:example.org"`, `20000000`),
		call("media_repository.is_user_allowed_to_upload_media_of_size", `false`, `"@guest-kiosk:example.org"`, `1`),
		call("media_repository.get_media_config_for_user", `{"m.upload.size": 10485760}`, `"@alice:example.org"`),
		call("media_repository.get_media_config_for_user", `{"m.upload.size": 1073741824}`, `"@archivist:example.org"`),
		call("media_repository.get_media_upload_limits_for_user",
			`[{"max_bytes": 524288000, "time_period_ms": 86400000}, {"max_bytes": 104857600, "time_period_ms": 3600000}]`, `"@alice:example.org"`),
		call("media_repository.get_media_upload_limits_for_user", `[]`, `"@archivist:example.org"`),
		call("media_repository.on_media_upload_limit_exceeded", `null`,
			`"@alice:example.org"`, `{"max_bytes": 104857600, "time_period_ms": 3600000}`, `104000000`, `2000000`),
	},
	"storage": {
		// Five messages within the window pass, the sixth is limited (in
		// any room); another sender has a count of their own.
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@alice:example.org", "1")),
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@alice:example.org", "2")),
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@alice:example.org", "3")),
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@alice:example.org", "4")),
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@alice:example.org", "5")),
		call("spam_checker.check_event_for_spam", `"M_LIMIT_EXCEEDED"`, message("!r:example.org", "@alice:example.org", "6")),
		call("spam_checker.check_event_for_spam", `"M_LIMIT_EXCEEDED"`, message("!other:example.org", "@alice:example.org", "7")),
		call("spam_checker.check_event_for_spam", `"NOT_SPAM"`, message("!r:example.org", "@bob:example.org", "hi")),
	},
	"ratelimit": {
		call("ratelimit.get_ratelimit_override_for_user", `{"per_second": 0, "burst_count": 0}`, `"@onboarding:example.org"`, `"rc_invites.per_room"`),
		call("ratelimit.get_ratelimit_override_for_user", `{"per_second": 5, "burst_count": 50}`, `"@onboarding:example.org"`, `"rc_invites.per_issuer"`),
		call("ratelimit.get_ratelimit_override_for_user", `null`, `"@alice:example.org"`, `"rc_invites.per_room"`),
	},
}

func TestExamples(t *testing.T) {
	configs, err := filepath.Glob("../scripts/examples/*/luahost.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(configs) == 0 {
		t.Fatal("no scripts/examples/*/luahost.yaml found")
	}
	seen := map[string]bool{}
	for _, file := range configs {
		name := filepath.Base(filepath.Dir(file))
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			eng := loadExample(t, file)
			for i, c := range exampleCalls[name] {
				t.Run(fmt.Sprintf("%02d_%s", i+1, c.callback[strings.IndexByte(c.callback, '.')+1:]), func(t *testing.T) {
					runExampleCall(t, eng, file, c)
				})
			}
		})
	}
	for name := range exampleCalls {
		if !seen[name] {
			t.Errorf("exampleCalls has calls for %q, but scripts/examples/%s/luahost.yaml does not exist", name, name)
		}
	}
}

// loadExample loads a config with the reference in-memory homeserver
// behind it, as `luahost call` does, with a few users (alice, bob, an
// admin). The engine is closed when the test ends.
func loadExample(t *testing.T, file string) *engine.Engine {
	t.Helper()
	cfg, err := engine.LoadConfig(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	host := memhost.New(cfg.ServerName)
	for _, u := range []string{"alice", "bob"} {
		if _, err := host.CreateUser(u, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := host.CreateUser("admin", true); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eng, err := engine.New(ctx, cfg, engine.Options{Host: host, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if eng != nil {
		t.Cleanup(func() {
			if err := eng.Close(); err != nil {
				t.Errorf("%s: close: %v", file, err)
			}
			if t.Failed() {
				t.Logf("engine log:\n%s", logs.String())
			}
		})
	}
	if err != nil {
		t.Fatalf("%s: loading the modules: %v", file, err)
	}
	return eng
}

func runExampleCall(t *testing.T, eng *engine.Engine, file string, c exampleCall) {
	t.Helper()
	args := make([]json.RawMessage, len(c.args))
	for i, a := range c.args {
		if !json.Valid([]byte(a)) {
			t.Fatalf("argument %d is not JSON: %s", i+1, a)
		}
		args[i] = json.RawMessage(a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := invoke.Call(ctx, eng, c.callback, args)
	where := fmt.Sprintf("%s: %s(%s)", file, c.callback, strings.Join(c.args, ", "))
	if c.wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Fatalf("%s:\n got error %v, result %s\nwant an error containing %q", where, err, marshal(res), c.wantErr)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	got, want := canonicalJSON(t, marshal(res)), canonicalJSON(t, c.want)
	if got != want {
		t.Errorf("%s:\n got %s\nwant %s", where, got, want)
	}
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<cannot marshal %T: %v>", v, err)
	}
	return string(b)
}

// canonicalJSON re-encodes s so that key order and spacing do not matter.
func canonicalJSON(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// syncBuffer collects the engine's log for a failing test's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// shared_secret_auth reads its secret from the file its config names with
// !file, or from the environment with ${NAME}: a token minted with another
// secret is refused, one minted with the secret given is accepted.
func TestSharedSecretAuthReadsItsSecretOutsideTheConfig(t *testing.T) {
	src, err := os.ReadFile("../scripts/examples/shared_secret_auth/shared_secret_auth.lua")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("../scripts/examples/shared_secret_auth/luahost.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "shared_secret: !file shared_secret.txt") {
		t.Fatalf("the example's config no longer reads the secret from shared_secret.txt:\n%s", cfg)
	}
	t.Setenv("LUAHOST_TEST_SHARED_SECRET", "from-the-environment")
	for _, c := range []struct{ name, config, file, secret string }{
		{"file", string(cfg), "a-secret-only-this-host-knows\n", "a-secret-only-this-host-knows"},
		{"environment", strings.Replace(string(cfg), "!file shared_secret.txt", "${LUAHOST_TEST_SHARED_SECRET}", 1), "", "from-the-environment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"shared_secret_auth.lua": string(src), "luahost.yaml": c.config}
			if c.file != "" {
				files["shared_secret.txt"] = c.file
			}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			eng := loadExample(t, filepath.Join(dir, "luahost.yaml"))
			login := func(secret string) string {
				return `{"token": "` + sharedSecretTokenWith(secret, "@alice:example.org") + `"}`
			}
			runExampleCall(t, eng, c.name, call("password_auth_provider.auth_checkers", `["@alice:example.org"]`,
				`"alice"`, `"com.devture.shared_secret_auth"`, login(c.secret)))
			runExampleCall(t, eng, c.name, call("password_auth_provider.auth_checkers", `null`,
				`"alice"`, `"com.devture.shared_secret_auth"`, login("change-me-to-a-long-random-secret")))
		})
	}
}
