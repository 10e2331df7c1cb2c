// Package csapi serves a subset of the Matrix Client-Server API over the
// reference in-memory homeserver (memhost), calling the modules'
// callbacks where Synapse calls them, with Synapse's answers when a
// module refuses. It is what `luahost serve` speaks, so that an admin
// can watch a module act on real client requests.
//
// Everything lives in memory. Not implemented: federation, end-to-end
// encryption key endpoints, push, typing, receipts, thumbnails (the
// original file is served), and most optional endpoints; see
// docs/dev-homeserver.md.
package csapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/luahost/luahost/cmd/luahost/memhost"
	"github.com/luahost/luahost/engine"
)

// DefaultMaxUploadSize is Synapse's default max_upload_size (50M).
const DefaultMaxUploadSize = 50 << 20

// maxJSONBody caps a JSON request body.
const maxJSONBody = engine.MaxRequestBody

// Options configure a Server.
type Options struct {
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Fallback serves every path the Client-Server API does not own (the
	// modules' web resources); nil answers 404.
	Fallback http.Handler
	// RegistrationSharedSecret enables Synapse's shared-secret
	// registration (/_synapse/admin/v1/register) when set.
	RegistrationSharedSecret string
	// MaxUploadSize caps a media upload; 0 means DefaultMaxUploadSize.
	MaxUploadSize int64
	// Done, when closed, ends the /sync long-polls at once (with what
	// they have), so that a graceful shutdown need not wait them out.
	Done <-chan struct{}
}

// Server is the Client-Server API of one in-memory homeserver.
type Server struct {
	eng  *engine.Engine
	host *memhost.Host
	log  *slog.Logger
	opts Options

	routes []route
	limits *limiter

	mu        sync.Mutex
	nonces    map[string]time.Time       // shared-secret registration nonces
	emailSids map[string]emailValidation // sid → validated email
	filters   map[string]map[string]any  // user + "\x00" + filter ID → filter
	nextID    int
}

type emailValidation struct {
	clientSecret, email string
	validatedAt         int64
}

// New returns the Client-Server API of host, asking eng's modules.
func New(eng *engine.Engine, host *memhost.Host, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxUploadSize <= 0 {
		opts.MaxUploadSize = DefaultMaxUploadSize
	}
	s := &Server{
		eng: eng, host: host, log: opts.Logger, opts: opts,
		limits:    newLimiter(),
		nonces:    map[string]time.Time{},
		emailSids: map[string]emailValidation{},
		filters:   map[string]map[string]any{},
	}
	s.addRoutes()
	return s
}

// owns reports whether path belongs to the Client-Server API (or the
// admin API) rather than to the modules' web resources.
func owns(path string) bool {
	return strings.HasPrefix(path, "/_matrix/") || strings.HasPrefix(path, "/_synapse/admin/") ||
		path == "/.well-known/matrix/client"
}

// ServeHTTP routes a request: the Client-Server API's own paths, and the
// fallback for the rest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !owns(r.URL.Path) {
		if s.opts.Fallback != nil {
			s.opts.Fallback.ServeHTTP(w, r)
			return
		}
		errUnrecognized().Write(w)
		return
	}
	setCORS(w.Header())
	if r.Method == http.MethodOptions {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rt, vars, methodOK := s.match(r)
	switch {
	case rt == nil && methodOK:
		errUnrecognized().Write(w)
		return
	case rt == nil:
		(&engine.SynapseError{Code: http.StatusMethodNotAllowed, Errcode: "M_UNRECOGNIZED", Msg: "Unrecognized request"}).Write(w)
		return
	}
	c := &call{s: s, w: w, r: r, vars: vars}
	body, err := s.run(c, rt)
	if c.written {
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) run(c *call, rt *route) (any, error) {
	if rt.auth != noAuth {
		who, err := s.authenticate(c.r, rt.auth == authAllowExpired)
		if err != nil {
			return nil, err
		}
		c.who = who
		if rt.admin {
			info, err := s.host.UserInfo(c.r.Context(), who.UserID)
			if err != nil || !info.IsAdmin {
				return nil, forbidden("You are not a server admin")
			}
		}
	}
	return rt.h(c)
}

// setCORS sets the headers the spec asks for on every response.
func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization, Date")
}

