// Command embed is a tiny Matrix "homeserver" that embeds luahost, the
// worked example of docs/embedding.md. It
//
//   - implements two host capabilities with its own types (access tokens
//     and profiles); scripts calling any other host function get
//     "<function>: not supported by this homeserver",
//   - starts luahost from luahost.yaml in its own folder (reloading the
//     Lua module when it changes),
//   - mounts the modules' web resources on its own http.ServeMux, and
//   - asks the spam checkers about every message sent to POST /send,
//     answering with the module's refusal when one refuses it, and
//     notifies the modules of the messages it accepts without waiting.
//
// Run it with `go run .` and try:
//
//	curl -H 'Authorization: Bearer alice-token' -d '{"room_id":"!r:example.org","body":"hello"}' localhost:8080/send
//	curl -H 'Authorization: Bearer spammer-token' -d '{"room_id":"!r:example.org","body":"hi"}' localhost:8080/send
//	curl -H 'Authorization: Bearer alice-token' localhost:8080/_synapse/client/embed/whoami
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/luahost/luahost/engine"
)

// homeserver is this program's engine.Host: a server name, plus the
// capabilities engine.TokenAuthenticator (api.get_user_by_req) and
// engine.ProfileGetter (api.get_profile_for_user). The engine calls them
// from many goroutines at once.
type homeserver struct {
	name     string
	tokens   map[string]string         // access token -> user ID; fixed
	profiles map[string]engine.Profile // user ID -> profile; fixed
}

func newHomeserver() *homeserver {
	return &homeserver{
		name:     "example.org",
		tokens:   map[string]string{"alice-token": "@alice:example.org", "spammer-token": "@spammer:example.org"},
		profiles: map[string]engine.Profile{"@alice:example.org": {DisplayName: "Alice"}, "@spammer:example.org": {DisplayName: "Totally Legit"}},
	}
}

func (h *homeserver) ServerName() string { return h.name }

// UserByAccessToken implements engine.TokenAuthenticator.
func (h *homeserver) UserByAccessToken(ctx context.Context, token string) (*engine.Requester, error) {
	userID, ok := h.tokens[token]
	if !ok {
		return nil, engine.ErrNotFound // the script's get_user_by_req answers 401 M_UNKNOWN_TOKEN
	}
	return &engine.Requester{UserID: userID, DeviceID: "EMBED", AccessToken: token}, nil
}

// Profile implements engine.ProfileGetter.
func (h *homeserver) Profile(ctx context.Context, userID string) (*engine.Profile, error) {
	p, ok := h.profiles[userID]
	if !ok {
		return nil, engine.ErrNotFound // the script sees nil
	}
	return &p, nil
}

// server is the homeserver's HTTP side.
type server struct {
	hs  *homeserver
	eng *engine.Engine

	mu     sync.Mutex
	nextID int
	events []*engine.Event // accepted messages
}

// newServer starts luahost from dir/luahost.yaml and returns the server
// and its routes. The engine closes when ctx ends.
func newServer(ctx context.Context, dir string, log *slog.Logger) (*server, http.Handler, error) {
	hs := newHomeserver()
	eng, err := engine.Start(ctx, filepath.Join(dir, "luahost.yaml"), engine.Options{Host: hs, Logger: log})
	if err != nil {
		return nil, nil, err // every module that failed, each with its file and line
	}
	s := &server{hs: hs, eng: eng}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /send", s.handleSend)
	mux.Handle("/_synapse/client/", eng.Handler()) // the modules' web resources
	return s, mux, nil
}

// handleSend stores a message unless a spam checker refuses it.
func (s *server) handleSend(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	requester, err := s.hs.UserByAccessToken(r.Context(), token)
	if err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token"})
		return
	}
	var req struct {
		RoomID string `json:"room_id"`
		Body   string `json:"body"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.RoomID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errcode": "M_BAD_JSON", "error": `expected {"room_id": ..., "body": ...}`})
		return
	}
	s.mu.Lock()
	s.nextID++
	ev := &engine.Event{
		EventID: fmt.Sprintf("$%d:%s", s.nextID, s.hs.ServerName()), Type: "m.room.message",
		RoomID: req.RoomID, Sender: requester.UserID, OriginServerTS: time.Now().UnixMilli(),
		Content: map[string]any{"msgtype": "m.text", "body": req.Body},
	}
	s.mu.Unlock()

	decision, err := s.eng.CheckEventForSpam(r.Context(), ev)
	if err != nil {
		// A module raised: the engine logged it with its traceback.
		writeJSON(w, http.StatusInternalServerError, map[string]any{"errcode": "M_UNKNOWN", "error": "Internal server error"})
		return
	}
	if refusal := decision.Err(); refusal != nil {
		refusal.Write(w) // 403 with the module's errcode and extra fields
		return
	}

	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	// Tell the modules without making the client wait (the engine reads
	// ev later, so it must not change from here on).
	s.eng.FireOnNewEvent(ev, engine.StateMap{})
	writeJSON(w, http.StatusOK, map[string]any{"event_id": ev.EventID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	dir := flag.String("dir", ".", "folder of luahost.yaml")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *dir, log); err != nil {
		log.Error("embed", "err", err)
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM, then shuts down gracefully:
// in-flight requests finish, then the engine closes its modules.
func run(listen, dir string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, handler, err := newServer(context.Background(), dir, log)
	if err != nil {
		return err
	}
	defer s.eng.Close() // after the HTTP server: on_close callbacks run, states are freed

	srv := &http.Server{Addr: listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving", "addr", listen, "paths", s.eng.Paths())
	select {
	case err := <-errc:
		return err // could not listen
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
