package luaapi

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/internal/webpath"
	"github.com/luahost/luahost/stdlib"
)

// Registration is one callback a module registered.
type Registration struct {
	Callback *Callback
	Fn       *lua.LFunction
	// LoginType and Fields are set for password auth checkers.
	LoginType string
	Fields    []string
}

// WebResource is one path a module registered with register_web_resource.
type WebResource struct {
	Path    string
	Handler lua.LValue // a function, or a table of method -> function
	Where   string     // script position of the registration
}

// ModuleAPI is the Go side of one module generation's `module_api` table.
// It belongs to the goroutine holding the state's baton.
type ModuleAPI struct {
	Module     string // the module's name
	ServerName string
	Log        *slog.Logger

	Table         *lua.LTable
	Registrations []Registration
	WebResources  []WebResource
	OnClose       []*lua.LFunction

	registering bool
}

// NewModuleAPI builds the module_api table for L: constants, error
// constructors, the register_* functions, on_close and the host
// functions that need no homeserver. The engine adds the rest.
func NewModuleAPI(L *lua.LState, module, serverName string, log *slog.Logger) *ModuleAPI {
	if log == nil {
		log = slog.Default()
	}
	m := &ModuleAPI{Module: module, ServerName: serverName, Log: log}
	t := L.CreateTable(0, 96)
	m.Table = t
	sandbox.NameLibrary(L, "api", t) // errors name api.* functions

	t.RawSetString("NOT_SPAM", lua.LString("NOT_SPAM"))
	t.RawSetString("PRESENCE_ALL_USERS", lua.LString("ALL"))
	codes := L.CreateTable(0, len(errCodes)+len(otherCodes))
	for _, c := range errCodes {
		codes.RawSetString(c, lua.LString("M_"+c))
	}
	for name, c := range otherCodes {
		codes.RawSetString(name, lua.LString(c))
	}
	t.RawSetString("Codes", codes)
	GuardMembers(L, codes, "api.Codes", "errcode")
	rb := L.CreateTable(0, 3)
	rb.RawSetString("ALLOW", lua.LString("allow"))
	rb.RawSetString("SHADOW_BAN", lua.LString("shadow_ban"))
	rb.RawSetString("DENY", lua.LString("deny"))
	t.RawSetString("RegistrationBehaviour", rb)
	GuardMembers(L, rb, "api.RegistrationBehaviour", "constant")
	t.RawSetString("null", stdlib.Null(L))
	t.RawSetString("server_name", lua.LString(serverName))

	fns := map[string]lua.LGFunction{
		"array": func(L *lua.LState) int {
			tb, ok := L.Get(1).(*lua.LTable)
			if !ok {
				tb = L.NewTable()
			}
			stdlib.MarkArray(L, tb)
			L.Push(tb)
			return 1
		},
		"ConfigError":           newConfigError,
		"SynapseError":          newSynapseError,
		"register_web_resource": m.registerWebResource,
		"on_close":              m.onClose,
		"get_qualified_user_id": m.qualify,
		"is_mine":               m.isMine,
		"get_current_time_msec": func(L *lua.LState) int {
			L.Push(lua.LNumber(time.Now().UnixMilli()))
			return 1
		},
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(sandbox.MethodTolerant(t, fn)))
	}
	installIDs(L, t)
	for _, cat := range Catalogue {
		t.RawSetString(cat.RegisterFunc(), L.NewFunction(sandbox.MethodTolerant(t, m.registerCategory(cat))))
	}
	t.RawSetString("sleep", sandbox.HostFunction(L, "sleep", func(L *lua.LState) *sandbox.HostCall {
		d := time.Duration(float64(L.CheckNumber(1)) * float64(time.Second))
		return &sandbox.HostCall{Inline: true, Run: func(ctx context.Context) (sandbox.Result, error) {
			timer := time.NewTimer(d)
			defer timer.Stop()
			select {
			case <-timer.C:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
	}))
	GuardMembers(L, t, "api", "function")
	return m
}

// Registering reports whether registration is open (the constructor is
// running). Baton holder only.
func (m *ModuleAPI) Registering() bool { return m.registering }

// BeginRegistration opens registration (while the constructor runs).
func (m *ModuleAPI) BeginRegistration() { m.registering = true }

// EndRegistration closes it: later register_* calls raise.
func (m *ModuleAPI) EndRegistration() { m.registering = false }

func (m *ModuleAPI) checkRegistering(L *lua.LState, fn string) {
	if !m.registering {
		L.RaiseError("%s: only allowed during module initialisation", fn)
	}
}

func (m *ModuleAPI) registerCategory(cat *Category) lua.LGFunction {
	// Nothing is built per module here: 500 modules each holding a map of
	// the catalogue cost 4.6 KB apiece; the lists are a dozen names long.
	valid := func(name string) *Callback {
		for _, cb := range cat.Callbacks {
			if cb.Name == name {
				return cb
			}
		}
		return nil
	}
	return func(L *lua.LState) int {
		fname := cat.RegisterFunc()
		m.checkRegistering(L, fname)
		t, ok := L.Get(1).(*lua.LTable)
		if !ok {
			L.RaiseError("%s: expects a table of callbacks, e.g. %s{ %s = function(...) end }, got %s",
				fname, fname, cat.Callbacks[0].Name, L.Get(1).Type().String())
		}
		var errs []string
		var regs []Registration
		t.ForEach(func(k, v lua.LValue) {
			name, _ := k.(lua.LString)
			cb := valid(string(name))
			if why, ok := NotInSynapse[cat.Name+"."+string(name)]; ok && cb == nil {
				errs = append(errs, fmt.Sprintf("%s: %s", fname, why))
				return
			}
			if cb == nil {
				hint := ""
				names := make([]string, len(cat.Callbacks))
				for i, c := range cat.Callbacks {
					names[i] = c.Name
				}
				if s := Suggest(lua.LVAsString(k), names); s != "" {
					hint = fmt.Sprintf("did you mean %s? ", s)
				}
				errs = append(errs, fmt.Sprintf("%s: unknown callback %q (%svalid: %s)", fname, lua.LVAsString(k), hint, validNames(cat)))
				return
			}
			if cb.Name == "auth_checkers" {
				r, err := authCheckers(cb, v)
				if err != nil {
					errs = append(errs, fname+": "+err.Error())
				}
				regs = append(regs, r...)
				return
			}
			fn, ok := v.(*lua.LFunction)
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: %s must be a function, got %s", fname, cb.Name, v.Type().String()))
				return
			}
			if cb.Single && m.registered(cb) {
				errs = append(errs, fmt.Sprintf("%s: %s registered twice (Synapse allows one registration of it)", fname, cb.Name))
				return
			}
			regs = append(regs, Registration{Callback: cb, Fn: fn})
		})
		if len(errs) > 0 {
			sort.Strings(errs)
			L.RaiseError("%s", strings.Join(errs, "; "))
		}
		// Table iteration order is not the script's order; keep the
		// catalogue's order so behaviour is deterministic.
		sort.SliceStable(regs, func(i, j int) bool { return catIndex(cat, regs[i].Callback) < catIndex(cat, regs[j].Callback) })
		if cat.AllOrNone && len(regs) > 0 && len(regs) < len(cat.Callbacks) {
			var got []string
			for _, r := range regs {
				got = append(got, r.Callback.Name)
			}
			L.RaiseError("%s: register every one of %s or none (got only %s)", fname, validNames(cat), strings.Join(got, ", "))
		}
		m.Registrations = append(m.Registrations, regs...)
		return 0
	}
}

// registered reports whether this module registered cb already.
func (m *ModuleAPI) registered(cb *Callback) bool {
	for _, r := range m.Registrations {
		if r.Callback == cb {
			return true
		}
	}
	return false
}

func catIndex(cat *Category, cb *Callback) int {
	for i, c := range cat.Callbacks {
		if c == cb {
			return i
		}
	}
	return len(cat.Callbacks)
}

func validNames(cat *Category) string {
	names := make([]string, len(cat.Callbacks))
	for i, cb := range cat.Callbacks {
		names[i] = cb.Name
	}
	return strings.Join(names, ", ")
}

// authCheckers reads `auth_checkers = { [login_type] = {fields = {...}, check = fn} }`.
func authCheckers(cb *Callback, v lua.LValue) ([]Registration, error) {
	t, ok := v.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("auth_checkers must be a table keyed by login type, got %s", v.Type().String())
	}
	var regs []Registration
	var err error
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		lt, ok := k.(lua.LString)
		entry, ok2 := v.(*lua.LTable)
		if !ok || !ok2 {
			err = fmt.Errorf(`auth_checkers entries must be ["login.type"] = { fields = {...}, check = function(user, login_type, login_dict) end }`)
			return
		}
		fn, ok := entry.RawGetString("check").(*lua.LFunction)
		if !ok {
			err = fmt.Errorf("auth_checkers[%q].check must be a function", sandbox.Clip(string(lt)))
			return
		}
		var fields []string
		if ft, ok := entry.RawGetString("fields").(*lua.LTable); ok {
			ft.ForEach(func(_, f lua.LValue) { fields = append(fields, lua.LVAsString(f)) })
		}
		regs = append(regs, Registration{Callback: cb, Fn: fn, LoginType: string(lt), Fields: fields})
	})
	sort.Slice(regs, func(i, j int) bool { return regs[i].LoginType < regs[j].LoginType })
	return regs, err
}

