package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/internal/ssrf"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// api.http_client: an outbound HTTP client for modules (Synapse's
// SimpleHttpClient). Like Synapse's ip_range_blocklist it refuses to
// connect to loopback, private and other non-public addresses unless the
// config's http_client.ip_range_allowlist allows them. The check runs in
// the dialer after DNS resolution, on the address actually dialled, so a
// name that resolves to a public address for a pre-check and to a private
// one for the connection (DNS rebinding) cannot get through, and every
// redirect hop is checked again.

const (
	// maxHTTPBody caps a response body a module may read.
	maxHTTPBody = 10 << 20
	// maxHTTPRedirects caps redirects followed per request.
	maxHTTPRedirects = 5
	httpUserAgent    = "luahost"
)

// httpPolicy is the address policy of api.http_client: every
// special-purpose block of IANA's registries (and IPv4 addresses carried
// inside IPv6: mapped, NAT64, 6to4, ...) is refused unless allowlisted. A
// bad allowlist entry is logged and ignored (config checking reports it).
func httpPolicy(entries []string, log *slog.Logger) *ssrf.Policy {
	allow, errs := ssrf.ParseAllowlist(entries)
	for _, err := range errs {
		log.Warn("http_client.ip_range_allowlist: ignoring an entry", "err", err)
	}
	return ssrf.New(allow)
}

// dialControl is the dialer's Control hook: it sees the resolved address
// just before connect.
func dialControl(p *ssrf.Policy) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		err := p.Control(network, address, c)
		if errors.Is(err, ssrf.ErrRefused) {
			return fmt.Errorf("connection refused: %w (allow it with http_client.ip_range_allowlist)", err)
		}
		return err
	}
}

// newHTTPClient builds the client for one allowlist. Keep-alives are off:
// idle connections would keep goroutines running past Engine.Close.
func newHTTPClient(p *ssrf.Policy) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, Control: dialControl(p)}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would be the address checked, not the target
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		DisableKeepAlives:      true,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxHTTPRedirects {
				return fmt.Errorf("stopped after %d redirects", maxHTTPRedirects)
			}
			return checkScheme(req.URL)
		},
	}
}

func checkScheme(u *url.URL) error {
	switch u.Scheme {
	case "http", "https":
		return nil
	}
	return fmt.Errorf("refusing %q: only http and https URLs are allowed", sandbox.Clip(u.Redacted()))
}

// httpRequest is an outbound request, built on the owner goroutine.
type httpRequest struct {
	method string
	url    *url.URL
	header http.Header
	body   []byte
}

type httpResponse struct {
	code   int
	reason string
	header http.Header
	body   []byte
}

var errBodyTooLarge = fmt.Errorf("response body is larger than %d MiB", maxHTTPBody>>20)

// do sends r, bounded by ctx, and reads at most maxHTTPBody bytes.
func doHTTP(ctx context.Context, c *http.Client, r *httpRequest) (*httpResponse, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url.String(), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", httpUserAgent)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxHTTPBody {
		return nil, errBodyTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if len(data) > maxHTTPBody {
		return nil, errBodyTooLarge
	}
	return &httpResponse{
		code:   resp.StatusCode,
		reason: strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode))),
		header: resp.Header,
		body:   data,
	}, nil
}

