// Package embedding is the Go code that docs/embedding.md shows, compiled:
// every ```go block of that page is a run of lines of this file
// (TestDocsGoBlocks checks it), and snippets_test.go runs the parts a
// homeserver author would notice.
package embedding

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/storage"
)

// The storage backends a program links (docs/embedding.md shows this block).
import (
	_ "github.com/luahost/luahost/engine/storage/bolt"  // storage: {backend: bolt}
	_ "github.com/luahost/luahost/engine/storage/redis" // storage: {backend: redis, url: ...}
)

// quickStart is the page's first example.
func quickStart(ctx context.Context, host engine.Host, logger *slog.Logger, mux *http.ServeMux) (*engine.Engine, error) {
	eng, err := engine.Start(ctx, "/etc/homeserver/luahost.yaml", engine.Options{Host: host, Logger: logger})
	if err != nil {
		return nil, err // every config problem and failed module, each with its file and line
	}
	mux.Handle("/_synapse/client/", eng.Handler()) // the modules' web resources
	return eng, nil
}

// myHost is a homeserver's engine.Host: a server name and the capabilities
// it has. Scripts calling any other host function get
// "<function>: not supported by this homeserver".
type myHost struct {
	name       string
	db         *sql.DB
	createRoom func(ctx context.Context, userID string, config map[string]any) (string, error)
}

func (h *myHost) ServerName() string { return h.name }

// Profile implements engine.ProfileGetter (api.get_profile_for_user).
func (h *myHost) Profile(ctx context.Context, userID string) (*engine.Profile, error) {
	var p engine.Profile
	err := h.db.QueryRowContext(ctx, "SELECT displayname, avatar_url FROM profiles WHERE user_id = $1", userID).
		Scan(&p.DisplayName, &p.AvatarURL)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, engine.ErrNotFound // the script sees nil
	}
	if err != nil {
		return nil, fmt.Errorf("profile of %s: %w", userID, err) // the script gets a Lua error at its line
	}
	return &p, nil
}

// CreateRoom implements engine.RoomCreator (api.create_room), except for
// what this homeserver cannot do from outside its client API.
func (h *myHost) CreateRoom(ctx context.Context, userID string, config map[string]any) (roomID, alias string, err error) {
	if _, ok := config["room_alias_name"]; ok {
		return "", "", fmt.Errorf("aliases: %w", engine.ErrNotSupported) // "create_room: not supported by this homeserver"
	}
	roomID, err = h.createRoom(ctx, userID, config)
	return roomID, "", err
}

// server is a homeserver's HTTP side.
type server struct {
	eng       *engine.Engine // nil when no luahost config is set
	loadState func(ctx context.Context, roomID string) (engine.StateMap, error)
}

// checkSend asks the spam checkers about an event a client sends (raw is
// the event's JSON); false means the response has been written.
func (s *server) checkSend(w http.ResponseWriter, r *http.Request, raw []byte) bool {
	ev, err := engine.EventFromJSON(raw) // decodes the envelope; content stays JSON until a script reads it
	if err != nil {
		(&engine.SynapseError{Code: 400, Errcode: "M_BAD_JSON", Msg: err.Error()}).Write(w)
		return false
	}
	decision, err := s.eng.CheckEventForSpam(r.Context(), ev)
	if err != nil { // a script error: the engine logged it with its traceback
		(&engine.SynapseError{Code: 500, Errcode: "M_UNKNOWN", Msg: "Internal server error"}).Write(w)
		return false
	}
	if refusal := decision.Err(); refusal != nil {
		refusal.Write(w) // 403 {"errcode": "M_FORBIDDEN", "error": "...", extra fields}
		return false
	}
	return true
}

// eventAllowed runs check_event_allowed: the event to send (a module may
// have replaced it), or the refusal to answer with.
func (s *server) eventAllowed(ctx context.Context, ev *engine.Event) (*engine.Event, *engine.SynapseError, error) {
	if !s.eng.Has(engine.CallbackCheckEventAllowed) {
		return ev, nil, nil // no module asks: skip loading the room state
	}
	state, err := s.loadState(ctx, ev.RoomID)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.eng.CheckEventAllowed(ctx, ev, state)
	if err != nil {
		return nil, nil, err
	}
	if refusal := d.Err(); refusal != nil {
		return nil, refusal, nil // 403, or the SynapseError the module raised
	}
	if d.Replacement != nil {
		ev = d.Replacement
	}
	return ev, nil, nil
}