// ReservedPrefixes may not be registered by modules.
var ReservedPrefixes = []string{"/_matrix/", "/_synapse/admin/"}

func (m *ModuleAPI) registerWebResource(L *lua.LState) int {
	m.checkRegistering(L, "register_web_resource")
	p := L.CheckString(1)
	h := L.Get(2)
	if !strings.HasPrefix(p, "/") {
		L.ArgError(1, fmt.Sprintf("path %q must be absolute (start with /), e.g. /_synapse/client/%s/hello", sandbox.Clip(p), m.Module))
	}
	// Judged as written: a path that needs cleaning is refused, never
	// cleaned ("/_synapse/client/../../_matrix/x" is not a module's).
	if err := webpath.Register(p); err != nil {
		L.ArgError(1, fmt.Sprintf("path %q is not canonical: %s", sandbox.Clip(p), err.Error()))
	}
	clean := strings.TrimSuffix(p, "/")
	for _, r := range ReservedPrefixes {
		if strings.HasPrefix(clean+"/", r) {
			L.ArgError(1, fmt.Sprintf("path %q is under %s, which the homeserver owns; use /_synapse/client/%s/...", sandbox.Clip(p), r, m.Module))
		}
	}
	switch hv := h.(type) {
	case *lua.LFunction:
	case *lua.LTable:
		bad := ""
		hv.ForEach(func(k, v lua.LValue) {
			ks, ok := k.(lua.LString)
			if _, isFn := v.(*lua.LFunction); !ok || !isFn || strings.ToUpper(string(ks)) != string(ks) {
				bad = lua.LVAsString(k)
			}
		})
		if bad != "" {
			L.ArgError(2, fmt.Sprintf("handler table entries must be METHOD = function(request) ... end (bad entry %q)", sandbox.Clip(bad)))
		}
	default:
		L.ArgError(2, "handler must be a function(request) or a table {GET = function(request) ... end, ...}, got "+h.Type().String())
	}
	if clean == "" {
		clean = "/"
	}
	m.WebResources = append(m.WebResources, WebResource{Path: clean, Handler: h, Where: L.Where(1)})
	return 0
}

