package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// gopher-lua's compiler recurses on the syntax tree with no depth limit:
// a table constructor 1e6 levels deep overflows the Go stack, a fatal
// error that no recover catches. Its parser is a yacc machine with a heap
// stack (it survives 1e6 levels but takes seconds and ~500 MB doing it),
// and its compiler is quadratic in a function's distinct constants (a
// 2 MB table of 262k numbers compiles for many minutes). So every source
// is checked on tokens, with gopher-lua's own scanner, before it is
// parsed: a recursive descent that follows Lua 5.1's parser and counts
// syntax levels where it does (lparser.c's enterlevel), bounded at
// LUAI_MAXCCALLS like reference Lua.

// Limits of a source the compiler accepts.
const (
	// MaxSyntaxLevels is Lua 5.1's LUAI_MAXCCALLS: a block or an
	// expression each take a level (a table constructor, a call's
	// argument, a parenthesis, a unary operator, the right side of '..'
	// or '^'; a function expression takes two: itself and its body).
	MaxSyntaxLevels = 200
	// MaxChain bounds what Lua 5.1 parses in a loop but gopher-lua
	// compiles recursively: chained binary operators (a+b+c...), suffixes
	// (a.b.c..., f()()...) and elseif branches, counted with the levels
	// along one path.
	MaxChain = 1000
	// MaxCompileCost bounds the work of gopher-lua's constant lookup, a
	// linear scan per use (about 30 ns a step): the sum over a function's
	// constant uses of the constant's position, plus label and goto
	// pairings. 1<<26 is ~2 s of compiling, a table literal of ~11k
	// distinct values in one function.
	MaxCompileCost = 1 << 26
	// MaxLoadSource caps a source given to loadstring or load.
	MaxLoadSource = 16 << 20
)

// errCheckSyntax: the checker lost track of the syntax; the parser gives
// the real error.
var errCheckSyntax = errors.New("syntax")

// levelError is a source over one of the limits, at a line.
type levelError struct {
	name string
	line int
	msg  string
}

func (e *levelError) Error() string { return fmt.Sprintf("%s:%d: %s", e.name, e.line, e.msg) }

// checkSource walks src's tokens and reports the first limit it passes,
// errCheckSyntax when the tokens do not form a chunk the checker follows,
// or ctx's error once ctx ends.
func checkSource(ctx context.Context, src []byte, name string) (err error) {
	c := &checker{name: name}
	c.sc = parse.NewScanner(&ctxReader{ctx: ctx, src: src}, name)
	defer func() {
		if p := recover(); p != nil {
			switch v := p.(type) {
			case *levelError:
				err = v
			case ctxStop:
				err = v.err
			case checkStop:
				err = errCheckSyntax
			default:
				panic(p)
			}
		}
	}()
	c.fn = newFuncCost()
	c.next()
	c.chunk()
	if c.tok.Type != parse.EOF {
		c.stop()
	}
	return nil
}

// ctxReader reads src and stops the scan (or the parse) by panicking
// once ctx ends: gopher-lua's scanner turns read errors into NUL bytes,
// and its parser turns a panic into the error it returns.
type ctxReader struct {
	ctx context.Context
	src []byte
	off int
}

type ctxStop struct{ err error }

func (s ctxStop) Error() string { return s.err.Error() }

func (r *ctxReader) Read(p []byte) (int, error) {
	if r.ctx != nil {
		if err := r.ctx.Err(); err != nil {
			panic(ctxStop{err})
		}
	}
	if r.off >= len(r.src) {
		return 0, io.EOF
	}
	n := copy(p, r.src[r.off:])
	r.off += n
	return n, nil
}

type checkStop struct{}

type checker struct {
	name  string
	sc    *parse.Scanner
	lx    parse.Lexer
	tok   ast.Token
	ahead *ast.Token
	level int // Lua 5.1's syntax levels
	chain int // levels plus chained operators, suffixes and elseifs
	fn    *funcCost
}

// funcCost estimates what compiling one function costs gopher-lua.
type funcCost struct {
	strs     map[string]int // string constant -> its position in the function
	nums     map[string]int // number constant (as written) -> its position
	n        int            // constants so far
	cost     int64
	gotos    int
	labelRun int // consecutive labels just seen
}

func newFuncCost() *funcCost {
	return &funcCost{strs: map[string]int{}, nums: map[string]int{}}
}

func (c *checker) scan() ast.Token {
	c.lx.PrevTokenType = c.tok.Type
	t, err := c.sc.Scan(&c.lx)
	if err != nil {
		c.stop()
	}
	return t
}

