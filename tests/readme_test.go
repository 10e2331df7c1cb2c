package tests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/internal/invoke"
)

// The README's first module and its config work as the README says:
// check lists the callback and the web path, call rejects the spammer.
func TestReadmeFirstModule(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := func(lang string) string {
		m := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```").FindSubmatch(readme)
		if m == nil {
			t.Fatalf("README has no ```%s block", lang)
		}
		return string(m[1])
	}
	dir := t.TempDir()
	for name, src := range map[string]string{"spam.lua": block("lua"), "luahost.yaml": block("yaml")} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := engine.LoadConfig(filepath.Join(dir, "luahost.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(context.Background(), cfg, engine.Options{})
	if err != nil {
		t.Fatalf("the README's module does not load: %v", err)
	}
	defer e.Close()
	mods := e.Status()
	if len(mods) != 1 || len(mods[0].Callbacks) != 1 || mods[0].Callbacks[0] != "spam_checker.check_event_for_spam" ||
		len(mods[0].Paths) != 1 || mods[0].Paths[0] != "/_synapse/client/spam/is_evil" {
		t.Errorf("check would print something else than the README shows: %+v", mods)
	}
	res, err := invoke.Call(context.Background(), e, "check_event_for_spam", []json.RawMessage{
		json.RawMessage(`{"type":"m.room.message","sender":"@spammer:example.org","content":{"body":"hi"}}`)})
	got, _ := json.Marshal(res)
	if err != nil || string(got) != `"M_FORBIDDEN"` {
		t.Errorf(`the README says call prints "M_FORBIDDEN"; got %s %v`, got, err)
	}
}
