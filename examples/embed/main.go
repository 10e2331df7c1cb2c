// Command embed is a tiny Matrix "homeserver" that embeds luahost, the
// worked example of docs/embedding.md. It
//
//   - implements luaapi.Host with its own types (access tokens and
//     profiles; every other capability is left out),
//   - loads luahost.yaml and its Lua module from its own folder,
//   - mounts the modules' web resources on its own http.ServeMux, and
//   - asks the spam checkers about every message sent to POST /send,
//     answering 403 with the module's errcode when one refuses it, and
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
	"errors"
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
	"github.com/luahost/luahost/luaapi"
)

// homeserver is this program's luaapi.Host. The embedded
// UnimplementedHost supplies ServerName; the methods below add two
// optional capabilities, AuthHost (api.get_user_by_req) and UserHost
// (api.get_profile_for_user and friends). A script calling a host function
// of a capability it lacks (api.get_room_state, ...) gets the error
// "<name>: not supported by this homeserver".
//
// The engine calls these methods from many goroutines at once.
type homeserver struct {
	luaapi.UnimplementedHost
	tokens map[string]string // access token -> user ID; fixed

	mu       sync.RWMutex
	profiles map[string]luaapi.Profile // user ID -> profile
}

var (
	_ luaapi.AuthHost = (*homeserver)(nil)
	_ luaapi.UserHost = (*homeserver)(nil)
)

func newHomeserver(serverName string) *homeserver {
	user := func(localpart string) string { return "@" + localpart + ":" + serverName }
	return &homeserver{
		UnimplementedHost: luaapi.UnimplementedHost{Name: serverName},
		tokens: map[string]string{
			"alice-token":   user("alice"),
			"spammer-token": user("spammer"),
		},
		profiles: map[string]luaapi.Profile{
			user("alice"):   {DisplayName: "Alice"},
			user("spammer"): {DisplayName: "Totally Legit"},
		},
	}
}

// UserByAccessToken implements luaapi.AuthHost.
func (h *homeserver) UserByAccessToken(ctx context.Context, token string) (*luaapi.Requester, error) {
	userID, ok := h.tokens[token]
	if !ok {
		return nil, luaapi.ErrNotFound // the script's get_user_by_req answers 401 M_UNKNOWN_TOKEN
	}
	return &luaapi.Requester{UserID: userID, DeviceID: "EMBED", AccessToken: token}, nil
}

// CheckUserExists implements luaapi.UserHost.
func (h *homeserver) CheckUserExists(ctx context.Context, userID string) (string, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if _, ok := h.profiles[userID]; ok {
		return userID, nil
	}
	return "", nil
}

// UserInfo implements luaapi.UserHost.
func (h *homeserver) UserInfo(ctx context.Context, userID string) (*luaapi.UserInfo, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if _, ok := h.profiles[userID]; !ok {
		return nil, luaapi.ErrNotFound
	}
	return &luaapi.UserInfo{UserID: userID}, nil
}

// Profile implements luaapi.UserHost.
func (h *homeserver) Profile(ctx context.Context, userID string) (*luaapi.Profile, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	p, ok := h.profiles[userID]
	if !ok {
		return nil, luaapi.ErrNotFound // the script sees nil
	}
	return &p, nil
}

// SetDisplayName implements luaapi.UserHost.
func (h *homeserver) SetDisplayName(ctx context.Context, userID, displayName string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.profiles[userID]
	if !ok {
		return fmt.Errorf("user %s: %w", userID, luaapi.ErrNotFound)
	}
	p.DisplayName = displayName
	h.profiles[userID] = p
	return nil
}

var errNoRegistration = errors.New("this homeserver does not register users")

// RegisterUser implements luaapi.UserHost; the error reaches the script.
func (h *homeserver) RegisterUser(ctx context.Context, u luaapi.NewUser) (string, error) {
	return "", errNoRegistration
}

// RegisterDevice implements luaapi.UserHost.
func (h *homeserver) RegisterDevice(ctx context.Context, userID, deviceID, initialDisplayName string) (*luaapi.Device, error) {
	return nil, errNoRegistration
}

// server is the homeserver's HTTP side.
type server struct {
	hs  *homeserver
	eng *engine.Engine
	log *slog.Logger

	mu     sync.Mutex
	nextID int
	events []*engine.Event // accepted messages
}

