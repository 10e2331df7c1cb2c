package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/internal/webpath"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// Web resources: modules register Lua handlers for paths; the engine's
// http.Handler routes a request to the longest registered prefix and runs
// the handler on the module's loop like any callback. The request reaches
// the script as a lazy read-only object (a full table costs ~5 µs); the
// response is copied out on the loop before anything touches the network.

// MaxRequestBody caps the body a handler can receive.
const MaxRequestBody = 10 << 20

// route is one registered path.
type route struct {
	path     string
	gen      *generation
	handlers []lua.LValue // per instance: function or method table (its baton holder only)
	methods  []string     // sorted methods of a method table; nil for a function
}

// buildRoutes makes the route table for a snapshot: the first module in
// config order wins a duplicate path; later ones are logged and ignored.
func (e *Engine) buildRoutes(gens []*generation) map[string]*route {
	routes := map[string]*route{}
	for _, g := range gens {
		for _, w := range g.web {
			if prev, dup := routes[w.path]; dup {
				if prev.gen.cfg.Name != g.cfg.Name {
					e.log.Warn("web resource path already registered by an earlier module; ignoring",
						"path", w.path, "module", g.cfg.Name, "owner", prev.gen.cfg.Name)
				}
				continue
			}
			routes[w.path] = &route{path: w.path, gen: g, handlers: w.handlers, methods: w.methods}
		}
	}
	return routes
}

// webResource is the read-only copy of a registration kept on a generation.
type webResource struct {
	path     string
	handlers []lua.LValue // per instance
	methods  []string
}

func (s *snapshot) match(path string) (*route, string) {
	p := path
	for {
		if r, ok := s.routes[p]; ok {
			sub := strings.TrimPrefix(path, p)
			if p == "/" {
				sub = path
			}
			return r, sub
		}
		if p == "/" || p == "" {
			return nil, ""
		}
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			p = "/"
		} else {
			p = p[:i]
		}
	}
}

// Handler serves every module's web resources. Mount it on your mux at
// each of Paths() (or at /_synapse/client/ and other prefixes you use).
func (e *Engine) Handler() http.Handler {
	if e == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeMatrixError(w, http.StatusNotFound, "M_UNRECOGNIZED", "Unrecognized request", nil)
		})
	}
	return http.HandlerFunc(e.serveHTTP)
}

// response is a handler's answer, copied out of Lua.
type response struct {
	status      int
	contentType string
	header      http.Header // only when the script set headers
	body        []byte
}

