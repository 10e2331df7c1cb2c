package lint

import (
	"github.com/yuin/gopher-lua/ast"
)

// The walk is one pass over the tree that resolves every name (local or
// global) and records what report needs: global reads and writes, and
// member accesses through locals. Whether a local holds the api table is
// decided afterwards, because a helper defined above M.new may use an
// upvalue that M.new assigns.

// binding is one declared local (a local statement name, a parameter, a
// for variable). The src fields record what values it is given.
type binding struct {
	name      string
	chunkTop  bool       // declared in the chunk's own block (module table candidates)
	apiSrc    bool       // given the api table (constructor parameter, require("module_api"), a parameter named api)
	otherSrc  bool       // given something else (or something unknown)
	aliases   []*binding // given the value of these locals
	isAPI     bool       // decided by report
	pending   int        // report's count of aliases not yet known to be api
	dependent []*binding // report's reverse of aliases
}

// globalRef is a global name read or written, with the constant field
// keys that follow it (string.format -> ["string", "format"]).
type globalRef struct {
	path    []string
	lines   []int // line of each path element
	write   bool  // the last element is assigned
	funcDef bool  // written by `function name()`
	locals  []string
}

// memberRef is a field access through a local (api.store.get ->
// path ["api", "store", "get"] with b the local api).
type memberRef struct {
	b     *binding
	path  []string
	lines []int
	write bool
}

type walker struct {
	env     Env
	vis     map[string][]*binding // visible locals by name, innermost last
	blocks  [][]string            // names each open block declared
	fnDepth int                   // 0 in the chunk's own function
	depth   int
	err     error
	errLine int

	modName   string                     // the local the chunk returns (return M)
	modTables map[*ast.TableExpr]bool    // table constructors that are the module table
	ctors     map[*ast.FunctionExpr]bool // functions that are the module's constructor
	all       []*binding

	globals []globalRef
	members []memberRef

	// The locals-in-scope list last made for "did you mean", valid while
	// no local is declared or goes out of scope (scopeGen unchanged).
	scopeGen  int
	snap      []string
	snapGen   int
	snapValid bool
	snaps     int
}

func newWalker(env Env, chunk []ast.Stmt) *walker {
	w := &walker{env: env, vis: map[string][]*binding{},
		modTables: map[*ast.TableExpr]bool{}, ctors: map[*ast.FunctionExpr]bool{}}
	// The module table is what the chunk's last statement returns.
	if n := len(chunk); n > 0 {
		if r, ok := chunk[n-1].(*ast.ReturnStmt); ok && len(r.Exprs) > 0 {
			switch e := r.Exprs[0].(type) {
			case *ast.IdentExpr:
				w.modName = e.Value
			case *ast.TableExpr:
				w.modTables[e] = true
			}
		}
	}
	return w
}

// enter counts one level of nesting; false means too deep (w.err set).
func (w *walker) enter(line int) bool {
	w.depth++
	if w.depth > MaxDepth {
		if w.err == nil {
			w.err, w.errLine = ErrTooDeep, line
		}
		return false
	}
	return w.err == nil
}

func (w *walker) leave() { w.depth-- }

func (w *walker) open() { w.blocks = append(w.blocks, nil) }

func (w *walker) close() {
	top := w.blocks[len(w.blocks)-1]
	for i := len(top) - 1; i >= 0; i-- {
		name := top[i]
		s := w.vis[name]
		if len(s) == 1 {
			delete(w.vis, name)
		} else {
			w.vis[name] = s[:len(s)-1]
		}
	}
	w.blocks = w.blocks[:len(w.blocks)-1]
	w.scopeGen++
}

func (w *walker) declare(name string) *binding {
	b := &binding{name: name, chunkTop: w.fnDepth == 0 && len(w.blocks) == 1}
	w.vis[name] = append(w.vis[name], b)
	w.blocks[len(w.blocks)-1] = append(w.blocks[len(w.blocks)-1], name)
	w.all = append(w.all, b)
	w.scopeGen++
	return b
}

func (w *walker) lookup(name string) *binding {
	if s := w.vis[name]; len(s) > 0 {
		return s[len(s)-1]
	}
	return nil
}

// maxLocalCandidates bounds the locals offered as "did you mean" for one
// undefined name, so hostile input cannot make the lint quadratic.
const maxLocalCandidates = 256

// maxSnapshots bounds how many lists of locals in scope are kept for
// "did you mean"; past it, undefined names get suggestions from globals
// only (a file would need that many scopes with misspellings).
const maxSnapshots = 1000