func (c *checker) next() {
	if c.ahead != nil {
		c.tok, c.ahead = *c.ahead, nil
	} else {
		c.tok = c.scan()
	}
	switch c.tok.Type {
	case parse.TString, parse.TIdent:
		// Globals and field names are string constants; locals are
		// counted too (an overestimate the budget allows for).
		c.constant(c.fn.strs, c.tok.Str)
	case parse.TNumber:
		c.constant(c.fn.nums, c.tok.Str)
	}
}

func (c *checker) peek() ast.Token {
	if c.ahead == nil {
		t := c.scan()
		c.ahead = &t
	}
	return *c.ahead
}

func (c *checker) constant(set map[string]int, key string) {
	f := c.fn
	pos, ok := set[key]
	if !ok {
		pos = f.n
		f.n++
		set[key] = pos
	}
	f.cost += int64(pos) + 1
	if f.cost > MaxCompileCost {
		c.fail(fmt.Sprintf("function too large to compile: too many distinct constants (%d); split big table literals across functions or load data with json.decode", f.n))
	}
}

func (c *checker) fail(msg string) {
	line := c.tok.Pos.Line
	if line < 1 {
		line = c.sc.Pos.Line
	}
	panic(&levelError{name: c.name, line: line, msg: msg})
}

func (c *checker) stop() { panic(checkStop{}) }

func (c *checker) enter() {
	c.level++
	c.chain++
	if c.level > MaxSyntaxLevels {
		c.fail(fmt.Sprintf("chunk has too many syntax levels (more than %d nested blocks, calls, table constructors, parentheses or operators)", MaxSyntaxLevels))
	}
	c.chained()
}

func (c *checker) leave() { c.level--; c.chain-- }

// chained counts one more link of a chain the compiler recurses on.
func (c *checker) chained() {
	if c.chain > MaxChain {
		c.fail(fmt.Sprintf("expression too complex (more than %d chained operators, suffixes, elseif branches or nested levels)", MaxChain))
	}
}

func (c *checker) is(t int) bool { return c.tok.Type == t }

func (c *checker) accept(t int) bool {
	if c.tok.Type == t {
		c.next()
		return true
	}
	return false
}

func (c *checker) expect(t int) {
	if !c.accept(t) {
		c.stop()
	}
}

func (c *checker) blockFollow() bool {
	switch c.tok.Type {
	case parse.TElse, parse.TElseIf, parse.TEnd, parse.TUntil, parse.EOF:
		return true
	}
	return false
}

// chunk is a block: statements, the last of which may be return or break.
func (c *checker) chunk() {
	c.enter()
	for !c.blockFollow() {
		if c.accept(';') { // gopher-lua allows empty statements
			continue
		}
		last := c.statement()
		c.accept(';')
		if last {
			break
		}
	}
	c.leave()
}

func (c *checker) statement() (last bool) {
	if !c.is(parse.T2Colon) {
		c.fn.labelRun = 0
	}
	switch c.tok.Type {
	case parse.TIf:
		saved := c.chain
		c.next()
		c.expr()
		c.expect(parse.TThen)
		c.chunk()
		for c.is(parse.TElseIf) {
			c.chain++ // each elseif nests one if statement deeper
			c.chained()
			c.next()
			c.expr()
			c.expect(parse.TThen)
			c.chunk()
		}
		if c.accept(parse.TElse) {
			c.chunk()
		}
		c.expect(parse.TEnd)
		c.chain = saved
	case parse.TWhile:
		c.next()
		c.expr()
		c.expect(parse.TDo)
		c.chunk()
		c.expect(parse.TEnd)
	case parse.TDo:
		c.next()
		c.chunk()
		c.expect(parse.TEnd)
	case parse.TFor:
		c.next()
		c.expect(parse.TIdent)
		if c.accept('=') {
			c.expr()
			c.expect(',')
			c.expr()
			if c.accept(',') {
				c.expr()
			}
		} else {
			for c.accept(',') {
				c.expect(parse.TIdent)
			}
			c.expect(parse.TIn)
			c.exprList()
		}
		c.expect(parse.TDo)
		c.chunk()
		c.expect(parse.TEnd)
	case parse.TRepeat:
		c.next()
		c.chunk()
		c.expect(parse.TUntil)
		c.expr()
	case parse.TFunction:
		c.next()
		c.expect(parse.TIdent)
		for c.accept('.') {
			c.expect(parse.TIdent)
		}
		if c.accept(':') {
			c.expect(parse.TIdent)
		}
		c.body()
	case parse.TLocal:
		c.next()
		if c.accept(parse.TFunction) {
			c.expect(parse.TIdent)
			c.body()
			break
		}
		c.expect(parse.TIdent)
		for c.accept(',') {
			c.expect(parse.TIdent)
		}
		if c.accept('=') {
			c.exprList()
		}
	case parse.TReturn:
		c.next()
		if !c.blockFollow() && !c.is(';') {
			c.exprList()
		}
		return true
	case parse.TBreak:
		c.next()
		return true
	case parse.T2Colon:
		c.next()
		c.expect(parse.TIdent)
		c.expect(parse.T2Colon)
		// A run of labels is compiled in quadratic time, and each label
		// is matched against the gotos before it.
		c.fn.labelRun++
		c.fn.cost += int64(c.fn.labelRun + c.fn.gotos)
	case parse.TGoto:
		c.next()
		c.expect(parse.TIdent)
		c.fn.gotos++
	default:
		c.primaryExp()
		if c.is('=') || c.is(',') {
			for c.accept(',') {
				c.primaryExp()
			}
			c.expect('=')
			c.exprList()
		}
	}
	if c.fn.cost > MaxCompileCost {
		c.fail("function too large to compile: too many labels and gotos")
	}
	return false
}

