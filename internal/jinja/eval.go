package jinja

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"unicode/utf8"
)

// output is a render's text, capped at the output limit.
type output struct {
	strings.Builder
	max int
}

func (o *output) write(s string) error {
	if o.Len()+len(s) > o.max {
		return ErrOutputTooLarge
	}
	o.WriteString(s)
	return nil
}

// scope holds variables; lookups walk up to the parents, assignments stay
// in the scope they are made in (a for loop, an include and a block each
// get their own, as in Jinja).
type scope struct {
	vars   map[string]any
	parent *scope
}

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

func (s *scope) child() *scope { return &scope{vars: map[string]any{}, parent: s} }

// frame is one template being rendered with the blocks it may use: an
// extends chain shares a frame, an include starts a new one.
type frame struct {
	blocks map[string][]*blockNode // most derived first
}

type blockRef struct {
	chain []*blockNode
	idx   int
	sc    *scope // the scope the block was rendered in, for super()
}

type stackEntry struct {
	name string // template entered
	from string // "file:line" of the include or extends that entered it
}

// renderer is the state of one Render call; it is not shared.
type renderer struct {
	ctx        context.Context
	set        *templateSet
	opts       Options
	steps      int
	file       string
	autoescape bool
	frame      *frame
	blocks     []blockRef // blocks being rendered, for super()
	stack      []stackEntry
}

func newRenderer(set *templateSet) *renderer {
	return &renderer{set: set, opts: set.opts}
}