// visibleLocals lists the locals in scope, latest declared first, at most
// maxLocalCandidates. Reads in one scope share one list.
func (w *walker) visibleLocals() []string {
	if w.snapGen == w.scopeGen && w.snapValid {
		return w.snap
	}
	if w.snaps >= maxSnapshots {
		return nil
	}
	var out []string
outer:
	for i := len(w.blocks) - 1; i >= 0; i-- {
		for j := len(w.blocks[i]) - 1; j >= 0; j-- {
			if len(out) == maxLocalCandidates {
				break outer
			}
			out = append(out, w.blocks[i][j])
		}
	}
	w.snap, w.snapGen, w.snapValid = out, w.scopeGen, true
	w.snaps++
	return out
}

func (w *walker) chunk(stmts []ast.Stmt) {
	w.open()
	w.block(stmts)
	w.close()
}

func (w *walker) block(stmts []ast.Stmt) {
	for _, s := range stmts {
		if w.err != nil {
			return
		}
		w.stmt(s)
	}
}

func (w *walker) stmt(s ast.Stmt) {
	defer w.leave()
	if !w.enter(s.Line()) {
		return
	}
	switch s := s.(type) {
	case *ast.AssignStmt:
		for i, lhs := range s.Lhs {
			if i < len(s.Rhs) && w.isModuleNew(lhs) {
				if fn, ok := s.Rhs[i].(*ast.FunctionExpr); ok {
					w.ctors[fn] = true
				}
			}
		}
		w.exprs(s.Rhs)
		for i, lhs := range s.Lhs {
			switch l := lhs.(type) {
			case *ast.IdentExpr:
				if b := w.lookup(l.Value); b != nil {
					w.given(b, s.Rhs, i)
				} else {
					w.global([]string{l.Value}, []int{l.Line()}, true, false)
				}
			case *ast.AttrGetExpr:
				w.index(l, true)
			default:
				w.expr(lhs)
			}
		}
	case *ast.LocalAssignStmt:
		// gopher-lua declares the name before compiling the function in
		// both `local function f` and `local f = function`.
		if len(s.Names) == 1 && len(s.Exprs) == 1 {
			if fn, ok := s.Exprs[0].(*ast.FunctionExpr); ok {
				b := w.declare(s.Names[0])
				b.otherSrc = true
				w.expr(fn)
				return
			}
		}
		if len(s.Names) == 1 && s.Names[0] == w.modName && w.fnDepth == 0 && len(w.blocks) == 1 && len(s.Exprs) == 1 {
			if t, ok := s.Exprs[0].(*ast.TableExpr); ok {
				w.modTables[t] = true
			}
		}
		w.exprs(s.Exprs)
		for i, name := range s.Names {
			w.given(w.declare(name), s.Exprs, i)
		}
	case *ast.FuncCallStmt:
		w.expr(s.Expr)
	case *ast.DoBlockStmt:
		w.open()
		w.block(s.Stmts)
		w.close()
	case *ast.WhileStmt:
		w.expr(s.Condition)
		w.open()
		w.block(s.Stmts)
		w.close()
	case *ast.RepeatStmt:
		w.open()
		w.block(s.Stmts)
		w.expr(s.Condition) // sees the body's locals
		w.close()
	case *ast.IfStmt:
		// elseif arrives as an else block holding one if: walk the chain
		// in a loop so a long elseif ladder does not count as nesting.
		for cur := s; cur != nil; {
			w.expr(cur.Condition)
			w.open()
			w.block(cur.Then)
			w.close()
			next := (*ast.IfStmt)(nil)
			if len(cur.Else) == 1 {
				next, _ = cur.Else[0].(*ast.IfStmt)
			}
			if next == nil {
				w.open()
				w.block(cur.Else)
				w.close()
			}
			cur = next
		}
	case *ast.NumberForStmt:
		w.expr(s.Init)
		w.expr(s.Limit)
		w.expr(s.Step)
		w.open()
		w.declare(s.Name).otherSrc = true
		w.block(s.Stmts)
		w.close()
	case *ast.GenericForStmt:
		w.exprs(s.Exprs)
		w.open()
		for _, name := range s.Names {
			w.declare(name).otherSrc = true
		}
		w.block(s.Stmts)
		w.close()
	case *ast.FuncDefStmt:
		w.funcDef(s)
	case *ast.ReturnStmt:
		w.exprs(s.Exprs)
	}
}

