package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// Host functions are Synapse's ModuleApi calls. Each is a
// sandbox.HostFunction: its prepare step runs on the module's owner
// goroutine, reads and checks the arguments (raising argument errors at
// once, at the script's line) and copies them into Go values; its run
// step calls the Host on another goroutine while the script's coroutine
// is parked, so the module serves other calls meanwhile. Look-ups that
// find nothing (ErrNotFound) return nil, as in Synapse.

// runFunc is the off-loop half of a host call.
type runFunc = func(ctx context.Context) (sandbox.Result, error)

// hostFunc describes one script-visible host function.
type hostFunc struct {
	name      string // key in its table
	supported bool   // the host has the capability
	prepare   func(a *hostArgs) runFunc
}

// capability is the Host's implementation of one interface, if it has it.
func capability[T any](h Host) (T, bool) {
	c, ok := h.(T)
	return c, ok
}

// installHostFunctions adds the host-backed functions (Synapse's
// ModuleApi calls) to a module's api table. It runs before the module's
// runtime starts, so it may touch L directly.
func (e *Engine) installHostFunctions(L *lua.LState, api *luaapi.ModuleAPI, mc ModuleConfig) {
	host := e.host
	server := host.ServerName()
	checker, hasChecker := capability[UserChecker](host)
	infos, hasInfos := capability[UserInfoGetter](host)
	profiles, hasProfiles := capability[ProfileGetter](host)
	names, hasNames := capability[DisplayNameSetter](host)
	users, hasUsers := capability[UserRegisterer](host)
	devices, hasDevices := capability[DeviceRegisterer](host)
	states, hasStates := capability[RoomStateGetter](host)
	sender, hasSender := capability[EventSender](host)
	members, hasMembers := capability[MembershipUpdater](host)
	creator, hasCreator := capability[RoomCreator](host)
	aliases, hasAliases := capability[AliasResolver](host)
	accountData, hasAccountData := capability[AccountDataStore](host)
	presence, hasPresence := capability[PresenceSetter](host)
	presenceTo, hasPresenceTo := capability[PresenceSender](host)

	t := api.Table
	e.installStore(L, api, mc)
	e.installGetUserByReq(L, api, mc.Name)
	e.installModAPI(L, api)
	e.install(L, t, mc.Name, "", []hostFunc{
		{"check_user_exists", hasChecker, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			return func(ctx context.Context) (sandbox.Result, error) {
				id, err := checker.CheckUserExists(ctx, userID)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
				if id == "" {
					return values(nil), nil
				}
				return values(id), nil
			}
		}},
		{"get_userinfo_by_id", hasInfos, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			return func(ctx context.Context) (sandbox.Result, error) {
				info, err := infos.UserInfo(ctx, userID)
				if info == nil || errors.Is(err, ErrNotFound) {
					return values(nil), nilIfNotFound(err)
				}
				if err != nil {
					return nil, err
				}
				return values(info), nil
			}
		}},
		{"is_user_admin", hasInfos, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			return func(ctx context.Context) (sandbox.Result, error) {
				info, err := infos.UserInfo(ctx, userID)
				if info == nil || errors.Is(err, ErrNotFound) {
					return values(false), nilIfNotFound(err)
				}
				if err != nil {
					return nil, err
				}
				return values(info.IsAdmin), nil
			}
		}},
		{"get_profile_for_user", hasProfiles, func(a *hostArgs) runFunc {
			userID := a.str(1, "localpart_or_user_id")
			if !strings.HasPrefix(userID, "@") {
				userID = "@" + userID + ":" + server
			}
			return func(ctx context.Context) (sandbox.Result, error) {
				p, err := profiles.Profile(ctx, userID)
				if p == nil || errors.Is(err, ErrNotFound) {
					return values(nil), nilIfNotFound(err)
				}
				if err != nil {
					return nil, err
				}
				return values(p), nil
			}
		}},
		{"set_displayname", hasNames, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			name := a.str(2, "new_displayname")
			return func(ctx context.Context) (sandbox.Result, error) {
				return nil, names.SetDisplayName(ctx, userID, name)
			}
		}},
		{"register_user", hasUsers, func(a *hostArgs) runFunc {
			nu := NewUser{
				Localpart:   a.str(1, "localpart"),
				DisplayName: a.optStr(2, "displayname"),
				Emails:      a.optStrings(3, "emails"),
				Admin:       a.optBool(4, "admin"),
			}
			return func(ctx context.Context) (sandbox.Result, error) {
				id, err := users.RegisterUser(ctx, nu)
				if err != nil {
					return nil, err
				}
				return values(id), nil
			}
		}},
		{"register_device", hasDevices, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			deviceID := a.optStr(2, "device_id")
			display := a.optStr(3, "initial_display_name")
			return func(ctx context.Context) (sandbox.Result, error) {
				d, err := devices.RegisterDevice(ctx, userID, deviceID, display)
				if err != nil {
					return nil, err
				}
				return values(d.DeviceID, d.AccessToken), nil
			}
		}},

		{"get_room_state", hasStates, func(a *hostArgs) runFunc {
			roomID := a.str(1, "room_id")
			filter := a.stateFilter(2)
			return func(ctx context.Context) (sandbox.Result, error) {
				st, err := states.RoomState(ctx, roomID, filter)
				if st == nil || errors.Is(err, ErrNotFound) {
					return values(nil), nilIfNotFound(err)
				}
				if err != nil {
					return nil, err
				}
				return values(filterState(st, filter)), nil
			}
		}},
		{"create_and_send_event_into_room", hasSender, func(a *hostArgs) runFunc {
			ev := a.event(1)
			return func(ctx context.Context) (sandbox.Result, error) {
				stored, err := sender.SendEvent(ctx, ev)
				if err != nil {
					return nil, err
				}
				return values(stored), nil
			}
		}},
		{"update_room_membership", hasMembers, func(a *hostArgs) runFunc {
			from := a.str(1, "sender")
			target := a.str(2, "target")
			roomID := a.str(3, "room_id")
			membership := a.str(4, "new_membership")
			content := a.optObject(5, "content")
			return func(ctx context.Context) (sandbox.Result, error) {
				ev, err := members.UpdateMembership(ctx, from, target, roomID, membership, content)
				if err != nil {
					return nil, err
				}
				return values(ev), nil
			}
		}},
		{"create_room", hasCreator, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			config := a.optObject(2, "config")
			if config == nil {
				config = map[string]any{}
			}
			a.optBool(3, "ratelimit") // accepted as in Synapse; the host rate-limits as it sees fit
			return func(ctx context.Context) (sandbox.Result, error) {
				roomID, alias, err := creator.CreateRoom(ctx, userID, config)
				if err != nil {
					return nil, err
				}
				if alias == "" {
					return values(roomID, nil), nil
				}
				return values(roomID, alias), nil
			}
		}},
		{"lookup_room_alias", hasAliases, func(a *hostArgs) runFunc {
			alias := a.str(1, "room_alias")
			return func(ctx context.Context) (sandbox.Result, error) {
				ra, err := aliases.LookupRoomAlias(ctx, alias)
				if ra == nil || errors.Is(err, ErrNotFound) {
					return values(nil), nilIfNotFound(err)
				}
				if err != nil {
					return nil, err
				}
				servers := ra.Servers
				if servers == nil {
					servers = []string{}
				}
				return values(ra.RoomID, servers), nil
			}
		}},

		{"set_presence_for_users", hasPresence, func(a *hostArgs) runFunc {
			states := a.presenceStates(1)
			return func(ctx context.Context) (sandbox.Result, error) {
				return nil, presence.SetPresence(ctx, states)
			}
		}},
		{"send_local_online_presence_to", hasPresenceTo, func(a *hostArgs) runFunc {
			ids := a.optStrings(1, "users")
			if ids == nil {
				a.fail("bad argument #1 (users): array of user IDs expected, got nil")
			}
			return func(ctx context.Context) (sandbox.Result, error) {
				return nil, presenceTo.SendLocalOnlinePresenceTo(ctx, ids)
			}
		}},
	})

	adm := L.CreateTable(0, 4)
	t.RawSetString("account_data_manager", adm)
	luaapi.GuardLazy(L, adm, "api.account_data_manager", "function", func(L *lua.LState, adm *lua.LTable) {
		e.install(L, adm, mc.Name, "account_data_manager.", []hostFunc{
			{"get_global", hasAccountData, func(a *hostArgs) runFunc {
				userID := a.str(1, "user_id")
				typ := a.str(2, "data_type")
				return func(ctx context.Context) (sandbox.Result, error) {
					content, err := accountData.GlobalAccountData(ctx, userID, typ)
					if content == nil || errors.Is(err, ErrNotFound) {
						return values(nil), nilIfNotFound(err)
					}
					if err != nil {
						return nil, err
					}
					return values(content), nil
				}
			}},
			{"put_global", hasAccountData, func(a *hostArgs) runFunc {
				userID := a.str(1, "user_id")
				typ := a.str(2, "data_type")
				content := a.optObject(3, "new_data")
				if content == nil {
					a.fail("bad argument #3 (new_data): table expected, got nil")
				}
				return func(ctx context.Context) (sandbox.Result, error) {
					return nil, accountData.PutGlobalAccountData(ctx, userID, typ, content)
				}
			}},
		})
	})

	e.installHTTPClient(L, t, mc.Name)
}