// call is one request on its way through a handler.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	vars    map[string]string
	who     *engine.Requester // nil on unauthenticated routes
	written bool              // the handler wrote the response itself
}

func (c *call) ctx() context.Context { return c.r.Context() }

// deviceKey names the requester's device for transaction IDs.
func (c *call) deviceKey() string { return c.who.UserID + "|" + c.who.DeviceID }

// object reads the body as a JSON object; an empty body is {} when
// allowEmpty, else an error as in Synapse.
func (c *call) object(allowEmpty bool) (map[string]any, error) {
	b, err := io.ReadAll(io.LimitReader(c.r.Body, maxJSONBody+1))
	if err != nil {
		return nil, &engine.SynapseError{Code: 400, Errcode: "M_UNKNOWN", Msg: "Could not read the request body"}
	}
	if len(b) > maxJSONBody {
		return nil, &engine.SynapseError{Code: 413, Errcode: "M_TOO_LARGE", Msg: "Request body too large"}
	}
	if len(bytes.TrimSpace(b)) == 0 && allowEmpty {
		return map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, &engine.SynapseError{Code: 400, Errcode: "M_NOT_JSON", Msg: "Content not JSON."}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &engine.SynapseError{Code: 400, Errcode: "M_BAD_JSON", Msg: "Content must be a JSON object."}
	}
	return m, nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if body == nil {
		body = map[string]any{}
	}
	// Like Synapse, no HTML escaping: "<" stays "<".
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	b := []byte(`{"errcode":"M_UNKNOWN","error":"Internal server error"}`)
	if err := enc.Encode(body); err != nil {
		status = http.StatusInternalServerError
	} else {
		b = bytes.TrimRight(buf.Bytes(), "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeErr answers with err: a SynapseError (a refusal, or one a module
// raised) as it is, a memhost rule error with its status, anything else
// as a 500 that is logged but not shown.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var se *engine.SynapseError
	var le *limitError
	var re *memhost.RuleError
	switch {
	case errors.As(err, &le):
		w.Header().Set("Retry-After", fmt.Sprint((le.retryAfterMS+999)/1000))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": le.retryAfterMS})
	case errors.As(err, &se):
		se.Write(w)
	case errors.As(err, &re):
		ruleError(re).Write(w)
	case errors.Is(err, engine.ErrNotFound):
		(&engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: notFoundMsg(err)}).Write(w)
	case errors.Is(err, context.Canceled):
		// the client went away; nobody reads the answer
		w.WriteHeader(499)
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		var script *engine.ScriptError
		if errors.As(err, &script) && script.Traceback != "" {
			s.log.Error("module traceback", "module", script.Module, "traceback", script.Traceback)
		}
		(&engine.SynapseError{Code: 500, Errcode: "M_UNKNOWN", Msg: "Internal server error"}).Write(w)
	}
}

func notFoundMsg(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": not found"); i > 0 {
		msg = msg[:i]
		if j := strings.LastIndex(msg, ": "); j >= 0 {
			msg = msg[j+2:]
		}
		return "Unknown " + msg
	}
	return "Not found"
}

// ruleError turns memhost's refusal into Matrix's error.
func ruleError(re *memhost.RuleError) *engine.SynapseError {
	switch {
	case errors.Is(re, memhost.ErrForbidden):
		return forbidden(re.Msg)
	case errors.Is(re, memhost.ErrUserInUse):
		return &engine.SynapseError{Code: 400, Errcode: "M_USER_IN_USE", Msg: "User ID already taken."}
	case errors.Is(re, memhost.ErrAliasInUse):
		return &engine.SynapseError{Code: 400, Errcode: "M_ROOM_IN_USE", Msg: "Room alias already taken"}
	default:
		return &engine.SynapseError{Code: 400, Errcode: "M_INVALID_PARAM", Msg: re.Msg}
	}
}

func forbidden(msg string) *engine.SynapseError {
	return &engine.SynapseError{Code: 403, Errcode: "M_FORBIDDEN", Msg: msg}
}

func badRequest(errcode, msg string) *engine.SynapseError {
	return &engine.SynapseError{Code: 400, Errcode: errcode, Msg: msg}
}

