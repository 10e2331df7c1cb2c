// Package bench holds the native Go twins of bench/bench.lua's web
// handlers, served by bench/native for bench/http.sh and driven directly
// by the Go benchmarks in this folder. See docs/benchmarks.md.
package bench

import (
	"encoding/json"
	"io"
	"net/http"
)

// Paths of the two endpoints, the same for the Lua and the Go side.
const (
	HelloPath = "/_synapse/client/bench/hello"
	EchoPath  = "/_synapse/client/bench/echo"
)

// Native serves both endpoints with plain net/http and encoding/json,
// doing the work the Lua handlers do: encode a reply per request, and for
// echo decode the body into a map before encoding it back.
func Native() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HelloPath, func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]any{"message": "Hello, world!"})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	mux.HandleFunc("POST "+EchoPath, func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"errcode":"M_NOT_JSON","error":"Content not JSON"}`))
			return
		}
		b, _ := json.Marshal(map[string]any{"echo": body, "length": len(raw)})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	return mux
}