func writeMatrixError(w http.ResponseWriter, status int, errcode, msg string, extra map[string]any) {
	body := map[string]any{}
	for k, v := range extra {
		body[k] = v
	}
	body["errcode"] = errcode
	body["error"] = msg
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// route finds the route for a request path: escaped as the client sent
// it, path decoded. A path that is not canonical is refused (400) before
// any routing, so reserved prefixes are judged on the path a module
// would see, and a module never sees "..". Safe from any goroutine.
func (s *snapshot) route(escaped, path string) (rt *route, sub string, status int, msg string) {
	if err := webpath.Request(escaped, path); err != nil {
		return nil, "", http.StatusBadRequest, "Path is not canonical: " + err.Error()
	}
	if reserved(path) {
		// /_matrix/ and /_synapse/admin/ are never a module's, even under "/".
		return nil, "", http.StatusNotFound, "Unrecognized request"
	}
	rt, sub = s.match(path)
	if rt == nil {
		return nil, "", http.StatusNotFound, "Unrecognized request"
	}
	return rt, sub, http.StatusOK, ""
}

func (e *Engine) serveHTTP(w http.ResponseWriter, req *http.Request) {
	s := e.acquire()
	defer s.release()
	rt, sub, status, msg := s.route(req.URL.EscapedPath(), req.URL.Path)
	if rt == nil {
		writeMatrixError(w, status, "M_UNRECOGNIZED", msg, nil)
		return
	}
	if e.obs == nil {
		e.serveRoute(req.Context(), w, req, rt, sub)
		return
	}
	ev := RequestEvent{Module: rt.gen.cfg.Name, Path: rt.path, Method: methodLabel(req.Method)}
	ctx := e.obs.RequestStart(req.Context(), ev)
	start := time.Now()
	ev.Status, ev.Err = e.serveRoute(ctx, w, req, rt, sub)
	ev.Duration = time.Since(start)
	ev.Err = e.redactErr(ev.Err)
	e.obs.RequestEnd(ctx, ev)
}

// serveRoute answers a request for a registered path and returns the
// status it answered with (499: the client went away) and the handler's
// error, if it failed.
func (e *Engine) serveRoute(ctx context.Context, w http.ResponseWriter, req *http.Request, rt *route, sub string) (int, error) {
	method := req.Method
	if rt.methods != nil {
		if !contains(rt.methods, method) {
			switch {
			case method == http.MethodHead && contains(rt.methods, http.MethodGet):
				method = http.MethodGet
			case method == http.MethodOptions:
				w.Header().Set("Allow", allow(rt.methods))
				w.WriteHeader(http.StatusNoContent)
				return http.StatusNoContent, nil
			default:
				w.Header().Set("Allow", allow(rt.methods))
				writeMatrixError(w, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "Method not allowed", nil)
				return http.StatusMethodNotAllowed, nil
			}
		}
	}
	var body []byte
	if req.Body != nil && req.Method != http.MethodGet && req.Method != http.MethodHead {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, MaxRequestBody+1))
		if err != nil {
			writeMatrixError(w, http.StatusBadRequest, "M_UNKNOWN", "Could not read the request body", nil)
			return http.StatusBadRequest, nil
		}
		if len(body) > MaxRequestBody {
			writeMatrixError(w, http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "Request body too large", nil)
			return http.StatusRequestEntityTooLarge, nil
		}
	}
	rq := &requestProxy{req: req, method: method, subpath: sub, body: body}
	var resp response
	g := rt.gen
	err := g.invoke(ctx, runtime.Call{
		What:    rt.path,
		Timeout: g.cfg.Timeout,
		Resolve: func(L *lua.LState, inst int) *lua.LFunction {
			h := rt.handlers[inst-1]
			if fn, ok := h.(*lua.LFunction); ok {
				return fn
			}
			fn, _ := h.(*lua.LTable).RawGetString(method).(*lua.LFunction)
			return fn
		},
		Args: func(L *lua.LState) []lua.LValue { return []lua.LValue{pushRequest(L, rq)} },
		Ret: func(L *lua.LState, rets []lua.LValue) error {
			var err error
			resp, err = readResponse(L, first(rets))
			if limit := e.responseCap(); err == nil && len(resp.body) > limit {
				err = fmt.Errorf("the response body of %d bytes is over the %d-byte limit (http_server.max_response_body)",
					len(resp.body), limit)
				resp = response{}
			}
			return err
		},
	})
	if err != nil {
		return e.writeHandlerError(w, req, g.cfg.Name, err), err
	}
	h := w.Header()
	for k, vs := range resp.header {
		if hopByHop[http.CanonicalHeaderKey(k)] {
			continue // framing is the server's: a wrong length truncates or hangs the reply
		}
		h[k] = vs
	}
	if resp.contentType != "" && resp.header.Get("Content-Type") == "" {
		h["Content-Type"] = []string{resp.contentType}
	}
	if bodyAllowed(resp.status) {
		h["Content-Length"] = []string{strconv.Itoa(len(resp.body))}
	}
	w.WriteHeader(resp.status)
	if req.Method != http.MethodHead && bodyAllowed(resp.status) {
		w.Write(resp.body)
	}
	return resp.status, nil
}

