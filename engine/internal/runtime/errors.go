package runtime

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
)

// Script errors: what a failed step becomes, naming the module, the file
// and the line, with the Lua traceback kept for the log.

// Error is an error raised by (or a deadline hit in) a module's script.
// Error() reads like
// `module "list_spam" (spam/list_spam.lua:14): check_event_for_spam: attempt to index a nil value`.
type Error struct {
	Module   string
	Callback string
	File     string // script file of the error position
	Line     int    // 0 when unknown
	Msg      string
	// Traceback is the Lua stack for the log; never shown to clients.
	Traceback string
	Timeout   bool
	// Memory is set when the step was stopped for memory.
	Memory bool
	// Value is the *luaapi.SynapseError or *luaapi.ConfigError the script
	// raised, if it raised one.
	Value error
}

func (e *Error) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("module %q (%s): %s: %s", e.Module, pos, e.Callback, e.Msg)
}

func (e *Error) Unwrap() error { return e.Value }

type hostErr struct{ err error }

func (h hostErr) Error() string { return h.err.Error() }

// Guard runs f, turning a Go panic into an error (a Lua raise inside f
// arrives as a panic carrying *lua.ApiError).
func Guard(f func()) (err error) {
	defer func() {
		if p := recover(); p != nil {
			switch v := p.(type) {
			case hostErr:
				err = v
			case sandbox.ResultError:
				err = v.Err
			case *lua.ApiError:
				err = v
			case error:
				err = fmt.Errorf("internal error: %w", v)
			default:
				err = fmt.Errorf("internal error: %v", v)
			}
		}
	}()
	f()
	return nil
}

var posPrefix = regexp.MustCompile(`^([^\s:]+\.lua):(\d+):\s?`)

// scriptError builds an Error from a failed resume. Baton holder only.
func (r *Runtime) scriptError(t *task, th *lua.LState, err error) error {
	val := sandbox.ErrorValue(err)
	se := &Error{Module: r.module, Callback: t.What, File: r.file}
	if v := luaapi.RaisedError(r.L, val); v != nil {
		se.Value = v
		se.Msg = v.Error()
		where := ""
		switch v := v.(type) {
		case *luaapi.SynapseError:
			where = v.Where
		case *luaapi.ConfigError:
			where = v.Where
			se.Msg = v.Msg
		}
		se.File, se.Line = splitWhere(where, r.file)
	} else {
		msg := lua.LVAsString(val)
		if val.Type() == lua.LTTable || val.Type() == lua.LTUserData {
			msg = ToString(r.L, val)
			if tb, ok := val.(*lua.LTable); ok && r.L.GetMetaField(val, "__tostring") == lua.LNil {
				if m, ok := tb.RawGetString("message").(lua.LString); ok {
					msg = string(m)
				} else if m, ok := tb.RawGetString("msg").(lua.LString); ok {
					msg = string(m)
				} else {
					msg = "error object: " + msg
				}
			}
		}
		if m := posPrefix.FindStringSubmatch(msg); m != nil {
			se.File = m[1]
			se.Line, _ = strconv.Atoi(m[2])
			msg = msg[len(m[0]):]
		}
		if strings.TrimSpace(msg) == "" || val == lua.LNil {
			msg = "error raised without a message (error(nil) or error(\"\"))"
		}
		se.Msg = msg
		if strings.Contains(msg, ErrMemory.Error()) {
			se.Memory = true
		}
		if time.Now().UnixNano() > t.deadline && strings.Contains(msg, context.DeadlineExceeded.Error()) {
			se.Timeout = true
			se.Msg = fmt.Sprintf("timed out after %s (still running at this line)", t.Timeout)
		}
	}
	var top frame
	se.Traceback, top = traceback(th)
	if se.Line == 0 && top.line > 0 && !se.Timeout {
		// A non-string error carries no position; the stack still does.
		se.File, se.Line = top.source, top.line
	}
	return se
}

func (r *Runtime) timeoutError(t *task, where string) error {
	file, line := splitWhere(where, r.file)
	return &Error{Module: r.module, Callback: t.What, File: file, Line: line, Timeout: true,
		Msg: fmt.Sprintf("timed out after %s", t.Timeout)}
}

func (r *Runtime) canceled(t *task) error {
	return fmt.Errorf("module %q: %s: %w", r.module, t.What, t.ctx.Err())
}

// wrap names the module in a Go-side error of a call.
func (r *Runtime) wrap(t *task, err error) error {
	if ae, ok := err.(*lua.ApiError); ok {
		return r.scriptError(t, r.L, ae)
	}
	return fmt.Errorf("module %q: %s: %w", r.module, t.What, err)
}

func splitWhere(where, def string) (string, int) {
	if m := posPrefix.FindStringSubmatch(strings.TrimSpace(where) + " "); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return def, 0
}

// toStringLimit bounds what an error object's __tostring may take: it
// runs on the state, and a looping or huge one must not wedge the module.
const (
	toStringTimeout = 100 * time.Millisecond
	toStringMax     = 64 << 10
)

// ToString is tostring(v) for logs and messages, run under a short
// deadline and size cap: a __tostring that fails, loops or returns
// something huge gives "error object is not a string" (or the text cut).
// Baton holder only.
func ToString(L *lua.LState, v lua.LValue) string {
	if s, ok := v.(lua.LString); ok {
		return cut(string(s))
	}
	fn := L.GetMetaField(v, "__tostring")
	if fn == lua.LNil {
		return cut(v.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), toStringTimeout)
	defer cancel()
	old := L.Context()
	L.SetContext(ctx)
	defer func() {
		if old != nil {
			L.SetContext(old)
		} else {
			L.RemoveContext()
		}
	}()
	var s lua.LValue
	err := Guard(func() {
		L.Push(fn)
		L.Push(v)
		L.Call(1, 1)
		s = L.Get(-1)
		L.Pop(1)
	})
	str, ok := s.(lua.LString)
	if err != nil || !ok {
		return "error object is not a string"
	}
	return cut(string(str))
}

func cut(s string) string {
	if len(s) > toStringMax {
		return s[:toStringMax] + "... (cut)"
	}
	return s
}

type frame struct {
	source string
	line   int
}

// traceback walks a dead coroutine's frames (they survive the error) and
// returns them, with the innermost script frame.
func traceback(th *lua.LState) (string, frame) {
	var b strings.Builder
	var top frame
	_ = Guard(func() {
		for level := 0; level < 32; level++ {
			dbg, ok := th.GetStack(level)
			if !ok {
				break
			}
			if _, err := th.GetInfo("Sln", dbg, lua.LNil); err != nil {
				break
			}
			if dbg.CurrentLine <= 0 || strings.HasPrefix(dbg.Source, "<") {
				continue
			}
			name := dbg.Name
			if name == "" {
				name = "?"
			}
			if top.line == 0 {
				top = frame{dbg.Source, dbg.CurrentLine}
			}
			fmt.Fprintf(&b, "\n\t%s:%d: in %s", dbg.Source, dbg.CurrentLine, name)
		}
	})
	if b.Len() == 0 {
		return "", top
	}
	return "stack traceback:" + b.String(), top
}