// nilIfNotFound turns a not-found error into success (the script sees nil).
func nilIfNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// install sets each function on t. prefix qualifies names in errors
// ("account_data_manager.get_global") and for the observer. Both t.f(x)
// and t:f(x) work.
func (e *Engine) install(L *lua.LState, t *lua.LTable, module, prefix string, fns []hostFunc) {
	e.installAs(L, t, module, prefix, fns, false)
}

// installOwn installs host functions the engine itself implements (the
// store, the HTTP client): they honour their context, so they run on the
// calling goroutine whatever the Host does.
func (e *Engine) installOwn(L *lua.LState, t *lua.LTable, module, prefix string, fns []hostFunc) {
	e.installAs(L, t, module, prefix, fns, true)
}

func (e *Engine) installAs(L *lua.LState, t *lua.LTable, module, prefix string, fns []hostFunc, inline bool) {
	obs := e.obs
	// One hostArgs serves every call: prepare runs with the state's baton
	// in hand and keeps nothing of it.
	a := &hostArgs{}
	for _, f := range fns {
		name := prefix + f.name
		t.RawSetString(f.name, sandbox.HostFunction(L, name, func(L *lua.LState) *sandbox.HostCall {
			if L.GetTop() > 0 && L.Get(1) == t {
				L.Remove(1)
			}
			*a = hostArgs{L: L, name: name}
			if !f.supported {
				a.fail("%s", ErrNotSupported)
			}
			run := f.prepare(a)
			if obs != nil {
				run = e.observeHostCall(module, name, run)
			}
			return &sandbox.HostCall{Run: run, MapErr: notSupported, Inline: inline}
		}))
	}
}

