// Package lint finds mistakes in a luahost module script without running
// it: reads of globals the luahost sandbox does not offer (io, os.getenv,
// debug, ...), writes to globals, misspelt globals, and api.x members that
// module_api does not have. It parses with gopher-lua's own parser, so it
// sees the script exactly as the engine will.
//
// Scoping follows gopher-lua's compiler, which is what runs the script:
// `local x = x` reads the outer x on the right; `local function f` and
// also `local f = function` see f inside the body (gopher-lua registers
// the local first in both cases, unlike reference Lua); the condition of
// repeat-until sees the loop body's locals; vararg functions have a local
// `arg` (Lua 5.1 compatibility); methods have `self`.
//
// The api table is recognised in locals, whatever their name, given it by
// the module's constructor (the second parameter of the function stored as
// new in the table the chunk returns), by require("module_api"), as a
// parameter named api (outside the constructor), or by another such local
// (local a = api, or an upvalue that M.new assigns). A local also given
// anything else is not checked. Members a script assigns on the api table
// (api.cache = {}) are allowed and count as members for its reads: they
// are the script's own, like fields it adds to string or table. Likewise
// _G.name = v defines a global deliberately and is not reported, and
// nothing below _G is checked.
//
// A warning on a line can be silenced with a comment on that line, or on
// a line of its own just above it:
//
//	count = 0 -- luahost:ignore global-write
//	-- luahost:ignore
//	local f = io.open(path)
//
// A bare `luahost:ignore` silences every warning of the line; otherwise the
// codes are listed after it, separated by spaces or commas, and a reason
// may follow after "--" (`-- luahost:ignore global-write -- shared counter`).
// An unknown code is itself reported (bad-ignore).
package lint

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/yuin/gopher-lua/parse"
)

// Warning codes, for --strict and for luahost:ignore comments.
const (
	// CodeSandboxGlobal: a standard Lua name the sandbox removes (io,
	// os.execute, os.getenv, debug, package, dofile, loadfile, ...).
	CodeSandboxGlobal = "sandbox-global"
	// CodeUndefinedGlobal: a global that exists nowhere: not in the
	// sandbox, not assigned anywhere in the file (tabel.insert,
	// string.fromat).
	CodeUndefinedGlobal = "undefined-global"
	// CodeGlobalWrite: an assignment to a global; a module should use
	// locals, since globals are shared by every callback of the module.
	CodeGlobalWrite = "global-write"
	// CodeUnknownAPIMember: api.x where module_api has no member x.
	CodeUnknownAPIMember = "unknown-api-member"
	// CodeBadIgnore: a luahost:ignore comment naming an unknown code.
	CodeBadIgnore = "bad-ignore"
)

// Codes lists every warning code.
func Codes() []string {
	return []string{CodeSandboxGlobal, CodeUndefinedGlobal, CodeGlobalWrite, CodeUnknownAPIMember, CodeBadIgnore}
}

// MaxDepth bounds how deeply Check descends into nested code. Reference
// Lua refuses nesting past 200 levels too (LUAI_MAXCCALLS); chains of
// binary operators and elseif do not count, so only nesting a reader
// would call deep does.
const MaxDepth = 200

// ErrTooDeep is wrapped by the error Check returns for source nested
// deeper than MaxDepth: the script may still compile and run; it is just
// not linted.
var ErrTooDeep = fmt.Errorf("nested deeper than %d levels: not linted", MaxDepth)

// Fields describes the fields of a table: each key is a field name, and
// its value describes that field's own fields when it is a table whose
// fields are known. A nil value means "not a table, or not checked": reads
// below it are not checked.
type Fields map[string]Fields

// Env describes what exists for a script.
type Env struct {
	// Globals are the globals the sandbox defines, with the members of
	// library tables (os = {time, clock, date, difftime}). nil disables
	// the sandbox-global and undefined-global checks.
	Globals Fields
	// API are the members of the module_api table, nested tables
	// (store, http_client, account_data_manager, Codes) with their
	// members. nil disables the unknown-api-member check.
	API Fields
}

// Warning is one finding.
type Warning struct {
	File   string // the chunk name given to Check
	Line   int
	Column int // 1-based byte column of the name; 0 when not known
	Code   string
	Msg    string
}

// String formats the warning as file:line: message [code].
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: %s [%s]", w.File, w.Line, w.Msg, w.Code)
}

// Check lints one script. chunkName is what warnings and errors call the
// file ("spam/list_spam.lua"). A syntax error or nesting deeper than
// MaxDepth (errors.Is ErrTooDeep) is returned as an error naming the line;
// warnings come sorted by line.
func Check(src []byte, chunkName string, env Env) (ws []Warning, err error) {
	defer func() {
		// A bug here must not take `luahost check` down with it.
		if r := recover(); r != nil {
			ws, err = nil, fmt.Errorf("%s: lint: internal error: %v", chunkName, r)
		}
	}()
	chunk, err := parse.Parse(bytes.NewReader(src), chunkName)
	if err != nil {
		var pe *parse.Error
		if errors.As(err, &pe) {
			return nil, &syntaxError{file: chunkName, err: pe}
		}
		return nil, fmt.Errorf("%s: %w", chunkName, err)
	}
	w := newWalker(env, chunk)
	w.chunk(chunk)
	if w.err != nil {
		return nil, fmt.Errorf("%s:%d: %w", chunkName, w.errLine, w.err)
	}
	// io.write(io.read()) is one mistake on one line, not two.
	found := w.report()
	seen := map[string]bool{}
	lines := map[int]bool{}
	n := 0
	for _, f := range found {
		key := fmt.Sprint(f.line, "\x00", f.code, "\x00", f.msg)
		if seen[key] {
			continue
		}
		seen[key] = true
		lines[f.line] = true
		found[n] = f
		n++
	}
	found = found[:n]
	sr, err := scan(src, chunkName, lines)
	if err != nil {
		// Parse accepted the same bytes with the same scanner.
		return nil, fmt.Errorf("%s: lint: rescanning: %w", chunkName, err)
	}
	for _, f := range found {
		if sr.ignored(f.line, f.code) {
			continue
		}
		ws = append(ws, Warning{File: chunkName, Line: f.line, Column: sr.column(f.line, f.match),
			Code: f.code, Msg: f.msg})
	}
	for _, b := range sr.bad {
		b.File = chunkName
		ws = append(ws, b)
	}
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i], ws[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Msg < b.Msg
	})
	return ws, nil
}

// syntaxError reports a parse error as "file:line: message near 'token'",
// the shape the loader uses.
type syntaxError struct {
	file string
	err  *parse.Error
}

func (e *syntaxError) Error() string {
	msg := strings.TrimSpace(e.err.Message)
	if msg == "" {
		msg = "syntax error"
	}
	if e.err.Pos.Line == parse.EOF {
		return fmt.Sprintf("%s: %s at the end of the file", e.file, msg)
	}
	return fmt.Sprintf("%s:%d: %s near '%s'", e.file, e.err.Pos.Line, msg, e.err.Token)
}

func (e *syntaxError) Unwrap() error { return e.err }

// finding is a warning before suppression; match is the name as written
// (root first), used to find its column.
type finding struct {
	line  int
	code  string
	msg   string
	match []string
}