func (r *renderer) errorf(line int, format string, args ...any) error {
	return &Error{File: r.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// wrap gives a plain error (from a filter, an operator ...) the current file
// and line; an *Error passes through unchanged.
func (r *renderer) wrap(line int, err error) error {
	if err == nil {
		return nil
	}
	var terr *Error
	if errors.As(err, &terr) {
		return err
	}
	e := &Error{File: r.file, Line: line, Msg: err.Error()}
	switch {
	case errors.Is(err, ErrOutputTooLarge):
		e.Err = ErrOutputTooLarge
		e.Msg = fmt.Sprintf("output would exceed %d bytes", r.opts.MaxOutputBytes)
	case errors.Is(err, ErrTooManySteps):
		e.Err = ErrTooManySteps
	case errors.Is(err, ErrTooDeep):
		e.Err = ErrTooDeep
	case errors.Is(err, context.Canceled):
		e.Err = context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		e.Err = context.DeadlineExceeded
	}
	return e
}

// step counts work; n is how many units (loop items, list elements).
func (r *renderer) step(n int) error {
	before := r.steps
	r.steps += n
	if r.steps > r.opts.MaxSteps || n < 0 {
		return fmt.Errorf("%w: more than %d (a loop or a range too long?)", ErrTooManySteps, r.opts.MaxSteps)
	}
	if before/ctxCheckSteps != r.steps/ctxCheckSteps && r.ctx != nil {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("render stopped: %w", err)
		}
	}
	return nil
}

// ctxCheckSteps is how often (in steps) a render looks at its context.
const ctxCheckSteps = 4096

// bytesPerStep is how many bytes of string work count as one step, and
// elementsPerStep how many list or map elements, so a loop that scans a
// large value on every pass is bounded by MaxSteps too.
const (
	bytesPerStep    = 32
	elementsPerStep = 4
)

// chargeBytes counts the work of an operation on its operands: their
// length for strings, their element count for lists and maps.
func (r *renderer) chargeBytes(vals ...any) error {
	n := 0
	for _, v := range vals {
		switch x := v.(type) {
		case string:
			n += len(x)
		case Markup:
			n += len(x)
		case []any:
			n += len(x) * (bytesPerStep / elementsPerStep)
		case map[string]any:
			n += len(x) * (bytesPerStep / elementsPerStep)
		}
	}
	if n < bytesPerStep {
		return nil
	}
	return r.step(n / bytesPerStep)
}

// stringify is str() for output and string operations: a list or map is
// written out with its elements counted as steps (a nested value can hold
// far more elements than it took steps to build).
func (r *renderer) stringify(v any) (string, error) {
	if !isContainer(v) {
		return str(v), nil
	}
	b := &sizeLimitedBuilder{max: r.opts.MaxOutputBytes, maxElems: r.elemBudget()}
	writeRepr(b, v, 0)
	if b.err != nil {
		if errors.Is(b.err, ErrTooManySteps) {
			return "", r.step(b.elems)
		}
		return "", b.err
	}
	return b.String(), r.step(b.elems / elementsPerStep)
}

func isContainer(v any) bool {
	switch v.(type) {
	case []any, map[string]any:
		return true
	}
	return false
}

// elemBudget is how many list or map elements the remaining steps allow.
func (r *renderer) elemBudget() int {
	left := r.opts.MaxSteps - r.steps
	if left < 0 {
		left = 0
	}
	return (left + 1) * elementsPerStep
}

// equal and contains compare within the remaining steps, and count the
// elements they compared.
func (r *renderer) equal(a, b any) (bool, error) {
	start := r.elemBudget()
	budget := start
	eq := equal(a, b, &budget)
	return eq, r.settle(start, budget)
}

func (r *renderer) contains(container, item any) (bool, error) {
	start := r.elemBudget()
	budget := start
	ok, err := containsValue(container, item, &budget)
	if err != nil {
		return false, err
	}
	return ok, r.settle(start, budget)
}

func (r *renderer) settle(start, left int) error {
	if left < 0 {
		return r.step(start + 1)
	}
	return r.step((start - left) / elementsPerStep)
}

// checkLen refuses to build a string or list larger than the output limit.
func (r *renderer) checkLen(n int) error {
	if n > r.opts.MaxOutputBytes || n < 0 {
		return ErrOutputTooLarge
	}
	return nil
}

func (r *renderer) renderTemplate(p *parsed, sc *scope, out *output) error {
	savedFrame, savedBlocks := r.frame, r.blocks
	r.frame = &frame{blocks: map[string][]*blockNode{}}
	r.blocks = nil
	err := r.renderChain(p, sc, out)
	r.frame, r.blocks = savedFrame, savedBlocks
	return err
}

// renderChain renders p, or, when p extends another template, runs p's
// top-level {% set %}s, registers its blocks and renders the parent.
func (r *renderer) renderChain(p *parsed, sc *scope, out *output) error {
	savedFile, savedEscape := r.file, r.autoescape
	defer func() { r.file, r.autoescape = savedFile, savedEscape }()
	r.file, r.autoescape = p.name, p.autoescape
	for name, b := range p.blocks {
		r.frame.blocks[name] = append(r.frame.blocks[name], b)
	}
	if p.extends == nil {
		return r.nodes(p.body, sc, out)
	}
	for _, n := range p.body {
		if s, ok := n.(*setNode); ok {
			if err := r.node(s, sc, out); err != nil {
				return err
			}
		}
	}
	line := p.extends.line
	parent, err := r.enter(p.extends.name, sc, line, false)
	if err != nil || parent == nil {
		return err
	}
	err = r.renderChain(parent, sc, out)
	r.leave()
	return err
}

// enter evaluates an include/extends name, loads the template and pushes it
// on the stack, refusing cycles and excessive depth. With ignoreMissing, a
// missing template gives (nil, nil).
func (r *renderer) enter(nameExpr expr, sc *scope, line int, ignoreMissing bool) (*parsed, error) {
	v, err := r.eval(nameExpr, sc)
	if err != nil {
		return nil, err
	}
	var names []string
	switch x := v.(type) {
	case string, Markup:
		names = []string{str(x)}
	case []any:
		for _, item := range x {
			names = append(names, str(norm(item)))
		}
	default:
		return nil, r.errorf(line, "a template name must be a string, not %s", typeName(v))
	}
	var p *parsed
	for _, name := range names {
		p, err = r.set.load(name)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, r.wrap(line, err)
		}
	}
	if p == nil {
		if ignoreMissing {
			return nil, nil
		}
		return nil, r.errorf(line, "template %s not found", strings.Join(quoteAll(names), " or "))
	}
	for _, e := range r.stack {
		if e.name == p.name {
			names := make([]string, 0, len(r.stack)+1)
			for _, e := range r.stack {
				names = append(names, e.name)
			}
			return nil, r.errorf(line, "include cycle: %s → %s", strings.Join(names, " → "), p.name)
		}
	}
	if len(r.stack) >= r.opts.MaxDepth {
		return nil, r.wrap(line, fmt.Errorf("%w: more than %d levels of include/extends", ErrTooDeep, r.opts.MaxDepth))
	}
	r.stack = append(r.stack, stackEntry{name: p.name, from: fmt.Sprintf("%s:%d", r.file, line)})
	return p, nil
}