// body is a function's parameters and block; a function is compiled on
// its own, with its own constants.
func (c *checker) body() {
	outer := c.fn
	c.fn = newFuncCost()
	c.expect('(')
	if !c.is(')') {
		for {
			if c.accept(parse.T3Comma) {
				break
			}
			c.expect(parse.TIdent)
			if !c.accept(',') {
				break
			}
		}
	}
	c.expect(')')
	c.chunk()
	c.expect(parse.TEnd)
	c.fn = outer
}

func (c *checker) exprList() {
	c.expr()
	for c.accept(',') {
		c.expr()
	}
}

func (c *checker) expr() { c.subexpr(0) }

// Lua 5.1's operator priorities (left, right) and the unary priority.
const unaryPriority = 8

func binaryPriority(t int) (left, right int, ok bool) {
	switch t {
	case '+', '-':
		return 6, 6, true
	case '*', '/', '%':
		return 7, 7, true
	case '^':
		return 10, 9, true
	case parse.T2Comma:
		return 5, 4, true
	case parse.TEqeq, parse.TNeq, '<', parse.TLte, '>', parse.TGte:
		return 3, 3, true
	case parse.TAnd:
		return 2, 2, true
	case parse.TOr:
		return 1, 1, true
	}
	return 0, 0, false
}

// subexpr reads an expression whose operators bind tighter than limit,
// as Lua 5.1's subexpr does (one level each).
func (c *checker) subexpr(limit int) {
	c.enter()
	saved := c.chain
	switch c.tok.Type {
	case parse.TNot, '-', '#':
		c.next()
		c.subexpr(unaryPriority)
	default:
		c.simpleExp()
	}
	for {
		left, right, ok := binaryPriority(c.tok.Type)
		if !ok || left <= limit {
			break
		}
		c.next()
		c.chain++ // the tree grows one level on the left
		c.chained()
		c.subexpr(right)
	}
	c.chain = saved
	c.leave()
}

func (c *checker) simpleExp() {
	switch c.tok.Type {
	case parse.TNumber, parse.TString, parse.TNil, parse.TTrue, parse.TFalse, parse.T3Comma:
		c.next()
	case '{':
		c.constructor()
	case parse.TFunction:
		c.next()
		c.body()
	default:
		c.primaryExp()
	}
}

func (c *checker) primaryExp() {
	saved := c.chain
	switch c.tok.Type {
	case parse.TIdent:
		c.next()
	case '(':
		c.next()
		c.expr()
		c.expect(')')
	default:
		c.stop()
	}
	for {
		switch c.tok.Type {
		case '.':
			c.next()
			c.expect(parse.TIdent)
		case '[':
			c.next()
			c.expr()
			c.expect(']')
		case ':':
			c.next()
			c.expect(parse.TIdent)
			c.funcArgs()
		case '(', parse.TString, '{':
			c.funcArgs()
		default:
			c.chain = saved
			return
		}
		c.chain++
		c.chained()
	}
}

func (c *checker) funcArgs() {
	switch c.tok.Type {
	case parse.TString:
		c.next()
	case '{':
		c.constructor()
	case '(':
		c.next()
		if !c.is(')') {
			c.exprList()
		}
		c.expect(')')
	default:
		c.stop()
	}
}

func (c *checker) constructor() {
	c.expect('{')
	for !c.is('}') {
		switch {
		case c.is(parse.TIdent) && c.peek().Type == '=':
			c.next()
			c.next()
			c.expr()
		case c.is('['):
			c.next()
			c.expr()
			c.expect(']')
			c.expect('=')
			c.expr()
		default:
			c.expr()
		}
		if !c.accept(',') && !c.accept(';') {
			break
		}
		// gopher-lua takes a run of separators after a field ({1,,2}).
		for c.accept(',') || c.accept(';') {
		}
	}
	c.expect('}')
}