// installHTTPClient adds api.http_client.
func (e *Engine) installHTTPClient(L *lua.LState, api *lua.LTable, module string) {
	client := e.httpClient
	hc := L.CreateTable(0, 8)
	api.RawSetString("http_client", hc)
	luaapi.GuardLazy(L, hc, "api.http_client", "function", func(L *lua.LState, hc *lua.LTable) {
		do := func(ctx context.Context, r *httpRequest) (*httpResponse, error) {
			if e.obs == nil {
				return doHTTP(ctx, client, r)
			}
			start := time.Now()
			resp, err := doHTTP(ctx, client, r)
			ev := HTTPClientEvent{Module: module, Method: methodLabel(r.method), Outcome: httpOutcome(ctx, err),
				Duration: time.Since(start), Err: e.redactErr(err)}
			if resp != nil {
				ev.Status = resp.code
			}
			e.obs.HTTPClientRequest(ev)
			return resp, err
		}

		// jsonCall sends a JSON request and returns the decoded JSON answer,
		// raising an HttpResponseException-like table on a non-2xx status.
		jsonCall := func(a *hostArgs, r *httpRequest) runFunc {
			where := a.where()
			name := a.name
			r.header.Set("Accept", "application/json")
			return func(ctx context.Context) (sandbox.Result, error) {
				resp, err := do(ctx, r)
				if err != nil {
					return nil, err
				}
				if resp.code < 200 || resp.code > 299 {
					return nil, httpResponseError(where, name, resp)
				}
				if !json.Valid(resp.body) {
					return nil, fmt.Errorf("the response from %s is not JSON (status %d, %d bytes)", r.url.Redacted(), resp.code, len(resp.body))
				}
				body := resp.body
				return func(L *lua.LState) []lua.LValue {
					v, err := stdlib.DecodeJSON(L, body)
					if err != nil {
						L.RaiseError("%s: decoding the response: %v", name, err)
					}
					return []lua.LValue{v}
				}, nil
			}
		}

		e.installOwn(L, hc, module, "http_client.", []hostFunc{
			{"get_json", true, func(a *hostArgs) runFunc {
				r := &httpRequest{method: http.MethodGet, url: a.url(1), header: a.headers(3)}
				a.query(r.url, 2)
				return jsonCall(a, r)
			}},
			{"post_json_get_json", true, func(a *hostArgs) runFunc {
				r := &httpRequest{method: http.MethodPost, url: a.url(1), body: a.jsonBody(2), header: a.headers(3)}
				r.header.Set("Content-Type", "application/json")
				return jsonCall(a, r)
			}},
			{"put_json", true, func(a *hostArgs) runFunc {
				r := &httpRequest{method: http.MethodPut, url: a.url(1), body: a.jsonBody(2), header: a.headers(4)}
				a.query(r.url, 3)
				r.header.Set("Content-Type", "application/json")
				return jsonCall(a, r)
			}},
			{"request", true, func(a *hostArgs) runFunc {
				method := strings.ToUpper(a.str(1, "method"))
				if method == "" || strings.ContainsAny(method, " \t\r\n") {
					a.fail("bad argument #1 (method): %q is not an HTTP method", sandbox.Clip(method))
				}
				r := &httpRequest{method: method, url: a.url(2), header: http.Header{}}
				switch opts := a.L.Get(3).(type) {
				case *lua.LNilType:
				case *lua.LTable:
					r.header = a.headerTable(opts.RawGetString("headers"), "options.headers")
					switch b := opts.RawGetString("body").(type) {
					case *lua.LNilType:
					case lua.LString:
						r.body = []byte(b)
					default:
						a.fail("bad argument #3 (options.body): string expected, got %s (use json.encode for JSON)", b.Type().String())
					}
				default:
					a.badArg(3, "options", "table {headers=, body=}", opts)
				}
				return func(ctx context.Context) (sandbox.Result, error) {
					resp, err := do(ctx, r)
					if err != nil {
						return nil, err
					}
					return func(L *lua.LState) []lua.LValue {
						t := L.CreateTable(0, 3)
						t.RawSetString("code", lua.LNumber(resp.code))
						t.RawSetString("headers", headersToLua(L, resp.header))
						t.RawSetString("body", lua.LString(resp.body))
						return []lua.LValue{t}
					}, nil
				}
			}},
		})
	})
}

// httpOutcome classifies an api.http_client request's end.
func httpOutcome(ctx context.Context, err error) HTTPOutcome {
	switch {
	case err == nil:
		return HTTPOK
	case errors.Is(err, ssrf.ErrRefused):
		return HTTPRefused
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return HTTPTimeout
	}
	return HTTPError
}

// headersToLua maps lower-case header names to their first value.
func headersToLua(L *lua.LState, h http.Header) *lua.LTable {
	t := L.CreateTable(0, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			t.RawSetString(strings.ToLower(k), lua.LString(vs[0]))
		}
	}
	return t
}

const regHTTPErrMeta = "luahost.httperrmeta"