// notSupported makes a host's ErrNotSupported read the same whatever the
// host wrapped around it: "<name>: not supported by this homeserver".
func notSupported(err error) error {
	if errors.Is(err, ErrNotSupported) {
		return ErrNotSupported
	}
	return err
}

// observeHostCall wraps a host call's Go side in HostCallStart and
// HostCallEnd.
func (e *Engine) observeHostCall(module, name string, run runFunc) runFunc {
	return func(ctx context.Context) (sandbox.Result, error) {
		ev := HostCallEvent{Module: module, Function: name}
		octx := e.obs.HostCallStart(ctx, ev)
		start := time.Now()
		res, err := run(octx)
		ev.Duration = time.Since(start)
		ev.Err = e.redactErr(err)
		e.obs.HostCallEnd(octx, ev)
		return res, err
	}
}

// hostArgs reads a host function's arguments on the owner goroutine and
// raises argument errors at the script's line (gopher-lua's own checks
// would point into the host-call wrapper).
type hostArgs struct {
	L    *lua.LState
	name string
}

// where is the calling script position ("spam.lua:12:"), as HostFunction
// records it: level 1 is the host-call wrapper, level 2 its caller.
func (a *hostArgs) where() string { return sandbox.ScriptWhere(a.L) }

// fail raises "<file>:<line>: <name>: <msg>" in the script.
func (a *hostArgs) fail(format string, args ...any) {
	msg := a.name + ": " + fmt.Sprintf(format, args...)
	if w := a.where(); w != "" {
		msg = w + " " + msg
	}
	a.L.Error(lua.LString(msg), 0)
}