func errUnrecognized() *engine.SynapseError {
	return &engine.SynapseError{Code: 404, Errcode: "M_UNRECOGNIZED", Msg: "Unrecognized request"}
}

// refusal is a spam checker's refusal with the message Synapse gives at
// that point (the module's own message, for the legacy string form).
func refusal(d engine.SpamDecision, msg string) *engine.SynapseError {
	if d.Msg != "" {
		msg = d.Msg
	}
	return &engine.SynapseError{Code: 403, Errcode: d.Errcode, Msg: msg, Extra: d.Extra}
}

// authenticate finds the requester from the access token, refusing
// accounts a module says have expired (unless allowExpired, as for
// /logout).
func (s *Server) authenticate(r *http.Request, allowExpired bool) (*engine.Requester, error) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(rest)
		}
	}
	if token == "" {
		token = r.URL.Query().Get("access_token")
	}
	if token == "" {
		return nil, &engine.SynapseError{Code: 401, Errcode: "M_MISSING_TOKEN", Msg: "Missing access token"}
	}
	who, err := s.host.UserByAccessToken(r.Context(), token)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 401, Errcode: "M_UNKNOWN_TOKEN", Msg: "Unrecognised access token",
			Extra: map[string]any{"soft_logout": false}}
	}
	if err != nil {
		return nil, err
	}
	if !allowExpired && s.eng.Has(engine.CallbackIsUserExpired) {
		expired, decided, err := s.eng.IsUserExpired(r.Context(), who.UserID)
		if err != nil {
			return nil, err
		}
		if decided && expired {
			// Synapse's errcode for account validity; see docs/dev-homeserver.md.
			return nil, &engine.SynapseError{Code: 403, Errcode: "ORG_MATRIX_EXPIRED_ACCOUNT", Msg: "User account has expired"}
		}
	}
	return who, nil
}

func (s *Server) isAdmin(ctx context.Context, userID string) bool {
	info, err := s.host.UserInfo(ctx, userID)
	return err == nil && info.IsAdmin
}

// newID returns a fresh opaque ID (filters, sessions).
func (s *Server) newID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return fmt.Sprint(s.nextID)
}

// ---- routing ----

type authMode int

const (
	noAuth authMode = iota
	authRequired
	authAllowExpired
)

type route struct {
	method  string
	pattern []string // segments; "{name}" matches one segment
	auth    authMode
	admin   bool
	h       func(*call) (any, error)
}

// client registers a Client-Server API path under v3 and its r0 alias.
func (s *Server) client(method, path string, auth authMode, h func(*call) (any, error)) {
	for _, v := range []string{"v3", "r0"} {
		s.handle(method, "/_matrix/client/"+v+path, auth, h)
	}
}

func (s *Server) handle(method, path string, auth authMode, h func(*call) (any, error)) {
	s.routes = append(s.routes, route{method: method, pattern: strings.Split(path, "/"), auth: auth, h: h})
}

func (s *Server) admin(method, path string, h func(*call) (any, error)) {
	s.routes = append(s.routes, route{method: method, pattern: strings.Split(path, "/"), auth: authRequired, admin: true, h: h})
}

// match finds the route for a request and its path variables; methodOK
// is false when the path is known but not for this method (405).
func (s *Server) match(r *http.Request) (rt *route, vars map[string]string, methodOK bool) {
	raw := strings.Split(r.URL.EscapedPath(), "/")
	segs := make([]string, len(raw))
	for i, p := range raw {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, nil, true
		}
		segs[i] = u
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	pathKnown := false
	for i := range s.routes {
		cand := &s.routes[i]
		v, ok := matchSegments(cand.pattern, segs)
		if !ok {
			continue
		}
		pathKnown = true
		if cand.method == method {
			return cand, v, true
		}
	}
	return nil, nil, !pathKnown
}

func matchSegments(pattern, segs []string) (map[string]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	var vars map[string]string
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if vars == nil {
				vars = map[string]string{}
			}
			vars[p[1:len(p)-1]] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return vars, true
}

// moduleErr passes a module's failure on: the invokers return a
// SynapseError a script raised as the error's cause, which writeErr
// shows; anything else is a 500.
func moduleErr(what string, err error) error {
	return fmt.Errorf("%s: %w", what, err)
}
