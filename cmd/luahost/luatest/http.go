package luatest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// httpStubs answers a test's api.http_client requests from t.http.stub
// declarations and records every request; nothing reaches the network. A
// request no stub matches fails in the module with a message listing the
// stubs.
type httpStubs struct {
	mu       sync.Mutex
	stubs    []*httpStub
	requests []recordedRequest
}

type httpStub struct {
	method  string // "" matches any
	url     string // with a query: the whole URL must match; without: the URL without its query
	status  int
	header  http.Header
	body    []byte
	err     string // fail the request with this error instead
	matched int
}

type recordedRequest struct {
	Method  string
	URL     string
	Path    string
	Query   map[string]string
	Headers map[string]string
	Body    []byte
}

func (s *httpStub) String() string {
	m := s.method
	if m == "" {
		m = "any method"
	}
	return m + " " + s.url
}

func (s *httpStub) matches(req *http.Request) bool {
	if s.method != "" && !strings.EqualFold(s.method, req.Method) {
		return false
	}
	u := *req.URL
	if !strings.Contains(s.url, "?") {
		u.RawQuery = ""
	}
	u.Fragment = ""
	return u.String() == s.url
}

// add declares a stub; later stubs win over earlier ones.
func (h *httpStubs) add(s *httpStub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stubs = append(h.stubs, s)
}

// RoundTrip implements http.RoundTripper.
func (h *httpStubs) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	rec := recordedRequest{Method: req.Method, URL: req.URL.String(), Path: req.URL.Path,
		Query: map[string]string{}, Headers: map[string]string{}, Body: body}
	for k, vs := range req.URL.Query() {
		rec.Query[k] = vs[0]
	}
	for k, vs := range req.Header {
		rec.Headers[strings.ToLower(k)] = vs[0]
	}
	h.mu.Lock()
	h.requests = append(h.requests, rec)
	var found *httpStub
	for i := len(h.stubs) - 1; i >= 0; i-- {
		if h.stubs[i].matches(req) {
			found = h.stubs[i]
			found.matched++
			break
		}
	}
	var known []string
	for _, s := range h.stubs {
		known = append(known, s.String())
	}
	h.mu.Unlock()
	if found == nil {
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, "; ")
		}
		return nil, fmt.Errorf("no t.http.stub matches %s %s (stubs: %s)", req.Method, req.URL, list)
	}
	if found.err != "" {
		return nil, fmt.Errorf("%s", found.err)
	}
	header := found.header.Clone()
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{
		StatusCode:    found.status,
		Status:        fmt.Sprintf("%d %s", found.status, http.StatusText(found.status)),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(found.body)),
		ContentLength: int64(len(found.body)),
		Request:       req,
	}, nil
}

func (h *httpStubs) recorded() []recordedRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recordedRequest(nil), h.requests...)
}