func (a *hostArgs) badArg(i int, what, want string, got lua.LValue) {
	a.fail("bad argument #%d (%s): %s expected, got %s", i, what, want, got.Type().String())
}

func (a *hostArgs) str(i int, what string) string {
	v := a.L.Get(i)
	s, ok := v.(lua.LString)
	if !ok {
		a.badArg(i, what, "string", v)
	}
	return string(s)
}

func (a *hostArgs) optStr(i int, what string) string {
	if a.L.Get(i) == lua.LNil {
		return ""
	}
	return a.str(i, what)
}

func (a *hostArgs) optBool(i int, what string) bool {
	switch v := a.L.Get(i).(type) {
	case *lua.LNilType:
		return false
	case lua.LBool:
		return bool(v)
	default:
		a.badArg(i, what, "boolean", v)
		return false
	}
}

// optStrings reads an array of strings; nil when the argument is nil.
func (a *hostArgs) optStrings(i int, what string) []string {
	v := a.L.Get(i)
	if v == lua.LNil {
		return nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		a.badArg(i, what, "array of strings", v)
	}
	out := make([]string, 0, t.Len())
	for j := 1; j <= t.Len(); j++ {
		s, ok := t.RawGetInt(j).(lua.LString)
		if !ok {
			a.fail("bad argument #%d (%s): element %d must be a string, got %s", i, what, j, t.RawGetInt(j).Type().String())
		}
		out = append(out, string(s))
	}
	return out
}

// optObject reads a table as a JSON object; nil when the argument is nil.
func (a *hostArgs) optObject(i int, what string) map[string]any {
	v := a.L.Get(i)
	if v == lua.LNil {
		return nil
	}
	if _, ok := v.(*lua.LTable); !ok {
		a.badArg(i, what, "table", v)
	}
	m, err := luaObject(a.L, v)
	if err != nil {
		a.fail("bad argument #%d (%s): %v", i, what, err)
	}
	return m
}

// luaObject converts a Lua table to a JSON object.
func luaObject(L *lua.LState, v lua.LValue) (map[string]any, error) {
	x, err := stdlib.FromLua(L, v)
	if err != nil {
		return nil, err
	}
	switch m := x.(type) {
	case map[string]any:
		return m, nil
	case []any:
		if len(m) == 0 {
			return map[string]any{}, nil
		}
		return nil, errors.New("expected a table of named fields, got an array")
	}
	return nil, fmt.Errorf("expected a table, got %T", x)
}