func (r *renderer) leave() { r.stack = r.stack[:len(r.stack)-1] }

// included adds "included from file:line" to an error leaving an include.
func (r *renderer) included(err error, line int) error {
	var terr *Error
	if errors.As(err, &terr) && terr.File != r.file {
		terr.IncludedFrom = append(terr.IncludedFrom, fmt.Sprintf("%s:%d", r.file, line))
	}
	return err
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

func (r *renderer) nodes(nodes []node, sc *scope, out *output) error {
	for _, n := range nodes {
		if err := r.node(n, sc, out); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) node(n node, sc *scope, out *output) error {
	if err := r.step(1); err != nil {
		return r.wrap(n.nodeLine(), err)
	}
	switch n := n.(type) {
	case *textNode:
		return r.wrap(n.line, out.write(n.text))
	case *outputNode:
		v, err := r.eval(n.x, sc)
		if err != nil {
			return err
		}
		return r.wrap(n.line, r.writeValue(v, out))
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, sc)
			if err != nil {
				return err
			}
			if truthy(v) {
				return r.nodes(n.bodies[i], sc, out)
			}
		}
		return r.nodes(n.elseBody, sc, out)
	case *forNode:
		return r.forLoop(n, sc, out)
	case *setNode:
		return r.setVars(n, sc)
	case *includeNode:
		return r.include(n, sc, out)
	case *extendsNode:
		// Reached only when it is not the template's first top-level
		// extends, or inside another tag: Jinja rejects both.
		return r.errorf(n.line, "{%% extends %%} must be a top-level tag, used once")
	case *blockNode:
		chain := r.frame.blocks[n.name]
		if len(chain) == 0 {
			chain = []*blockNode{n}
		}
		return r.renderBlock(chain, 0, sc, out)
	}
	return r.errorf(n.nodeLine(), "internal error: unknown node %T", n)
}

func (r *renderer) writeValue(v any, out *output) error {
	if m, ok := v.(Markup); ok {
		if err := r.chargeBytes(m); err != nil {
			return err
		}
		return out.write(string(m))
	}
	s, err := r.stringify(v)
	if err != nil {
		return err
	}
	if err := r.chargeBytes(s); err != nil {
		return err
	}
	if r.autoescape {
		s = escapeHTML(s)
	}
	return out.write(s)
}

func (r *renderer) renderBlock(chain []*blockNode, idx int, sc *scope, out *output) error {
	b := chain[idx]
	savedFile, savedEscape := r.file, r.autoescape
	r.file, r.autoescape = b.owner.name, b.owner.autoescape
	r.blocks = append(r.blocks, blockRef{chain: chain, idx: idx, sc: sc})
	err := r.nodes(b.body, sc.child(), out)
	r.blocks = r.blocks[:len(r.blocks)-1]
	r.file, r.autoescape = savedFile, savedEscape
	return err
}

func (r *renderer) include(n *includeNode, sc *scope, out *output) error {
	p, err := r.enter(n.name, sc, n.line, n.ignoreMissing)
	if err != nil || p == nil {
		return err
	}
	var isc *scope
	if n.withContext {
		isc = sc.child()
	} else {
		isc = (&scope{vars: r.opts.Globals}).child()
	}
	err = r.renderTemplate(p, isc, out)
	r.leave()
	return r.included(err, n.line)
}

