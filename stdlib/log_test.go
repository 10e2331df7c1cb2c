package stdlib

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLog(t *testing.T) {
	L, env := newLibState(t)
	var buf bytes.Buffer
	env.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	err := runChunk(L, "spam.lua", `local log = require("log")
log.debug("not shown")
log.info("checked event", {
  event_id = "$abc", score = 3, ratio = 0.5, ok = true,
  tags = {"a", "b"},
  sender = {user = "@bob:ex.org", admin = false},
  fn = print,
})
log.warn("plain")
log.error("bad", {[1] = "one", [true] = "skipped"})`)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d records, want 3 (debug filtered):\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"level":    "INFO",
		"msg":      "checked event",
		"module":   "test_module",
		"script":   "spam.lua:3",
		"event_id": "$abc",
		"score":    float64(3),
		"ratio":    0.5,
		"ok":       true,
		"tags":     []any{"a", "b"},
		"sender":   map[string]any{"user": "@bob:ex.org", "admin": false},
		"fn":       "<function>",
	}
	for k, v := range want {
		got, _ := json.Marshal(rec[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("%s = %s, want %s", k, got, exp)
		}
	}
	if !strings.Contains(lines[1], `"level":"WARN","msg":"plain","module":"test_module","script":"spam.lua:9"`) {
		t.Errorf("warn record: %s", lines[1])
	}
	if !strings.Contains(lines[2], `"1":"one"`) || strings.Contains(lines[2], "skipped") {
		t.Errorf("error record: %s", lines[2])
	}
}

func TestLogCycleAndDepth(t *testing.T) {
	L, env := newLibState(t)
	var buf bytes.Buffer
	env.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	err := runChunk(L, "cycle.lua", `
		local t = {name = "loop"}
		t.self = t
		local arr = {}
		arr[1] = arr
		require("log").info("cycle", {t = t, arr = arr})`)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(bytes.TrimSpace(buf.Bytes())) || !strings.Contains(buf.String(), `"<table>"`) {
		t.Fatalf("record: %s", buf.String())
	}
}

func TestLogArgs(t *testing.T) {
	runLuaCases(t, []luaCase{
		{name: "no message", code: `require("log").info()`, wantErr: "bad argument #1"},
		{name: "fields not a table", code: `require("log").info("x", "y")`, wantErr: "bad argument #2"},
	})
}