// stateFilter reads get_room_state's types: an array of
// {event_type, state_key} pairs, state_key nil meaning every key.
func (a *hostArgs) stateFilter(i int) []StateFilter {
	v := a.L.Get(i)
	if v == lua.LNil {
		return nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		a.badArg(i, "types", "array of {event_type, state_key} pairs", v)
	}
	var out []StateFilter
	for j := 1; j <= t.Len(); j++ {
		pair, ok := t.RawGetInt(j).(*lua.LTable)
		if !ok {
			a.fail("bad argument #%d (types): element %d must be an {event_type, state_key} pair, got %s", i, j, t.RawGetInt(j).Type().String())
		}
		typ, ok := pair.RawGetInt(1).(lua.LString)
		if !ok {
			a.fail("bad argument #%d (types): element %d: event_type must be a string, got %s", i, j, pair.RawGetInt(1).Type().String())
		}
		f := StateFilter{Type: string(typ)}
		switch k := pair.RawGetInt(2).(type) {
		case *lua.LNilType:
			f.AnyKey = true
		case lua.LString:
			f.StateKey = string(k)
		default:
			a.fail("bad argument #%d (types): element %d: state_key must be a string or nil, got %s", i, j, k.Type().String())
		}
		out = append(out, f)
	}
	return out
}

// event reads create_and_send_event_into_room's event_dict.
func (a *hostArgs) event(i int) *Event {
	v := a.L.Get(i)
	if _, isEvent := eventOf(v); !isEvent {
		if _, ok := v.(*lua.LTable); !ok {
			a.badArg(i, "event_dict", "table", v)
		}
	}
	ev, err := eventFromLua(a.L, v)
	if err != nil {
		a.fail("bad argument #%d (event_dict): %v", i, err)
	}
	for _, f := range []struct{ name, val string }{{"type", ev.Type}, {"room_id", ev.RoomID}, {"sender", ev.Sender}} {
		if f.val == "" {
			a.fail("bad argument #%d (event_dict): %s is required", i, f.name)
		}
	}
	if ev.Content == nil {
		ev.Content = ev.ContentMap()
		if ev.Content == nil {
			ev.Content = map[string]any{}
		}
	}
	return ev
}

// presenceStates reads set_presence_for_users' argument:
// { [user_id] = {state=, status_msg=} }; Synapse's tuple form
// { [user_id] = {"online", "msg"} } and a bare state string also work.
func (a *hostArgs) presenceStates(i int) []PresenceState {
	v := a.L.Get(i)
	t, ok := v.(*lua.LTable)
	if !ok {
		a.badArg(i, "users", "table of user_id = {state=, status_msg=}", v)
	}
	var out []PresenceState
	var bad string
	t.ForEach(func(k, v lua.LValue) {
		if bad != "" {
			return
		}
		id, ok := k.(lua.LString)
		if !ok {
			bad = fmt.Sprintf("keys must be user IDs, got %s", k.Type().String())
			return
		}
		ps := PresenceState{UserID: string(id)}
		switch v := v.(type) {
		case lua.LString:
			ps.State = string(v)
		case *lua.LTable:
			st := v.RawGetString("state")
			if st == lua.LNil {
				st = v.RawGetInt(1)
			}
			msg := v.RawGetString("status_msg")
			if msg == lua.LNil {
				msg = v.RawGetInt(2)
			}
			s, ok := st.(lua.LString)
			if !ok {
				bad = fmt.Sprintf("%s: state must be a string, got %s", id, st.Type().String())
				return
			}
			ps.State = string(s)
			switch m := msg.(type) {
			case *lua.LNilType:
			case lua.LString:
				ps.StatusMsg = string(m)
			default:
				bad = fmt.Sprintf("%s: status_msg must be a string or nil, got %s", id, msg.Type().String())
				return
			}
		default:
			bad = fmt.Sprintf("%s: expected {state=, status_msg=}, got %s", id, v.Type().String())
			return
		}
		out = append(out, ps)
	})
	if bad != "" {
		a.fail("bad argument #%d (users): %s", i, bad)
	}
	sort.Slice(out, func(x, y int) bool { return out[x].UserID < out[y].UserID })
	return out
}

// filterState keeps what a get_room_state filter asked for (a host may
// have returned the whole state).
func filterState(st StateMap, filter []StateFilter) StateMap {
	if len(filter) == 0 {
		return st
	}
	out := StateMap{}
	for _, f := range filter {
		for key, ev := range st[f.Type] {
			if f.AnyKey || key == f.StateKey {
				out.Put(ev)
			}
		}
	}
	return out
}