// newServer loads luahost.yaml from dir and returns the server and its
// routes. Modules that fail to load are logged; the others serve.
// Close the engine (s.eng.Close) when done.
func newServer(ctx context.Context, dir string, log *slog.Logger) (*server, http.Handler, error) {
	cfg, err := engine.LoadConfig(filepath.Join(dir, "luahost.yaml"))
	if err != nil {
		return nil, nil, err // a config error: file:line: message
	}
	hs := newHomeserver(cfg.ServerName)
	eng, err := engine.New(ctx, cfg, engine.Options{Host: hs, Logger: log})
	var loadErrs engine.LoadErrors
	switch {
	case errors.As(err, &loadErrs):
		// The engine serves the modules that loaded. A homeserver could
		// refuse to start instead; this one logs and goes on.
		for _, e := range loadErrs {
			log.Error("module not loaded", "err", e)
		}
	case err != nil:
		return nil, nil, err
	}
	s := &server{hs: hs, eng: eng, log: log}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /send", s.handleSend)
	// The modules' web resources. A registered path serves itself and
	// everything below it, so mount both "/p" and the subtree "/p/".
	// (Mounting a prefix such as "/_synapse/client/" instead would also
	// pick up paths that a reload adds.)
	mounted := map[string]bool{}
	for _, p := range eng.Paths() {
		for _, pattern := range []string{p, strings.TrimSuffix(p, "/") + "/"} {
			if !mounted[pattern] { // two modules may register the same path
				mounted[pattern] = true
				mux.Handle(pattern, eng.Handler())
			}
		}
	}
	return s, mux, nil
}

// sendRequest is the body of POST /send.
type sendRequest struct {
	RoomID string `json:"room_id"`
	Body   string `json:"body"`
}

// handleSend stores a message unless a spam checker refuses it.
func (s *server) handleSend(w http.ResponseWriter, r *http.Request) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	requester, err := s.hs.UserByAccessToken(r.Context(), token)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "M_UNKNOWN_TOKEN", "Unrecognised access token", nil)
		return
	}
	var req sendRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.RoomID == "" {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", "expected {\"room_id\": ..., \"body\": ...}", nil)
		return
	}
	s.mu.Lock()
	s.nextID++
	eventID := fmt.Sprintf("$%d:%s", s.nextID, s.hs.ServerName())
	s.mu.Unlock()
	ev := &engine.Event{
		EventID:        eventID,
		Type:           "m.room.message",
		RoomID:         req.RoomID,
		Sender:         requester.UserID,
		Content:        map[string]any{"msgtype": "m.text", "body": req.Body},
		OriginServerTS: time.Now().UnixMilli(),
	}

	// Skip the work (here: the call; in a real server, building the
	// event) when no module checks events.
	if s.eng.Has("spam_checker.check_event_for_spam") {
		decision, err := s.eng.CheckEventForSpam(r.Context(), ev)
		if err != nil {
			// A module raised (and has no on_error: deny): the engine
			// logged it with its traceback. Refuse without details.
			writeError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal server error", nil)
			return
		}
		if !decision.Allowed() {
			msg := decision.Msg
			if msg == "" {
				msg = "This message has been rejected as probable spam"
			}
			writeError(w, http.StatusForbidden, decision.Errcode, msg, decision.Extra)
			return
		}
	}

	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	// Tell the modules without making the client wait: the notification
	// goes on the engine's queue (false: the queue was full and it was
	// dropped, counted in Dropped and logged). The engine reads ev later,
	// so it must not change from here on.
	s.eng.FireOnNewEvent(ev, engine.StateMap{})
	writeJSON(w, http.StatusOK, map[string]any{"event_id": ev.EventID})
}

// writeError answers in Matrix's error format, with a module's extra
// fields (`return api.Codes.FORBIDDEN, {reason = ...}`) added.
func writeError(w http.ResponseWriter, status int, errcode, msg string, extra map[string]any) {
	body := map[string]any{}
	for k, v := range extra {
		body[k] = v
	}
	body["errcode"] = errcode
	body["error"] = msg
	writeJSON(w, status, body)
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

	s, handler, err := newServer(ctx, dir, log)
	if err != nil {
		return err
	}
	defer s.eng.Close() // after the HTTP server: on_close callbacks run, states are freed

	srv := &http.Server{Addr: listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving", "addr", listen, "modules", len(s.eng.Modules()), "paths", s.eng.Paths())

	select {
	case err := <-errc:
		return err // could not listen
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