// hopByHop are the headers that frame the response or the connection; a
// script's values for them are dropped (Content-Length is set from the
// real body).
var hopByHop = map[string]bool{
	"Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// bodyAllowed reports whether a response with this status may carry a
// body (RFC 9110: not 1xx, 204 or 304).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// responseCap is the largest response body a handler may return. Safe
// from any goroutine.
func (e *Engine) responseCap() int {
	if n := e.maxResponse.Load(); n > 0 {
		return int(n)
	}
	return DefaultMaxResponseBody
}

func reserved(path string) bool {
	for _, r := range luaapi.ReservedPrefixes {
		if strings.HasPrefix(path+"/", r) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func allow(methods []string) string {
	set := append([]string(nil), methods...)
	if contains(set, http.MethodGet) && !contains(set, http.MethodHead) {
		set = append(set, http.MethodHead)
	}
	if !contains(set, http.MethodOptions) {
		set = append(set, http.MethodOptions)
	}
	sort.Strings(set)
	return strings.Join(set, ", ")
}

// writeHandlerError maps a handler error to Matrix's error format: a
// SynapseError as raised, a deadline as 504, anything else as 500 with
// the traceback in the log only, with the module's name. It returns the
// status written (499 when the client went away and nothing was).
func (e *Engine) writeHandlerError(w http.ResponseWriter, req *http.Request, module string, err error) int {
	var syn *SynapseError
	if errors.As(err, &syn) {
		syn.Write(w)
		return syn.Code
	}
	var se *ScriptError
	if errors.As(err, &se) && se.Timeout {
		e.log.Error("web handler timed out", "module", module, "method", req.Method, "path", req.URL.Path, "err", err)
		writeMatrixError(w, http.StatusGatewayTimeout, "M_UNKNOWN", "Timed out", nil)
		return http.StatusGatewayTimeout
	}
	if errors.Is(err, context.Canceled) {
		return statusClientGone
	}
	e.logScriptError(fmt.Sprintf("web handler failed: %s %s", req.Method, req.URL.Path), err, "module", module)
	writeMatrixError(w, http.StatusInternalServerError, "M_UNKNOWN", "Internal server error", nil)
	return http.StatusInternalServerError
}

// statusClientGone is the status reported for a request whose client went
// away before the answer (nginx's convention).
const statusClientGone = 499

// readResponse copies a handler's return value out of Lua.
func readResponse(L *lua.LState, v lua.LValue) (response, error) {
	r := response{status: http.StatusOK}
	switch v := v.(type) {
	case *lua.LNilType:
		return r, nil
	case lua.LString:
		r.contentType = "text/plain; charset=utf-8"
		r.body = []byte(v)
		return r, nil
	case *lua.LTable:
		if st := v.RawGetString("status"); st != lua.LNil {
			n, ok := st.(lua.LNumber)
			if !ok || n < 100 || n > 599 || float64(n) != float64(int(n)) {
				return r, fmt.Errorf("response status must be an HTTP status code, got %s", runtime.ToString(L, st))
			}
			r.status = int(n)
		}
		if h, ok := v.RawGetString("headers").(*lua.LTable); ok {
			r.header = http.Header{}
			h.ForEach(func(k, val lua.LValue) {
				if t, ok := val.(*lua.LTable); ok {
					t.ForEach(func(_, item lua.LValue) { r.header.Add(lua.LVAsString(k), lua.LVAsString(item)) })
					return
				}
				r.header.Set(lua.LVAsString(k), lua.LVAsString(val))
			})
		}
		if j := v.RawGetString("json"); j != lua.LNil {
			b, err := stdlib.EncodeJSON(L, j, false)
			if err != nil {
				return r, fmt.Errorf("response json: %w", err)
			}
			r.body, r.contentType = b, "application/json"
			return r, nil
		}
		if h, ok := v.RawGetString("html").(lua.LString); ok {
			r.body, r.contentType = []byte(h), "text/html; charset=utf-8"
			return r, nil
		}
		if b := v.RawGetString("body"); b != lua.LNil {
			s, ok := b.(lua.LString)
			if !ok {
				if n, isNum := b.(lua.LNumber); isNum {
					s = lua.LString(n.String())
				} else {
					return r, fmt.Errorf("response body must be a string (use json = ... for tables), got %s", b.Type())
				}
			}
			r.body, r.contentType = []byte(s), "text/plain; charset=utf-8"
		}
		return r, nil
	default:
		return r, fmt.Errorf("a web handler must return a response table {status=, json=|html=|body=, headers=}, got %s", v.Type())
	}
}

// requestProxy is the request a handler sees; fields are built on first
// access and cached.
type requestProxy struct {
	req     *http.Request
	method  string
	subpath string
	body    []byte

	query, queryAll, headers lua.LValue
	decoded                  lua.LValue
}

// MarshalJSON lets json.encode(request) show the request's surface.
func (p *requestProxy) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"method": p.method, "path": p.req.URL.Path, "subpath": p.subpath,
		"query": p.req.URL.Query(), "remote_addr": p.req.RemoteAddr,
	})
}

