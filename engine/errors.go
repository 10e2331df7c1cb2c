package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/luahost/luahost/engine/internal/runtime"
	"github.com/luahost/luahost/luaapi"
)

// SynapseError is a Matrix error response: an HTTP status, an errcode and
// a message, plus extra fields for the error body. A script raises one
// with error(api.SynapseError(code, msg, errcode, extra)); a refusing
// check (SpamDecision.Err, EventDecision.Err) gives one too, so a
// homeserver turns any refusal into its response in one line.
type SynapseError struct {
	Code    int            // HTTP status, 400-599
	Errcode string         // "M_FORBIDDEN"
	Msg     string         // for the client
	Extra   map[string]any // extra fields of the error body
}

func (e *SynapseError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, e.Errcode, e.Msg)
}

// ErrorBody is the JSON body of the error response:
// {"errcode": ..., "error": ..., extra fields...}.
func (e *SynapseError) ErrorBody() map[string]any {
	body := make(map[string]any, len(e.Extra)+2)
	for k, v := range e.Extra {
		body[k] = v
	}
	body["errcode"] = e.Errcode
	body["error"] = e.Msg
	return body
}

// Write answers an HTTP request with the error.
func (e *SynapseError) Write(w http.ResponseWriter) {
	b, _ := json.Marshal(e.ErrorBody())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code)
	w.Write(b)
}

// ScriptError is a module's script failing: a Lua error it raised, a
// deadline it overran, or a limit it hit. Error() reads like
// `module "list_spam" (spam/list_spam.lua:14): check_event_for_spam: attempt to index a nil value`.
type ScriptError struct {
	Module   string
	Callback string // callback, web path or step ("new", "parse_config")
	File     string // script file of the error position
	Line     int    // 0 when unknown
	Msg      string
	// Traceback is the Lua stack, for logs; never show it to clients.
	Traceback string
	// Timeout is set when the call overran its deadline.
	Timeout bool
	// Memory is set when the call was stopped for memory (its module's
	// max_memory, or memory_limit for all modules).
	Memory bool
	// Raised is the SynapseError the script raised, if it raised one.
	Raised *SynapseError
}

func (e *ScriptError) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("module %q (%s): %s: %s", e.Module, pos, e.Callback, e.Msg)
}

// Unwrap gives the raised SynapseError, so errors.As finds it.
func (e *ScriptError) Unwrap() error {
	if e.Raised == nil {
		return nil
	}
	return e.Raised
}

// scriptError turns the runtime's error into the engine's.
func scriptError(err error) error {
	if err == nil {
		return nil
	}
	var re *runtime.Error
	if !errors.As(err, &re) {
		return err
	}
	se := &ScriptError{Module: re.Module, Callback: re.Callback, File: re.File, Line: re.Line, Msg: re.Msg,
		Traceback: re.Traceback, Timeout: re.Timeout, Memory: re.Memory}
	if s, ok := re.Value.(*luaapi.SynapseError); ok {
		se.Raised = synapseError(s)
	}
	return se
}

func synapseError(s *luaapi.SynapseError) *SynapseError {
	return &SynapseError{Code: s.Code, Errcode: s.Errcode, Msg: s.Msg, Extra: s.Extra}
}