func (r *renderer) setVars(n *setNode, sc *scope) error {
	var v any
	if n.value != nil {
		var err error
		if v, err = r.eval(n.value, sc); err != nil {
			return err
		}
	} else {
		buf := &output{max: r.opts.MaxOutputBytes}
		if err := r.nodes(n.body, sc, buf); err != nil {
			return err
		}
		if r.autoescape {
			v = Markup(buf.String())
		} else {
			v = buf.String()
		}
	}
	return r.assign(n.targets, v, sc, n.line)
}

// assign binds one name, or unpacks a list into several.
func (r *renderer) assign(targets []string, v any, sc *scope, line int) error {
	if len(targets) == 1 {
		sc.vars[targets[0]] = v
		return nil
	}
	items, ok := norm(v).([]any)
	if !ok || len(items) != len(targets) {
		n := "a " + typeName(v)
		if ok {
			n = fmt.Sprintf("%d values", len(items))
		}
		return r.errorf(line, "cannot unpack %s into %d names (%s)", n, len(targets), strings.Join(targets, ", "))
	}
	for i, t := range targets {
		sc.vars[t] = items[i]
	}
	return nil
}

// iterate lists the items a for loop visits: a list's items, a map's keys
// (sorted), a string's characters; undefined gives none.
func (r *renderer) iterate(v any, line int) ([]any, error) {
	switch x := norm(v).(type) {
	case []any:
		return x, nil
	case map[string]any:
		keys := sortedKeys(x)
		items := make([]any, len(keys))
		for i, k := range keys {
			items[i] = k
		}
		return items, nil
	case string, Markup:
		s := str(x)
		items := make([]any, 0, len(s))
		for _, c := range s {
			if _, ok := x.(Markup); ok {
				items = append(items, Markup(string(c)))
			} else {
				items = append(items, string(c))
			}
		}
		return items, nil
	case *undefined:
		return nil, nil
	}
	return nil, r.errorf(line, "%s is not iterable", typeName(v))
}

func (r *renderer) forLoop(n *forNode, sc *scope, out *output) error {
	v, err := r.eval(n.iter, sc)
	if err != nil {
		return err
	}
	items, err := r.iterate(v, n.line)
	if err != nil {
		return err
	}
	if err := r.step(len(items)); err != nil {
		return r.wrap(n.line, err)
	}
	if n.filter != nil {
		kept := make([]any, 0, len(items))
		fsc := sc.child()
		for _, item := range items {
			if err := r.assign(n.targets, item, fsc, n.line); err != nil {
				return err
			}
			ok, err := r.eval(n.filter, fsc)
			if err != nil {
				return err
			}
			if truthy(ok) {
				kept = append(kept, item)
			}
		}
		items = kept
	}
	if len(items) == 0 {
		return r.nodes(n.elseBody, sc, out)
	}
	lsc := sc.child()
	loop := &loopState{items: items}
	for i, item := range items {
		if err := r.step(1); err != nil {
			return r.wrap(n.line, err)
		}
		loop.index0 = i
		// A fresh scope per iteration: a {% set %} in the body does not
		// leak into the next iteration's view of the loop variables.
		it := lsc.child()
		if err := r.assign(n.targets, item, it, n.line); err != nil {
			return err
		}
		it.vars["loop"] = loop
		if err := r.nodes(n.body, it, out); err != nil {
			return err
		}
	}
	return nil
}

// loopState is the "loop" variable of a for loop.
type loopState struct {
	items  []any
	index0 int
}

func (l *loopState) attr(name string) (any, bool) {
	n := len(l.items)
	switch name {
	case "index":
		return int64(l.index0 + 1), true
	case "index0":
		return int64(l.index0), true
	case "revindex":
		return int64(n - l.index0), true
	case "revindex0":
		return int64(n - l.index0 - 1), true
	case "first":
		return l.index0 == 0, true
	case "last":
		return l.index0 == n-1, true
	case "length":
		return int64(n), true
	case "depth":
		return int64(1), true
	case "depth0":
		return int64(0), true
	case "previtem":
		if l.index0 > 0 {
			return l.items[l.index0-1], true
		}
		return &undefined{desc: "there is no previous item"}, true
	case "nextitem":
		if l.index0 < n-1 {
			return l.items[l.index0+1], true
		}
		return &undefined{desc: "there is no next item"}, true
	case "cycle":
		return &loopCycle{l: l}, true
	}
	return nil, false
}