// eventSent tells the modules about an event once it is stored.
func (s *server) eventSent(ev *engine.Event, state engine.StateMap) {
	if !s.eng.FireOnNewEvent(ev, state) { // queued; returns at once
		slog.Warn("luahost notification queue full; on_new_event dropped", "event_id", ev.EventID)
	}
}

// reloadOnHUP reloads the modules on SIGHUP, beside the file watching of Start.
func reloadOnHUP(ctx context.Context, eng *engine.Engine, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := eng.Reload(ctx); err != nil {
				logger.Error("luahost reload", "err", err) // the failed modules keep serving their previous version
			}
			for _, st := range eng.Status() {
				logger.Info("luahost module", "module", st.Name, "generation", st.Generation, "serving", st.Serving, "last_error", st.LastError)
			}
		}
	}()
}

// homeserverConfig is a homeserver's own YAML config with a luahost: section.
type homeserverConfig struct {
	ServerName string    `yaml:"server_name"`
	Luahost    yaml.Node `yaml:"luahost"`
}

// fromHomeserverConfig loads the modules listed in the homeserver's own config file.
func fromHomeserverConfig(ctx context.Context, file string, host engine.Host) (*engine.Engine, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var hc homeserverConfig
	if err := yaml.Unmarshal(data, &hc); err != nil {
		return nil, err
	}
	cfg, err := engine.ParseConfigNode(&hc.Luahost, file) // errors name the lines of the homeserver's file
	if err != nil {
		return nil, err
	}
	cfg.Dir = filepath.Dir(file) // module paths are relative to the homeserver's config
	return engine.New(ctx, cfg, engine.Options{Host: host})
}

// fromJSONConfig does the same for a config section decoded from JSON or TOML.
func fromJSONConfig(ctx context.Context, section map[string]any, host engine.Host) (*engine.Engine, error) {
	cfg, err := engine.ConfigFromMap(section, "homeserver.json (luahost)", "/etc/homeserver")
	if err != nil {
		return nil, err
	}
	return engine.New(ctx, cfg, engine.Options{Host: host})
}

// Geo is a Go API the homeserver gives its modules: require("geo").
type Geo struct {
	countries map[string]string // IP address -> country code
}

// Country returns the country code of an IP address, "" when unknown.
func (g *Geo) Country(ip string) string { return g.countries[ip] }

// Lookup is Country for callers that want an error: it panics on an
// unknown address, which the script sees as a Lua error at its line.
func (g *Geo) Lookup(ip string) string {
	c, ok := g.countries[ip]
	if !ok {
		panic("no country for " + ip)
	}
	return c
}

func withLibraries(host engine.Host, geo *Geo) engine.Options {
	return engine.Options{
		Host:      host,
		Libraries: map[string]any{"geo": geo}, // scripts: local geo = require("geo")
	}
}

// withStore shares one store with the modules' api.store.
func withStore(host engine.Host) (engine.Options, error) {
	store, err := storage.Open(storage.Config{Backend: "memory"})
	if err != nil {
		return engine.Options{}, err
	}
	return engine.Options{Host: host, Store: store}, nil // yours to close, after the engine
}

// newServer mounts the handler with the limits a public listener needs.
func newServer(mux *http.ServeMux) *http.Server {
	return &http.Server{
		Addr:              "127.0.0.1:8008",
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,  // a client trickling headers holds a connection
		ReadTimeout:       60 * time.Second,  // the whole request, body included (up to engine.MaxRequestBody)
		WriteTimeout:      60 * time.Second,  // longer than any module's timeout, or slow answers are cut
		IdleTimeout:       120 * time.Second, // keep-alive connections doing nothing
		MaxHeaderBytes:    64 << 10,          // Matrix requests need little; the default is 1 MiB
	}
}