func (w *walker) funcDef(s *ast.FuncDefStmt) {
	if s.Name.Func == nil { // function a.b:m()
		if root, path, lines, ok := w.staticPath(s.Name.Receiver); ok {
			w.ref(root, append(path, s.Name.Method), append(lines, root.Line()), true)
		}
		w.function(s.Func, true)
		return
	}
	if w.isModuleNew(s.Name.Func) {
		w.ctors[s.Func] = true
	}
	switch f := s.Name.Func.(type) {
	case *ast.IdentExpr:
		if b := w.lookup(f.Value); b != nil {
			b.otherSrc = true
		} else {
			w.global([]string{f.Value}, []int{f.Line()}, true, true)
		}
	case *ast.AttrGetExpr:
		w.index(f, true)
	}
	w.function(s.Func, false)
}

// isModuleNew reports whether e is M.new for the module table M.
func (w *walker) isModuleNew(e ast.Expr) bool {
	a, ok := e.(*ast.AttrGetExpr)
	if !ok {
		return false
	}
	k, ok := a.Key.(*ast.StringExpr)
	if !ok || k.Value != "new" {
		return false
	}
	id, ok := a.Object.(*ast.IdentExpr)
	if !ok || id.Value != w.modName {
		return false
	}
	b := w.lookup(id.Value)
	return b == nil || b.chunkTop
}

// given records that b is assigned the i-th value of exprs.
func (w *walker) given(b *binding, exprs []ast.Expr, i int) {
	if i >= len(exprs) {
		// Extra names get nil, unless the last value is a call or ...,
		// which can produce any number of values.
		if n := len(exprs); n > 0 {
			switch exprs[n-1].(type) {
			case *ast.FuncCallExpr, *ast.Comma3Expr:
				b.otherSrc = true
			}
		}
		return
	}
	switch e := exprs[i].(type) {
	case *ast.NilExpr:
	case *ast.IdentExpr:
		if src := w.lookup(e.Value); src != nil {
			b.aliases = append(b.aliases, src)
		} else {
			b.otherSrc = true
		}
	case *ast.FuncCallExpr:
		if w.isRequireModuleAPI(e) {
			b.apiSrc = true
		} else {
			b.otherSrc = true
		}
	default:
		b.otherSrc = true
	}
}

// isRequireModuleAPI matches require("module_api") with the global require.
func (w *walker) isRequireModuleAPI(c *ast.FuncCallExpr) bool {
	id, ok := c.Func.(*ast.IdentExpr)
	if !ok || id.Value != "require" || c.Receiver != nil || len(c.Args) != 1 || w.lookup("require") != nil {
		return false
	}
	s, ok := c.Args[0].(*ast.StringExpr)
	return ok && s.Value == "module_api"
}

func (w *walker) exprs(es []ast.Expr) {
	for _, e := range es {
		w.expr(e)
	}
}

func (w *walker) expr(e ast.Expr) {
	if e == nil {
		return
	}
	defer w.leave()
	if !w.enter(e.Line()) {
		return
	}
	switch e := e.(type) {
	case *ast.IdentExpr:
		if w.lookup(e.Value) == nil {
			w.global([]string{e.Value}, []int{e.Line()}, false, false)
		}
	case *ast.AttrGetExpr:
		w.index(e, false)
	case *ast.FuncCallExpr:
		if e.Receiver != nil {
			if root, path, lines, ok := w.staticPath(e.Receiver); ok {
				w.ref(root, append(path, e.Method), append(lines, e.Line()), false)
			} else {
				w.expr(e.Receiver)
			}
		} else {
			w.expr(e.Func)
		}
		w.exprs(e.Args)
	case *ast.TableExpr:
		mod := w.modTables[e]
		for _, f := range e.Fields {
			if mod {
				if k, ok := f.Key.(*ast.StringExpr); ok && k.Value == "new" {
					if fn, ok := f.Value.(*ast.FunctionExpr); ok {
						w.ctors[fn] = true
					}
				}
			}
			w.expr(f.Key)
			w.expr(f.Value)
		}
	case *ast.FunctionExpr:
		w.function(e, false)
	case *ast.LogicalOpExpr, *ast.RelationalOpExpr, *ast.StringConcatOpExpr, *ast.ArithmeticOpExpr,
		*ast.UnaryMinusOpExpr, *ast.UnaryNotOpExpr, *ast.UnaryLenOpExpr:
		w.operators(e)
	}
}

