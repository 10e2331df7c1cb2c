// Package testhooks is how `luahost test` reaches into an engine it
// starts, without anything in engine's exported API: the hooks travel in
// the context given to engine.New, which reads them once. Embedders
// cannot import this package, so the controls exist for test files only.
package testhooks

import (
	"context"
	"net/http"

	"github.com/luahost/luahost/internal/clock"
)

// Hooks replace parts of an engine's world for a test.
type Hooks struct {
	// Clock, when set, is the time modules see (see package clock and
	// engine/clock.go).
	Clock *clock.Fake
	// Transport, when set, answers api.http_client's requests instead of
	// the network.
	Transport http.RoundTripper
}

type ctxKey struct{}

// With returns ctx carrying h.
func With(ctx context.Context, h *Hooks) context.Context {
	return context.WithValue(ctx, ctxKey{}, h)
}

// From returns the hooks ctx carries, or nil.
func From(ctx context.Context) *Hooks {
	h, _ := ctx.Value(ctxKey{}).(*Hooks)
	return h
}