// luaRequest is a request the host hands a callback (on_legacy_admin_request)
// as the script sees it: the body is read here, off the module's state,
// up to MaxRequestBody, and put back, so the host can still read it (when
// no module answered, say). A body that cannot be read reaches the script
// empty, and the failure is logged.
func (e *Engine) luaRequest(req *http.Request) *requestProxy {
	if req == nil {
		return nil
	}
	p := &requestProxy{req: req, method: req.Method}
	if req.Body != nil && req.Method != http.MethodGet && req.Method != http.MethodHead {
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxRequestBody+1))
		req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), req.Body))
		switch {
		case err != nil:
			e.log.Warn("could not read a request body for a callback", "path", req.URL.Path, "err", err)
		case len(body) > MaxRequestBody:
			e.log.Warn("request body too large for a callback; it reaches the script empty", "path", req.URL.Path)
		default:
			p.body = body
		}
	}
	return p
}

func pushRequest(L *lua.LState, p *requestProxy) lua.LValue {
	ud := L.NewUserData()
	ud.Value = p
	ud.Metatable = requestMeta(L)
	return ud
}

func requestOf(v lua.LValue) (*requestProxy, bool) {
	ud, ok := v.(*lua.LUserData)
	if !ok {
		return nil, false
	}
	p, ok := ud.Value.(*requestProxy)
	return p, ok
}

func requestMeta(L *lua.LState) *lua.LTable {
	mt, built := proxyMeta(L, "request", "the request is read-only")
	if built {
		return mt
	}
	check := func(L *lua.LState) *requestProxy {
		p, ok := requestOf(L.Get(1))
		if !ok {
			L.ArgError(1, "request expected (use request:json(), not request.json())")
		}
		return p
	}
	jsonFn := L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		if p.decoded == nil {
			v, err := stdlib.DecodeJSON(L, p.body)
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				L.RaiseError("request:json: %s", err.Error()) // the call's deadline, not the client's fault
			}
			if err != nil {
				L.Error(luaapi.NewSynapseErrorValue(L, http.StatusBadRequest, "Content not JSON: "+err.Error(), "M_NOT_JSON"), 1)
			}
			p.decoded = v
		}
		L.Push(p.decoded)
		return 1
	})
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		switch L.CheckString(2) {
		case "method":
			L.Push(lua.LString(p.method))
		case "path":
			L.Push(lua.LString(p.req.URL.Path))
		case "subpath":
			L.Push(lua.LString(p.subpath))
		case "body":
			L.Push(lua.LString(p.body))
		case "remote_addr":
			L.Push(lua.LString(p.req.RemoteAddr))
		case "json":
			L.Push(jsonFn)
		case "query":
			if p.query == nil {
				t := L.CreateTable(0, 4)
				for k, vs := range p.req.URL.Query() {
					if len(vs) > 0 {
						t.RawSetString(k, lua.LString(vs[0]))
					}
				}
				p.query = t
			}
			L.Push(p.query)
		case "query_all":
			if p.queryAll == nil {
				t := L.CreateTable(0, 4)
				for k, vs := range p.req.URL.Query() {
					arr := stdlib.NewArray(L, len(vs))
					for i, v := range vs {
						arr.RawSetInt(i+1, lua.LString(v))
					}
					t.RawSetString(k, arr)
				}
				p.queryAll = t
			}
			L.Push(p.queryAll)
		case "headers":
			if p.headers == nil {
				t := L.CreateTable(0, 8)
				for k, vs := range p.req.Header {
					if len(vs) > 0 {
						t.RawSetString(strings.ToLower(k), lua.LString(vs[0]))
					}
				}
				if p.req.Host != "" {
					t.RawSetString("host", lua.LString(p.req.Host))
				}
				p.headers = t
			}
			L.Push(p.headers)
		default:
			L.Push(lua.LNil)
		}
		return 1
	}))
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		p := check(L)
		L.Push(lua.LString("request " + p.method + " " + p.req.URL.Path))
		return 1
	}))
	return mt
}

// accessToken finds a request's access token as Synapse does: the
// Authorization: Bearer header, else the access_token query parameter.
func (p *requestProxy) accessToken() string {
	if h := p.req.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(tok)
		}
	}
	return p.req.URL.Query().Get("access_token")
}