type loopCycle struct{ l *loopState }

func (c *loopCycle) call(_ *renderer, args []any, kwargs map[string]any) (any, error) {
	if len(args) == 0 || len(kwargs) > 0 {
		return nil, errors.New("loop.cycle takes one or more values")
	}
	return args[c.l.index0%len(args)], nil
}

// eval evaluates an expression.
func (r *renderer) eval(x expr, sc *scope) (any, error) {
	if err := r.step(1); err != nil {
		return nil, r.wrap(x.exprLine(), err)
	}
	switch x := x.(type) {
	case *constExpr:
		return x.v, nil
	case *nameExpr:
		if v, ok := sc.lookup(x.name); ok {
			return norm(v), nil
		}
		if f, ok := globalFuncs[x.name]; ok {
			return f, nil
		}
		return &undefined{desc: fmt.Sprintf("%q is undefined", x.name)}, nil
	case *listExpr:
		if err := r.step(len(x.items)); err != nil {
			return nil, r.wrap(x.line, err)
		}
		items := make([]any, len(x.items))
		for i, e := range x.items {
			v, err := r.eval(e, sc)
			if err != nil {
				return nil, err
			}
			items[i] = v
		}
		return items, nil
	case *dictExpr:
		m := make(map[string]any, len(x.keys))
		for i := range x.keys {
			k, err := r.eval(x.keys[i], sc)
			if err != nil {
				return nil, err
			}
			if !isStringish(k) {
				return nil, r.errorf(x.line, "dict keys must be strings, not %s", typeName(k))
			}
			v, err := r.eval(x.values[i], sc)
			if err != nil {
				return nil, err
			}
			m[str(k)] = v
		}
		return m, nil
	case *attrExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		res, err := getAttr(v, x.name)
		return res, r.wrap(x.line, err)
	case *itemExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		k, err := r.eval(x.key, sc)
		if err != nil {
			return nil, err
		}
		if err := r.chargeBytes(v); err != nil {
			return nil, r.wrap(x.line, err)
		}
		res, err := getItem(v, k)
		return res, r.wrap(x.line, err)
	case *sliceExpr:
		return r.slice(x, sc)
	case *callExpr:
		fn, err := r.eval(x.fn, sc)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := r.evalArgs(x.args, x.kwargs, sc)
		if err != nil {
			return nil, err
		}
		if m, ok := fn.(*method); ok {
			if err := r.chargeBytes(append([]any{m.recv}, args...)...); err != nil {
				return nil, r.wrap(x.line, err)
			}
		}
		switch f := fn.(type) {
		case callable:
			res, err := f.call(r, args, kwargs)
			return res, r.wrap(x.line, err)
		case *undefined:
			return nil, r.errorf(x.line, "%s, so it cannot be called", f.desc)
		}
		return nil, r.errorf(x.line, "%s is not callable", typeName(fn))
	case *filterExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, kwargs, err := r.evalArgs(x.args, x.kwargs, sc)
		if err != nil {
			return nil, err
		}
		if isContainer(v) && stringInput[x.name] {
			if v, err = r.stringify(v); err != nil {
				return nil, r.wrap(x.line, err)
			}
		}
		if err := r.chargeBytes(append([]any{v}, args...)...); err != nil {
			return nil, r.wrap(x.line, err)
		}
		res, err := filters[x.name](r, v, args, kwargs)
		if err != nil {
			var terr *Error
			if errors.As(err, &terr) {
				return nil, err
			}
			return nil, r.wrap(x.line, fmt.Errorf("filter %s: %w", x.name, err))
		}
		return res, nil
	case *testExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		args, _, err := r.evalArgs(x.args, nil, sc)
		if err != nil {
			return nil, err
		}
		if err := r.chargeBytes(append([]any{v}, args...)...); err != nil {
			return nil, r.wrap(x.line, err)
		}
		ok, err := tests[x.name](r, v, args)
		if err != nil {
			return nil, r.wrap(x.line, fmt.Errorf("test %s: %w", x.name, err))
		}
		return ok != x.negate, nil
	case *unaryExpr:
		v, err := r.eval(x.x, sc)
		if err != nil {
			return nil, err
		}
		res, err := unary(x.op, v)
		return res, r.wrap(x.line, err)
	case *binaryExpr:
		a, err := r.eval(x.l, sc)
		if err != nil {
			return nil, err
		}
		switch x.op {
		case "and":
			if !truthy(a) {
				return a, nil
			}
			return r.eval(x.r, sc)
		case "or":
			if truthy(a) {
				return a, nil
			}
			return r.eval(x.r, sc)
		}
		b, err := r.eval(x.r, sc)
		if err != nil {
			return nil, err
		}
		if err := r.chargeBytes(a, b); err != nil {
			return nil, r.wrap(x.line, err)
		}
		res, err := r.arith(x.op, a, b)
		return res, r.wrap(x.line, err)
	case *compareExpr:
		a, err := r.eval(x.first, sc)
		if err != nil {
			return nil, err
		}
		for i, op := range x.ops {
			b, err := r.eval(x.rest[i], sc)
			if err != nil {
				return nil, err
			}
			if err := r.chargeBytes(a, b); err != nil {
				return nil, r.wrap(x.line, err)
			}
			if list, isList := b.([]any); isList && (op == "in" || op == "not in") {
				if err := r.step(len(list)); err != nil {
					return nil, r.wrap(x.line, err)
				}
			}
			ok, err := r.compareOp(op, a, b)
			if err != nil {
				return nil, r.wrap(x.line, err)
			}
			if !ok {
				return false, nil
			}
			a = b
		}
		return true, nil
	case *condExpr:
		c, err := r.eval(x.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return r.eval(x.then, sc)
		}
		if x.els == nil {
			return &undefined{desc: "the condition was false and there is no else"}, nil
		}
		return r.eval(x.els, sc)
	}
	return nil, r.errorf(x.exprLine(), "internal error: unknown expression %T", x)
}