// httpResponseError is Synapse's HttpResponseException as a Lua error
// table: {code=, msg=, body=, message=}; tostring(err) is the message.
func httpResponseError(where, name string, resp *httpResponse) error {
	msg := fmt.Sprintf("%s: %d %s", name, resp.code, resp.reason)
	if where != "" {
		msg = where + " " + msg
	}
	body := resp.body
	return &sandbox.LuaError{Msg: msg, Value: func(L *lua.LState) lua.LValue {
		t := L.CreateTable(0, 5)
		t.RawSetString("kind", lua.LString("HttpResponseException"))
		t.RawSetString("code", lua.LNumber(resp.code))
		t.RawSetString("msg", lua.LString(resp.reason))
		t.RawSetString("body", lua.LString(body))
		t.RawSetString("message", lua.LString(msg))
		t.Metatable = httpErrMeta(L)
		return t
	}}
}

func httpErrMeta(L *lua.LState) *lua.LTable {
	if mt, ok := L.G.Registry.RawGetString(regHTTPErrMeta).(*lua.LTable); ok {
		return mt
	}
	mt := L.CreateTable(0, 1)
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		L.Push(L.CheckTable(1).RawGetString("message"))
		return 1
	}))
	L.G.Registry.RawSetString(regHTTPErrMeta, mt)
	return mt
}

// url reads and checks a URL argument (absolute, http or https).
func (a *hostArgs) url(i int) *url.URL {
	s := a.str(i, "uri")
	u, err := url.Parse(s)
	if err != nil {
		a.fail("bad argument #%d (uri): %v", i, err)
	}
	if err := checkScheme(u); err != nil {
		a.fail("%v", err)
	}
	if u.Host == "" {
		a.fail("bad argument #%d (uri): %q has no host", i, sandbox.Clip(s))
	}
	return u
}

// query adds args (name = string | number | boolean | array of those) to
// u's query string.
func (a *hostArgs) query(u *url.URL, i int) {
	v := a.L.Get(i)
	if v == lua.LNil {
		return
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		a.badArg(i, "args", "table of query parameters", v)
	}
	q := u.Query()
	var names []string
	vals := map[string][]string{}
	var bad string
	t.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if !ok {
			bad = "parameter names must be strings"
			return
		}
		switch v := v.(type) {
		case lua.LString, lua.LNumber, lua.LBool:
			vals[string(name)] = []string{v.String()}
		case *lua.LTable:
			for j := 1; j <= v.Len(); j++ {
				vals[string(name)] = append(vals[string(name)], v.RawGetInt(j).String())
			}
		default:
			bad = fmt.Sprintf("parameter %s: string, number or array expected, got %s", name, v.Type().String())
			return
		}
		names = append(names, string(name))
	})
	if bad != "" {
		a.fail("bad argument #%d (args): %s", i, bad)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, s := range vals[n] {
			q.Add(n, s)
		}
	}
	u.RawQuery = q.Encode()
}

// headers reads an optional header table argument.
func (a *hostArgs) headers(i int) http.Header {
	return a.headerTable(a.L.Get(i), fmt.Sprintf("#%d (headers)", i))
}

// headerTable reads {Name = "value" | {"v1", "v2"}}.
func (a *hostArgs) headerTable(v lua.LValue, what string) http.Header {
	h := http.Header{}
	if v == lua.LNil {
		return h
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		a.fail("bad argument %s: table expected, got %s", what, v.Type().String())
	}
	var bad string
	t.ForEach(func(k, v lua.LValue) {
		name, ok := k.(lua.LString)
		if !ok {
			bad = "header names must be strings"
			return
		}
		switch v := v.(type) {
		case lua.LString, lua.LNumber:
			h.Add(string(name), v.String())
		case *lua.LTable:
			for j := 1; j <= v.Len(); j++ {
				h.Add(string(name), v.RawGetInt(j).String())
			}
		default:
			bad = fmt.Sprintf("header %s: string or array expected, got %s", name, v.Type().String())
		}
	})
	if bad != "" {
		a.fail("bad argument %s: %s", what, bad)
	}
	return h
}

// jsonBody encodes a Lua value as the JSON request body.
func (a *hostArgs) jsonBody(i int) []byte {
	b, err := stdlib.EncodeJSON(a.L, a.L.Get(i), false)
	if err != nil {
		a.fail("bad argument #%d (body): cannot encode as JSON: %v", i, err)
	}
	return b
}
