// Package memhost is an in-memory Matrix homeserver implementing
// engine.Host and every optional capability interface. It backs
// `luahost serve` and `luahost call` in development, the engine's tests,
// and serves as the worked example of implementing engine.Host.
//
// It follows Synapse's behaviour where a module would notice (user ID
// grammar, createRoom presets and event order, membership transitions,
// power levels for sending state, inviting, kicking and banning) and
// leaves out what a single in-memory server has no use for: federation,
// signatures, event graphs, redaction and the finer authorization rules
// (for example who may change power levels to what).
//
// Nothing is persisted. Everything the Host returns is a copy, so callers
// may keep or mutate results while other goroutines write.
package memhost

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/luahost/luahost/engine"
)

// Errors the Host wraps, for callers that need to tell failures apart
// with errors.Is. Look-ups of unknown things return (or wrap)
// engine.ErrNotFound.
var (
	// ErrInvalid is wrapped when an argument is malformed: a bad user ID,
	// localpart, alias, membership or createRoom field.
	ErrInvalid = errors.New("invalid argument")
	// ErrUserInUse is wrapped when registering a localpart that is taken.
	ErrUserInUse = errors.New("user ID already taken")
	// ErrAliasInUse is wrapped when creating a room with a taken alias.
	ErrAliasInUse = errors.New("room alias already taken")
	// ErrForbidden is wrapped when the room's rules refuse an action: the
	// sender is not joined, lacks power, is banned, the room is invite-only.
	ErrForbidden = errors.New("forbidden")
)

// RuleError is a refusal or a malformed argument, with a message fit for
// a client. errors.Is matches its Kind (ErrForbidden, ErrInvalid, ...), so
// a homeserver picks the status from the kind and shows Msg as it is.
type RuleError struct {
	Kind error
	Msg  string
}

func (e *RuleError) Error() string { return e.Kind.Error() + ": " + e.Msg }

// Unwrap gives the kind.
func (e *RuleError) Unwrap() error { return e.Kind }

func refuse(kind error, format string, args ...any) error {
	return &RuleError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Host is an in-memory Matrix homeserver for development, tests and
// `luahost serve`/`call`. It is also the worked example of implementing
// engine.Host. Safe for concurrent use.
type Host struct {
	serverName string

	mu           sync.RWMutex
	users        map[string]*user   // canonical user ID → user
	usersFolded  map[string]string  // lower-cased user ID → canonical ID
	tokens       map[string]session // access token → session
	rooms        map[string]*room
	aliases      map[string]string                              // #alias:server → room ID
	accountData  map[accountDataKey]map[string]accountDataEntry // whose → type → content
	presence     map[string]presenceEntry
	presenceSent [][]string
	media        map[string]*Media
	// Every change a client's /sync may report (room events, presence,
	// account data) takes the next stream position; wake is closed and
	// replaced at each, so long-polls wait on it.
	pos  int64
	wake chan struct{}
}

var (
	_ engine.Host               = (*Host)(nil)
	_ engine.UserChecker        = (*Host)(nil)
	_ engine.UserInfoGetter     = (*Host)(nil)
	_ engine.ProfileGetter      = (*Host)(nil)
	_ engine.DisplayNameSetter  = (*Host)(nil)
	_ engine.UserRegisterer     = (*Host)(nil)
	_ engine.DeviceRegisterer   = (*Host)(nil)
	_ engine.TokenAuthenticator = (*Host)(nil)
	_ engine.RoomStateGetter    = (*Host)(nil)
	_ engine.EventSender        = (*Host)(nil)
	_ engine.MembershipUpdater  = (*Host)(nil)
	_ engine.RoomCreator        = (*Host)(nil)
	_ engine.AliasResolver      = (*Host)(nil)
	_ engine.AccountDataStore   = (*Host)(nil)
	_ engine.PresenceSetter     = (*Host)(nil)
	_ engine.PresenceSender     = (*Host)(nil)
)

// New returns an empty homeserver whose users and rooms live on
// serverName (for example "example.org").
func New(serverName string) *Host {
	return &Host{
		serverName:  serverName,
		users:       map[string]*user{},
		usersFolded: map[string]string{},
		tokens:      map[string]session{},
		rooms:       map[string]*room{},
		aliases:     map[string]string{},
		accountData: map[accountDataKey]map[string]accountDataEntry{},
		presence:    map[string]presenceEntry{},
		media:       map[string]*Media{},
		wake:        make(chan struct{}),
	}
}

// advance takes the next stream position and wakes the long-polls.
// The caller holds h.mu for writing, so a woken reader sees the change.
func (h *Host) advance() int64 {
	h.pos++
	close(h.wake)
	h.wake = make(chan struct{})
	return h.pos
}

// ServerName implements engine.Host.
func (h *Host) ServerName() string { return h.serverName }

// isLocal reports whether a Matrix ID (@user:server, #alias:server, …)
// lives on this server.
func (h *Host) isLocal(id string) bool {
	_, server, ok := splitID(id)
	return ok && server == h.serverName
}

// splitID splits "<sigil>localpart:server" into its localpart and server.
func splitID(id string) (localpart, server string, ok bool) {
	if len(id) < 2 {
		return "", "", false
	}
	localpart, server, ok = strings.Cut(id[1:], ":")
	if !ok || localpart == "" || server == "" {
		return "", "", false
	}
	return localpart, server, true
}

// validUserID checks the shape of a user ID without judging the
// localpart's characters: remote and historical IDs may use more than
// the grammar for new registrations allows.
func validUserID(id string) error {
	if !strings.HasPrefix(id, "@") {
		return refuse(ErrInvalid, "user ID %q must start with @", id)
	}
	if _, _, ok := splitID(id); !ok {
		return refuse(ErrInvalid, "user ID %q must look like @localpart:server", id)
	}
	if len(id) > 255 {
		return refuse(ErrInvalid, "user ID %q is longer than 255 bytes", id)
	}
	return nil
}

func nowMS() int64 { return time.Now().UnixMilli() }

// randomToken returns n random bytes as unpadded base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomUpper returns n random characters from A-Z and 2-7.
func randomUpper(n int) string {
	s := rand.Text() // 26 characters
	for len(s) < n {
		s += rand.Text()
	}
	return s[:n]
}

// cloneEvent deep-copies an event so the store and its callers never
// share mutable state.
func cloneEvent(e *engine.Event) *engine.Event {
	if e == nil {
		return nil
	}
	c := *e
	if e.StateKey != nil {
		k := *e.StateKey
		c.StateKey = &k
	}
	c.Content = cloneMap(e.Content)
	c.Unsigned = cloneMap(e.Unsigned)
	return &c
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

// cloneValue deep-copies maps and slices of any type (JSON-shaped values
// usually, but also map[string]string or []string from Go callers).
// Other values, pointers included, are returned as they are.
func cloneValue(v any) any {
	switch t := v.(type) {
	case nil, string, bool, float64, int, int64:
		return v
	case map[string]any:
		return cloneMap(t)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = cloneValue(t[i])
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(rv.Type(), rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), cloneReflect(it.Value()))
		}
		return out.Interface()
	case reflect.Slice:
		if rv.IsNil() {
			return v
		}
		out := reflect.MakeSlice(rv.Type(), rv.Len(), rv.Len())
		for i := 0; i < rv.Len(); i++ {
			out.Index(i).Set(cloneReflect(rv.Index(i)))
		}
		return out.Interface()
	}
	return v
}

func cloneReflect(v reflect.Value) reflect.Value {
	if v.Kind() == reflect.Interface && v.IsNil() {
		return v
	}
	return reflect.ValueOf(cloneValue(v.Interface()))
}