func (r *renderer) evalArgs(args []expr, kwargs []kwarg, sc *scope) ([]any, map[string]any, error) {
	var vals []any
	for _, a := range args {
		v, err := r.eval(a, sc)
		if err != nil {
			return nil, nil, err
		}
		vals = append(vals, v)
	}
	var kw map[string]any
	for _, k := range kwargs {
		v, err := r.eval(k.x, sc)
		if err != nil {
			return nil, nil, err
		}
		if kw == nil {
			kw = map[string]any{}
		}
		kw[k.name] = v
	}
	return vals, kw, nil
}

func getAttr(v any, name string) (any, error) {
	switch x := v.(type) {
	case *undefined:
		return nil, fmt.Errorf("%s, so it has no attribute %q", x.desc, name)
	case map[string]any:
		if dictMethods[name] {
			return &method{recv: x, name: name}, nil
		}
		if val, ok := x[name]; ok {
			return norm(val), nil
		}
		return &undefined{desc: fmt.Sprintf("the dict has no attribute %q", name)}, nil
	case string, Markup:
		if strMethods[name] {
			return &method{recv: x, name: name}, nil
		}
	case *loopState:
		if val, ok := x.attr(name); ok {
			return val, nil
		}
	}
	return &undefined{desc: fmt.Sprintf("%s has no attribute %q", typeName(v), name)}, nil
}