func (m *ModuleAPI) onClose(L *lua.LState) int {
	m.checkRegistering(L, "on_close")
	m.OnClose = append(m.OnClose, L.CheckFunction(1))
	return 0
}

func (m *ModuleAPI) qualify(L *lua.LState) int {
	local := L.CheckString(1)
	if strings.HasPrefix(local, "@") {
		L.Push(lua.LString(local))
		return 1
	}
	L.Push(lua.LString("@" + local + ":" + m.ServerName))
	return 1
}

func (m *ModuleAPI) isMine(L *lua.LState) int {
	if id, ok := IDOf(L.Get(1)); ok { // as Synapse, a UserID as well as a string
		L.Push(lua.LBool(!id.NoDomain && id.Domain == m.ServerName))
		return 1
	}
	id := L.CheckString(1)
	i := strings.IndexByte(id, ':')
	L.Push(lua.LBool(i >= 0 && id[i+1:] == m.ServerName))
	return 1
}

// errCodes are Synapse's Codes, as api.Codes.NAME = "M_NAME".
var errCodes = []string{
	"UNRECOGNIZED", "UNAUTHORIZED", "FORBIDDEN", "BAD_JSON", "NOT_JSON", "USER_IN_USE", "ROOM_IN_USE",
	"BAD_PAGINATION", "BAD_STATE", "UNKNOWN", "NOT_FOUND", "MISSING_TOKEN", "UNKNOWN_TOKEN",
	"GUEST_ACCESS_FORBIDDEN", "LIMIT_EXCEEDED", "CAPTCHA_NEEDED", "CAPTCHA_INVALID", "MISSING_PARAM",
	"INVALID_PARAM", "TOO_LARGE", "EXCLUSIVE", "THREEPID_AUTH_FAILED", "THREEPID_IN_USE",
	"THREEPID_NOT_FOUND", "THREEPID_DENIED", "INVALID_USERNAME", "SERVER_NOT_TRUSTED",
	"CONSENT_NOT_GIVEN", "CANNOT_LEAVE_SERVER_NOTICE_ROOM", "RESOURCE_LIMIT_EXCEEDED",
	"UNSUPPORTED_ROOM_VERSION", "INCOMPATIBLE_ROOM_VERSION", "WRONG_ROOM_KEYS_VERSION",
	"PASSWORD_TOO_SHORT", "PASSWORD_NO_DIGIT", "PASSWORD_NO_UPPERCASE",
	"PASSWORD_NO_LOWERCASE", "PASSWORD_NO_SYMBOL", "PASSWORD_POLICY_VIOLATION", "WEAK_PASSWORD",
	"INVALID_SIGNATURE", "USER_DEACTIVATED", "USER_LOCKED", "USER_SUSPENDED", "BAD_ALIAS",
	"DUPLICATE_ANNOTATION", "MISSING_MEDIA", "UNKNOWN_POS",
}

// CodeExpiredAccount is Synapse's Codes.EXPIRED_ACCOUNT: the errcode of a
// request refused because the account has expired.
const CodeExpiredAccount = "ORG_MATRIX_EXPIRED_ACCOUNT"

// otherCodes are Synapse's Codes whose value is not "M_" + name.
var otherCodes = map[string]string{
	"EXPIRED_ACCOUNT":        CodeExpiredAccount,
	"USER_ACCOUNT_SUSPENDED": "M_USER_SUSPENDED", // Synapse's name for USER_SUSPENDED
}

// IsErrCode reports whether s looks like a Matrix errcode ("M_FORBIDDEN")
// or is one of api.Codes.
func IsErrCode(s string) bool {
	if s == CodeExpiredAccount {
		return true
	}
	if !strings.HasPrefix(s, "M_") || len(s) < 3 {
		return false
	}
	for _, r := range s[2:] {
		if !(r >= 'A' && r <= 'Z' || r == '_' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