// operators walks a tree of operators as one level: a .. b .. c .. d is a
// deep tree, but nobody would call it nesting.
func (w *walker) operators(e ast.Expr) {
	stack := []ast.Expr{e}
	for len(stack) > 0 && w.err == nil {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch x := x.(type) {
		case *ast.LogicalOpExpr:
			stack = append(stack, x.Rhs, x.Lhs)
		case *ast.RelationalOpExpr:
			stack = append(stack, x.Rhs, x.Lhs)
		case *ast.StringConcatOpExpr:
			stack = append(stack, x.Rhs, x.Lhs)
		case *ast.ArithmeticOpExpr:
			stack = append(stack, x.Rhs, x.Lhs)
		case *ast.UnaryMinusOpExpr:
			stack = append(stack, x.Expr)
		case *ast.UnaryNotOpExpr:
			stack = append(stack, x.Expr)
		case *ast.UnaryLenOpExpr:
			stack = append(stack, x.Expr)
		default:
			w.expr(x)
		}
	}
}

// function walks a function body; its caller (expr or stmt) counted the
// nesting level.
func (w *walker) function(fn *ast.FunctionExpr, method bool) {
	ctor := w.ctors[fn]
	w.fnDepth++
	w.open()
	if method {
		w.declare("self").otherSrc = true
	}
	for i, name := range fn.ParList.Names {
		b := w.declare(name)
		// In the constructor only the second parameter is api, whatever
		// the names; elsewhere a parameter named api is taken to be it.
		if ctor && i == 1 || !ctor && name == "api" {
			b.apiSrc = true
		} else {
			b.otherSrc = true
		}
	}
	if fn.ParList.HasVargs {
		w.declare("arg").otherSrc = true // gopher-lua's CompatVarArg
	}
	w.block(fn.Stmts)
	w.close()
	w.fnDepth--
}

// index walks a.b.c / a[k].c. The constant keys after a name become one
// reference (checked as a path); other keys are walked as expressions.
func (w *walker) index(e *ast.AttrGetExpr, write bool) {
	var keys []ast.Expr
	var x ast.Expr = e
	for {
		a, ok := x.(*ast.AttrGetExpr)
		if !ok {
			break
		}
		keys = append(keys, a.Key)
		x = a.Object
	}
	for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
		keys[i], keys[j] = keys[j], keys[i]
	}
	root, isName := x.(*ast.IdentExpr)
	if !isName {
		w.expr(x)
	}
	var path []string
	var lines []int
	complete := false
	if isName {
		path, lines = []string{root.Value}, []int{root.Line()}
		complete = true
		for _, k := range keys {
			s, ok := k.(*ast.StringExpr)
			if !ok {
				complete = false
				break
			}
			path, lines = append(path, s.Value), append(lines, s.Line())
		}
	}
	for _, k := range keys {
		if _, ok := k.(*ast.StringExpr); !ok {
			w.expr(k)
		}
	}
	if isName {
		w.ref(root, path, lines, write && complete)
	}
}

// staticPath reads e as name.k1.k2 with constant keys only.
func (w *walker) staticPath(e ast.Expr) (*ast.IdentExpr, []string, []int, bool) {
	var keys []*ast.StringExpr
	for {
		switch x := e.(type) {
		case *ast.IdentExpr:
			path, lines := []string{x.Value}, []int{x.Line()}
			for i := len(keys) - 1; i >= 0; i-- {
				path, lines = append(path, keys[i].Value), append(lines, keys[i].Line())
			}
			return x, path, lines, true
		case *ast.AttrGetExpr:
			k, ok := x.Key.(*ast.StringExpr)
			if !ok {
				return nil, nil, nil, false
			}
			keys = append(keys, k)
			e = x.Object
		default:
			return nil, nil, nil, false
		}
	}
}

// ref records path (rooted at the name root) as read or, when write, its
// last element as assigned.
func (w *walker) ref(root *ast.IdentExpr, path []string, lines []int, write bool) {
	if b := w.lookup(root.Value); b != nil {
		if len(path) > 1 {
			w.members = append(w.members, memberRef{b: b, path: path, lines: lines, write: write})
		}
		return
	}
	w.global(path, lines, write, false)
}

func (w *walker) global(path []string, lines []int, write, funcDef bool) {
	g := globalRef{path: path, lines: lines, write: write, funcDef: funcDef}
	if !write || len(path) > 1 {
		// Remember the locals in scope in case the name turns out to be
		// undefined ("did you mean"); only needed for unknown roots.
		if _, known := w.env.Globals[path[0]]; !known && w.env.Globals != nil {
			g.locals = w.visibleLocals()
		}
	}
	w.globals = append(w.globals, g)
}
