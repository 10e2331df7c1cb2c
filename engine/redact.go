package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Secret values (config values read from the environment or a file, see
// secrets.go) never reach the log, Status or an observer: the engine's
// logger and the errors it keeps pass through a redactor that replaces
// every occurrence of one with "[redacted]". The set only grows: a value
// a reload dropped may still sit in an old generation's error.

// redacted replaces a secret value.
const redacted = "[redacted]"

// minSecretLen: shorter values are not redacted. They are no secrets
// (a port, a flag), and hiding every "on" or "1" would garble the log.
const minSecretLen = 4

// secretSet is an immutable set of values to hide, longest first, so a
// secret containing another is hidden whole.
type secretSet struct{ vals []string }

func (s *secretSet) redact(str string) string {
	for _, v := range s.vals {
		if strings.Contains(str, v) {
			str = strings.ReplaceAll(str, v, redacted)
		}
	}
	return str
}

// redactor holds the current secret set. Safe from any goroutine.
type redactor struct {
	mu  sync.Mutex // serialises add
	cur atomic.Pointer[secretSet]
}

// add adds values to the set.
func (r *redactor) add(vals []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var all []string
	if s := r.cur.Load(); s != nil {
		for _, v := range s.vals {
			seen[v] = true
			all = append(all, v)
		}
	}
	grew := false
	for _, v := range vals {
		if len(v) >= minSecretLen && !seen[v] {
			seen[v] = true
			all = append(all, v)
			grew = true
		}
	}
	if !grew {
		return
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	r.cur.Store(&secretSet{vals: all})
}

// redact hides the secrets in s.
func (r *redactor) redact(s string) string {
	if set := r.cur.Load(); set != nil {
		return set.redact(s)
	}
	return s
}

// redactedError is an error whose message had secrets in it. Unwrap
// keeps errors.As and errors.Is working on the original.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactErr returns err, or a copy with its secrets hidden.
func (r *redactor) redactErr(err error) error {
	set := r.cur.Load()
	if err == nil || set == nil {
		return err
	}
	if _, done := err.(*redactedError); done {
		return err
	}
	msg := err.Error()
	if safe := set.redact(msg); safe != msg {
		return &redactedError{err: err, msg: safe}
	}
	return err
}

func (e *Engine) redactErr(err error) error { return e.redact.redactErr(err) }

// redactErrs hides the secrets in each error of a list.
func (e *Engine) redactErrs(errs LoadErrors) LoadErrors {
	for i, err := range errs {
		errs[i] = e.redactErr(err)
	}
	return errs
}

// redactHandler is the engine's log handler: every record's message and
// attributes pass through the redactor.
type redactHandler struct {
	inner slog.Handler
	r     *redactor
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	set := h.r.cur.Load()
	if set == nil {
		return h.inner.Handle(ctx, rec)
	}
	out := slog.NewRecord(rec.Time, rec.Level, set.redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(set.attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if set := h.r.cur.Load(); set != nil {
		safe := make([]slog.Attr, len(as))
		for i, a := range as {
			safe[i] = set.attr(a)
		}
		as = safe
	}
	return &redactHandler{inner: h.inner.WithAttrs(as), r: h.r}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{inner: h.inner.WithGroup(name), r: h.r}
}

// attr hides the secrets in an attribute's value: strings, groups, and
// anything else (an error, a struct) as it would print.
func (s *secretSet) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if safe := s.redact(v.String()); safe != v.String() {
			a.Value = slog.StringValue(safe)
		}
	case slog.KindGroup:
		g := v.Group()
		safe := make([]slog.Attr, len(g))
		for i, ga := range g {
			safe[i] = s.attr(ga)
		}
		a.Value = slog.GroupValue(safe...)
	case slog.KindAny:
		str := fmt.Sprint(v.Any())
		if safe := s.redact(str); safe != str {
			a.Value = slog.StringValue(safe)
		}
	}
	return a
}