func getItem(v, key any) (any, error) {
	switch x := v.(type) {
	case *undefined:
		return nil, fmt.Errorf("%s, so it has no item %s", x.desc, repr(key))
	case map[string]any:
		if isStringish(key) {
			k := str(key)
			if val, ok := x[k]; ok {
				return norm(val), nil
			}
			if dictMethods[k] {
				return &method{recv: x, name: k}, nil
			}
		}
		return &undefined{desc: fmt.Sprintf("the dict has no key %s", repr(key))}, nil
	case []any, string, Markup:
		i, ok := intIndex(key)
		if !ok {
			if s, isStr := key.(string); isStr {
				return getAttr(v, s)
			}
			return nil, fmt.Errorf("%s indices must be integers, not %s", typeName(v), typeName(key))
		}
		if list, isList := x.([]any); isList {
			if i < 0 {
				i += int64(len(list))
			}
			if i < 0 || i >= int64(len(list)) {
				return &undefined{desc: fmt.Sprintf("list index %d is out of range", i)}, nil
			}
			return norm(list[i]), nil
		}
		s, want := str(x), i
		if i < 0 {
			i += int64(utf8.RuneCountInString(s))
		}
		if i >= 0 {
			for _, c := range s {
				if i == 0 {
					return string(c), nil
				}
				i--
			}
		}
		return &undefined{desc: fmt.Sprintf("string index %d is out of range", want)}, nil
	case *loopState:
		if s, ok := key.(string); ok {
			return getAttr(v, s)
		}
	}
	return &undefined{desc: fmt.Sprintf("%s has no item %s", typeName(v), repr(key))}, nil
}

func intIndex(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), true
		}
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func (r *renderer) slice(x *sliceExpr, sc *scope) (any, error) {
	v, err := r.eval(x.x, sc)
	if err != nil {
		return nil, err
	}
	var bounds [3]*int64
	for i, e := range []expr{x.lo, x.hi, x.step} {
		if e == nil {
			continue
		}
		b, err := r.eval(e, sc)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		n, ok := intIndex(b)
		if !ok {
			return nil, r.errorf(x.line, "slice indices must be integers, not %s", typeName(b))
		}
		bounds[i] = &n
	}
	step := int64(1)
	if bounds[2] != nil {
		step = *bounds[2]
		if step == 0 {
			return nil, r.errorf(x.line, "slice step cannot be zero")
		}
	}
	var n int64
	var list []any
	var runes []rune
	isMarkup := false
	switch s := v.(type) {
	case []any:
		list, n = s, int64(len(s))
	case string:
		runes = append([]rune{}, []rune(s)...)
		n = int64(len(runes))
	case Markup:
		runes, isMarkup = append([]rune{}, []rune(string(s))...), true
		n = int64(len(runes))
	case *undefined:
		return nil, r.errorf(x.line, "%s, so it cannot be sliced", s.desc)
	default:
		return nil, r.errorf(x.line, "%s cannot be sliced", typeName(v))
	}
	if err := r.chargeBytes(v); err != nil {
		return nil, r.wrap(x.line, err)
	}
	idx := sliceIndices(n, bounds[0], bounds[1], step)
	if err := r.step(len(idx)); err != nil {
		return nil, r.wrap(x.line, err)
	}
	if runes == nil {
		out := make([]any, len(idx))
		for i, j := range idx {
			out[i] = list[j]
		}
		return out, nil
	}
	out := make([]rune, len(idx))
	for i, j := range idx {
		out[i] = runes[j]
	}
	if isMarkup {
		return Markup(string(out)), nil
	}
	return string(out), nil
}

// sliceIndices lists the indices of Python's s[lo:hi:step] for len n.
func sliceIndices(n int64, lo, hi *int64, step int64) []int64 {
	clamp := func(p *int64, def int64, min, max int64) int64 {
		if p == nil {
			return def
		}
		v := *p
		if v < 0 {
			v += n
		}
		if v < min {
			return min
		}
		if v > max {
			return max
		}
		return v
	}
	var start, stop int64
	if step > 0 {
		start, stop = clamp(lo, 0, 0, n), clamp(hi, n, 0, n)
	} else {
		start, stop = clamp(lo, n-1, -1, n-1), clamp(hi, -1, -1, n-1)
	}
	var idx []int64
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		idx = append(idx, i)
	}
	return idx
}