// installGetUserByReq adds api.get_user_by_req(request [, options]):
// options is {allow_guest=, allow_expired=} or, as in Synapse, the two
// booleans allow_guest, allow_expired. As Synapse does, a guest is refused
// (403 M_GUEST_ACCESS_FORBIDDEN) unless allow_guest, and an expired
// account (a module's is_user_expired, else the host's own rule) is
// refused (403 ORG_MATRIX_EXPIRED_ACCOUNT) unless allow_expired.
func (e *Engine) installGetUserByReq(L *lua.LState, api *luaapi.ModuleAPI, module string) {
	auth, hasAuth := capability[TokenAuthenticator](e.host)
	expiry, hasExpiry := capability[AccountExpiryChecker](e.host)
	api.Table.RawSetString("get_user_by_req", sandbox.HostFunction(L, "get_user_by_req", func(L *lua.LState) *sandbox.HostCall {
		if L.Get(1) == api.Table { // api:get_user_by_req(request)
			L.Remove(1)
		}
		p, ok := requestOf(L.Get(1))
		if !ok {
			L.ArgError(1, "the request a web handler received expected")
		}
		allowGuest, allowExpired := getUserByReqOptions(L)
		if !hasAuth {
			L.RaiseError("get_user_by_req: not supported by this homeserver")
		}
		token := p.accessToken()
		run := runFunc(func(ctx context.Context) (sandbox.Result, error) {
			if token == "" {
				return nil, synapseLuaError(http.StatusUnauthorized, "Missing access token", "M_MISSING_TOKEN")
			}
			r, err := auth.UserByAccessToken(ctx, token)
			if errors.Is(err, ErrNotFound) {
				return nil, synapseLuaError(http.StatusUnauthorized, "Unrecognised access token", "M_UNKNOWN_TOKEN")
			}
			if err != nil {
				return nil, err
			}
			if !allowExpired && r.AppServiceID == "" {
				// Synapse checks regular users only, not appservices.
				expired, decided, err := e.IsUserExpired(ctx, r.UserID)
				if err != nil {
					return nil, err
				}
				if !decided && hasExpiry {
					if expired, err = expiry.IsAccountExpired(ctx, r.UserID); err != nil {
						return nil, err
					}
				}
				if expired {
					return nil, synapseLuaError(http.StatusForbidden, "User account has expired", luaapi.CodeExpiredAccount)
				}
			}
			if r.IsGuest && !allowGuest {
				return nil, synapseLuaError(http.StatusForbidden, "Guest access not allowed", "M_GUEST_ACCESS_FORBIDDEN")
			}
			return values(map[string]any{
				"user_id": r.UserID, "device_id": opt(r.DeviceID), "is_guest": r.IsGuest,
				"shadow_banned": r.ShadowBanned, "app_service_id": opt(r.AppServiceID),
			}), nil
		})
		if e.obs != nil {
			run = e.observeHostCall(module, "get_user_by_req", run)
		}
		return &sandbox.HostCall{Run: run}
	}))
}

// getUserByReqOptions reads get_user_by_req's arguments after the
// request: {allow_guest=, allow_expired=}, or Synapse's positional
// allow_guest, allow_expired booleans.
func getUserByReqOptions(L *lua.LState) (allowGuest, allowExpired bool) {
	flag := func(v lua.LValue, what string, n int) bool {
		switch v := v.(type) {
		case *lua.LNilType:
			return false
		case lua.LBool:
			return bool(v)
		}
		L.ArgError(n, what+" must be a boolean, got "+v.Type().String())
		return false
	}
	if opts, ok := L.Get(2).(*lua.LTable); ok {
		var bad string
		opts.ForEach(func(k, _ lua.LValue) {
			if s, _ := k.(lua.LString); s != "allow_guest" && s != "allow_expired" && bad == "" {
				bad = lua.LVAsString(k)
			}
		})
		if bad != "" {
			L.ArgError(2, fmt.Sprintf("unknown option %q (valid: allow_guest, allow_expired)", bad))
		}
		return flag(opts.RawGetString("allow_guest"), "allow_guest", 2), flag(opts.RawGetString("allow_expired"), "allow_expired", 2)
	}
	return flag(L.Get(2), "allow_guest", 2), flag(L.Get(3), "allow_expired", 3)
}

func synapseLuaError(code int, msg, errcode string) error {
	return &sandbox.LuaError{Msg: errcode + ": " + msg, Value: func(L *lua.LState) lua.LValue {
		return luaapi.NewSynapseErrorValue(L, code, msg, errcode)
	}}
}
