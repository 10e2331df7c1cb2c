package jinja

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parsed is one template file, parsed.
type parsed struct {
	name       string
	body       []node
	autoescape bool
	extends    *extendsNode          // the first top-level {% extends %}, if any
	blocks     map[string]*blockNode // every {% block %} of the file
	deps       []dep                 // include/extends names known at parse time
}

// dep is an include or extends whose name is a constant, loaded with the
// template so a missing file is reported by Load.
type dep struct {
	name          string
	line          int
	ignoreMissing bool
}

// maxNesting bounds how deeply expressions and statements may nest, so a
// hostile template cannot exhaust the stack of the parser or the renderer.
const maxNesting = 100

type parser struct {
	name  string
	toks  []token
	pos   int
	depth int
	p     *parsed
}

// parse parses one template; autoescape follows Synapse (select_autoescape):
// on for names ending in .html, .htm or .xml.
func parse(name, src string) (*parsed, error) {
	toks, err := lex(name, src)
	if err != nil {
		return nil, err
	}
	p := &parser{name: name, toks: toks}
	p.p = &parsed{name: name, autoescape: autoescapeFor(name), blocks: map[string]*blockNode{}}
	body, end, err := p.body()
	if err != nil {
		return nil, err
	}
	if end != "" {
		return nil, p.errorf(p.peek().line, "unexpected {%% %s %%}: no open tag to close", end)
	}
	p.p.body = body
	for _, n := range body {
		if e, ok := n.(*extendsNode); ok {
			p.p.extends = e
			break
		}
	}
	return p.p, nil
}

func autoescapeFor(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".html") || strings.HasSuffix(n, ".htm") || strings.HasSuffix(n, ".xml")
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return &Error{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) peek() token { return p.toks[p.pos] }

func (p *parser) peekN(n int) token {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.val == op
}

func (p *parser) isName(name string) bool {
	t := p.peek()
	return t.kind == tName && t.val == name
}

func (p *parser) skipOp(op string) bool {
	if p.isOp(op) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) skipName(name string) bool {
	if p.isName(name) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expectOp(op string) error {
	if !p.skipOp(op) {
		t := p.peek()
		return p.errorf(t.line, "expected %q, found %s", op, t)
	}
	return nil
}

func (p *parser) expectKind(k tokKind) (token, error) {
	t := p.peek()
	if t.kind != k {
		return t, p.errorf(t.line, "expected %s, found %s", k, t)
	}
	p.pos++
	return t, nil
}

func (p *parser) enter(line int) error {
	p.depth++
	if p.depth > maxNesting {
		return p.errorf(line, "nested more than %d levels deep", maxNesting)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// body parses nodes until EOF or a tag that is not a statement of its own
// (endif, else, ...), whose name it returns with pos on that tag's "{%".
func (p *parser) body() ([]node, string, error) {
	var nodes []node
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			return nodes, "", nil
		case tText:
			p.pos++
			nodes = append(nodes, &textNode{text: t.val, line: t.line})
		case tVarBegin:
			p.pos++
			x, err := p.expr()
			if err != nil {
				return nil, "", err
			}
			if _, err := p.expectKind(tVarEnd); err != nil {
				return nil, "", err
			}
			nodes = append(nodes, &outputNode{x: x, line: t.line})
		case tBlockBegin:
			tag := p.peekN(1)
			if tag.kind != tName {
				return nil, "", p.errorf(tag.line, "expected a tag name after {%%, found %s", tag)
			}
			if closesBody[tag.val] {
				return nodes, tag.val, nil
			}
			p.pos += 2
			n, err := p.statement(tag)
			if err != nil {
				return nil, "", err
			}
			if n != nil {
				nodes = append(nodes, n)
			}
		default:
			return nil, "", p.errorf(t.line, "unexpected %s", t)
		}
	}
}

// closesBody are the tags that end or split an enclosing statement's body.
var closesBody = map[string]bool{
	"elif": true, "else": true, "endif": true, "endfor": true, "endset": true, "endblock": true,
}

// unsupported are Jinja tags this engine does not implement.
var unsupported = map[string]bool{
	"macro": true, "call": true, "filter": true, "with": true, "autoescape": true, "import": true,
	"from": true, "do": true, "break": true, "continue": true, "trans": true, "endmacro": true,
	"endcall": true, "endfilter": true, "endwith": true, "endautoescape": true,
}

// subBody parses a statement's body up to one of the tags in ends, consumes
// that tag's "{% name" and returns the name.
func (p *parser) subBody(open token, ends ...string) ([]node, string, error) {
	if err := p.enter(open.line); err != nil {
		return nil, "", err
	}
	defer p.leave()
	nodes, end, err := p.body()
	if err != nil {
		return nil, "", err
	}
	for _, e := range ends {
		if end == e {
			p.pos += 2
			return nodes, end, nil
		}
	}
	want := `"` + strings.Join(ends, `" or "`) + `"`
	if end == "" {
		return nil, "", p.errorf(open.line, "{%% %s %%} is never closed (expected %s before the end of the template)", open.val, want)
	}
	return nil, "", p.errorf(p.peek().line, "unexpected {%% %s %%}: expected %s to close the {%% %s %%} at line %d", end, want, open.val, open.line)
}

func (p *parser) endTag() error {
	_, err := p.expectKind(tBlockEnd)
	return err
}

func (p *parser) statement(tag token) (node, error) {
	switch tag.val {
	case "if":
		return p.ifStmt(tag)
	case "for":
		return p.forStmt(tag)
	case "set":
		return p.setStmt(tag)
	case "include":
		return p.includeStmt(tag)
	case "extends":
		return p.extendsStmt(tag)
	case "block":
		return p.blockStmt(tag)
	}
	if unsupported[tag.val] {
		return nil, p.errorf(tag.line, "{%% %s %%} is not supported by this template engine", tag.val)
	}
	return nil, p.errorf(tag.line, "unknown tag {%% %s %%}", tag.val)
}

func (p *parser) ifStmt(tag token) (node, error) {
	n := &ifNode{line: tag.line}
	cond, err := p.expr()
	if err != nil {
		return nil, err
	}
	for {
		if err := p.endTag(); err != nil {
			return nil, err
		}
		body, end, err := p.subBody(tag, "elif", "else", "endif")
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, cond)
		n.bodies = append(n.bodies, body)
		switch end {
		case "elif":
			if cond, err = p.expr(); err != nil {
				return nil, err
			}
			continue
		case "else":
			if err := p.endTag(); err != nil {
				return nil, err
			}
			if n.elseBody, _, err = p.subBody(tag, "endif"); err != nil {
				return nil, err
			}
		}
		return n, p.endTag()
	}
}

func (p *parser) targets() ([]string, error) {
	var names []string
	paren := p.skipOp("(")
	for {
		t, err := p.expectKind(tName)
		if err != nil {
			return nil, err
		}
		names = append(names, t.val)
		if !p.skipOp(",") {
			break
		}
	}
	if paren {
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func (p *parser) forStmt(tag token) (node, error) {
	n := &forNode{line: tag.line}
	var err error
	if n.targets, err = p.targets(); err != nil {
		return nil, err
	}
	if !p.skipName("in") {
		return nil, p.errorf(p.peek().line, `expected "in" after the loop variable, found %s`, p.peek())
	}
	// The iterable is parsed without "x if y else z", so a trailing "if"
	// filters the items, as in Jinja.
	if n.iter, err = p.tupleOrExpr(true); err != nil {
		return nil, err
	}
	if p.skipName("if") {
		if n.filter, err = p.expr(); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, p.errorf(p.peek().line, "recursive loops are not supported by this template engine")
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	body, end, err := p.subBody(tag, "else", "endfor")
	if err != nil {
		return nil, err
	}
	n.body = body
	if end == "else" {
		if err := p.endTag(); err != nil {
			return nil, err
		}
		if n.elseBody, _, err = p.subBody(tag, "endfor"); err != nil {
			return nil, err
		}
	}
	return n, p.endTag()
}

func (p *parser) setStmt(tag token) (node, error) {
	n := &setNode{line: tag.line}
	var err error
	if n.targets, err = p.targets(); err != nil {
		return nil, err
	}
	if p.skipOp("=") {
		if n.value, err = p.tupleOrExpr(false); err != nil {
			return nil, err
		}
		return n, p.endTag()
	}
	if len(n.targets) != 1 {
		return nil, p.errorf(tag.line, "a block {%% set %%} assigns exactly one name")
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	if n.body, _, err = p.subBody(tag, "endset"); err != nil {
		return nil, err
	}
	return n, p.endTag()
}

func (p *parser) includeStmt(tag token) (node, error) {
	n := &includeNode{line: tag.line, withContext: true}
	var err error
	if n.name, err = p.expr(); err != nil {
		return nil, err
	}
	if p.isName("ignore") && p.peekN(1).kind == tName && p.peekN(1).val == "missing" {
		p.pos += 2
		n.ignoreMissing = true
	}
	if (p.isName("with") || p.isName("without")) && p.peekN(1).kind == tName && p.peekN(1).val == "context" {
		n.withContext = p.next().val == "with"
		p.pos++
	}
	p.addDep(n.name, tag.line, n.ignoreMissing)
	return n, p.endTag()
}

func (p *parser) extendsStmt(tag token) (node, error) {
	n := &extendsNode{line: tag.line}
	var err error
	if n.name, err = p.expr(); err != nil {
		return nil, err
	}
	p.addDep(n.name, tag.line, false)
	return n, p.endTag()
}

// addDep records a constant template name (or list of names) for Load.
func (p *parser) addDep(x expr, line int, ignoreMissing bool) {
	switch x := x.(type) {
	case *constExpr:
		if s, ok := x.v.(string); ok {
			p.p.deps = append(p.p.deps, dep{name: s, line: line, ignoreMissing: ignoreMissing})
		}
	case *listExpr:
		// A list includes the first name that exists: none is required.
		for _, item := range x.items {
			p.addDep(item, line, true)
		}
	}
}

func (p *parser) blockStmt(tag token) (node, error) {
	name, err := p.expectKind(tName)
	if err != nil {
		return nil, err
	}
	p.skipName("scoped")
	if p.isName("required") {
		return nil, p.errorf(p.peek().line, "required blocks are not supported by this template engine")
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	if prev, ok := p.p.blocks[name.val]; ok {
		return nil, p.errorf(tag.line, "block %q is already defined at line %d", name.val, prev.line)
	}
	n := &blockNode{name: name.val, owner: p.p, line: tag.line}
	p.p.blocks[name.val] = n
	if n.body, _, err = p.subBody(tag, "endblock"); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind == tName {
		if t.val != name.val {
			return nil, p.errorf(t.line, "{%% endblock %s %%} closes block %q", t.val, name.val)
		}
		p.pos++
	}
	return n, p.endTag()
}

// Expressions, by Jinja's precedence (lowest first): conditional, or, and,
// not, comparisons, + -, ~, * / // %, **, unary - +, then primaries with
// their postfix parts (. [] ()), filters (|) and tests (is).

func (p *parser) expr() (expr, error) { return p.condExpr(false) }

// tupleOrExpr parses "a, b" as a list (a tuple in Jinja), or one expression.
func (p *parser) tupleOrExpr(noCond bool) (expr, error) {
	line := p.peek().line
	x, err := p.condExpr(noCond)
	if err != nil || !p.isOp(",") {
		return x, err
	}
	items := []expr{x}
	for p.skipOp(",") {
		if p.peek().kind == tBlockEnd || (noCond && p.isName("if")) {
			break
		}
		y, err := p.condExpr(noCond)
		if err != nil {
			return nil, err
		}
		items = append(items, y)
	}
	return &listExpr{items: items, line: line}, nil
}

func (p *parser) condExpr(noCond bool) (expr, error) {
	if err := p.enter(p.peek().line); err != nil {
		return nil, err
	}
	defer p.leave()
	x, err := p.orExpr()
	if err != nil || noCond {
		return x, err
	}
	for p.isName("if") {
		line := p.next().line
		cond, err := p.orExpr()
		if err != nil {
			return nil, err
		}
		var els expr
		if p.skipName("else") {
			if els, err = p.condExpr(false); err != nil {
				return nil, err
			}
		}
		x = &condExpr{then: x, cond: cond, els: els, line: line}
	}
	return x, nil
}

func (p *parser) orExpr() (expr, error) {
	x, err := p.andExpr()
	for err == nil && p.isName("or") {
		line := p.next().line
		var y expr
		if y, err = p.andExpr(); err == nil {
			x = &binaryExpr{op: "or", l: x, r: y, line: line}
		}
	}
	return x, err
}

func (p *parser) andExpr() (expr, error) {
	x, err := p.notExpr()
	for err == nil && p.isName("and") {
		line := p.next().line
		var y expr
		if y, err = p.notExpr(); err == nil {
			x = &binaryExpr{op: "and", l: x, r: y, line: line}
		}
	}
	return x, err
}

func (p *parser) notExpr() (expr, error) {
	if p.isName("not") {
		line := p.next().line
		if err := p.enter(line); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.notExpr()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{op: "not", x: x, line: line}, nil
	}
	return p.compareExpr()
}

func (p *parser) compareExpr() (expr, error) {
	line := p.peek().line
	first, err := p.addExpr()
	if err != nil {
		return nil, err
	}
	c := &compareExpr{first: first, line: line}
	for {
		var op string
		t := p.peek()
		switch {
		case t.kind == tOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == "<=" || t.val == ">" || t.val == ">="):
			op = t.val
			p.pos++
		case p.isName("in"):
			op = "in"
			p.pos++
		case p.isName("not") && p.peekN(1).kind == tName && p.peekN(1).val == "in":
			op = "not in"
			p.pos += 2
		default:
			if len(c.ops) == 0 {
				return first, nil
			}
			return c, nil
		}
		y, err := p.addExpr()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, y)
	}
}

// binaryLevel parses one left-associative level of operators.
func (p *parser) binaryLevel(next func() (expr, error), opset ...string) (expr, error) {
	x, err := next()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind != tOp || !contains(opset, t.val) {
			return x, nil
		}
		p.pos++
		y, err := next()
		if err != nil {
			return nil, err
		}
		x = &binaryExpr{op: t.val, l: x, r: y, line: t.line}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (p *parser) addExpr() (expr, error) { return p.binaryLevel(p.concatExpr, "+", "-") }

func (p *parser) concatExpr() (expr, error) { return p.binaryLevel(p.mulExpr, "~") }

func (p *parser) mulExpr() (expr, error) { return p.binaryLevel(p.powExpr, "*", "/", "//", "%") }

func (p *parser) powExpr() (expr, error) {
	return p.binaryLevel(func() (expr, error) { return p.unary(true) }, "**")
}

func (p *parser) unary(withFilter bool) (expr, error) {
	t := p.peek()
	if err := p.enter(t.line); err != nil {
		return nil, err
	}
	defer p.leave()
	var x expr
	var err error
	if t.kind == tOp && (t.val == "-" || t.val == "+") {
		p.pos++
		var y expr
		if y, err = p.unary(false); err != nil {
			return nil, err
		}
		x = &unaryExpr{op: t.val, x: y, line: t.line}
	} else {
		if x, err = p.primary(); err != nil {
			return nil, err
		}
		if x, err = p.postfix(x); err != nil {
			return nil, err
		}
	}
	if withFilter {
		return p.filters(x)
	}
	return x, nil
}

func (p *parser) primary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tName:
		switch t.val {
		case "true", "True":
			return &constExpr{v: true, line: t.line}, nil
		case "false", "False":
			return &constExpr{v: false, line: t.line}, nil
		case "none", "None":
			return &constExpr{v: nil, line: t.line}, nil
		}
		return &nameExpr{name: t.val, line: t.line}, nil
	case tString:
		s := t.val
		for p.peek().kind == tString { // adjacent literals concatenate
			s += p.next().val
		}
		return &constExpr{v: s, line: t.line}, nil
	case tInt:
		n, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, p.errorf(t.line, "integer %s is too large", t.val)
		}
		return &constExpr{v: n, line: t.line}, nil
	case tFloat:
		f, err := strconv.ParseFloat(t.val, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, p.errorf(t.line, "number %s is out of range", t.val)
		}
		return &constExpr{v: f, line: t.line}, nil
	case tOp:
		switch t.val {
		case "(":
			if p.skipOp(")") {
				return &listExpr{line: t.line}, nil
			}
			x, err := p.expr()
			if err != nil {
				return nil, err
			}
			if !p.isOp(",") {
				return x, p.expectOp(")")
			}
			items := []expr{x}
			for p.skipOp(",") && !p.isOp(")") {
				y, err := p.expr()
				if err != nil {
					return nil, err
				}
				items = append(items, y)
			}
			return &listExpr{items: items, line: t.line}, p.expectOp(")")
		case "[":
			l := &listExpr{line: t.line}
			for !p.skipOp("]") {
				if len(l.items) > 0 {
					if err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.skipOp("]") {
						break
					}
				}
				x, err := p.expr()
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, x)
			}
			return l, nil
		case "{":
			d := &dictExpr{line: t.line}
			for !p.skipOp("}") {
				if len(d.keys) > 0 {
					if err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.skipOp("}") {
						break
					}
				}
				k, err := p.expr()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.expr()
				if err != nil {
					return nil, err
				}
				d.keys = append(d.keys, k)
				d.values = append(d.values, v)
			}
			return d, nil
		}
	}
	return nil, p.errorf(t.line, "unexpected %s", t)
}

func (p *parser) postfix(x expr) (expr, error) {
	for {
		t := p.peek()
		if t.kind != tOp {
			return x, nil
		}
		switch t.val {
		case ".":
			p.pos++
			a := p.next()
			switch a.kind {
			case tName:
				x = &attrExpr{x: x, name: a.val, line: a.line}
			case tInt:
				n, err := strconv.ParseInt(a.val, 10, 64)
				if err != nil {
					return nil, p.errorf(a.line, "integer %s is too large", a.val)
				}
				x = &itemExpr{x: x, key: &constExpr{v: n, line: a.line}, line: a.line}
			default:
				return nil, p.errorf(a.line, `expected a name after ".", found %s`, a)
			}
		case "[":
			p.pos++
			var err error
			if x, err = p.subscript(x, t.line); err != nil {
				return nil, err
			}
		case "(":
			p.pos++
			args, kwargs, err := p.callArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{fn: x, args: args, kwargs: kwargs, line: t.line}
		default:
			return x, nil
		}
	}
}

func (p *parser) subscript(x expr, line int) (expr, error) {
	var parts [3]expr
	i := 0
	isSlice := false
	for {
		if p.isOp(":") {
			isSlice = true
			p.pos++
			i++
			if i > 2 {
				return nil, p.errorf(line, "a slice has at most two colons")
			}
			continue
		}
		if p.skipOp("]") {
			break
		}
		if parts[i] != nil {
			return nil, p.errorf(p.peek().line, `expected ":" or "]", found %s`, p.peek())
		}
		y, err := p.expr()
		if err != nil {
			return nil, err
		}
		parts[i] = y
	}
	if !isSlice {
		if parts[0] == nil {
			return nil, p.errorf(line, "empty subscript []")
		}
		return &itemExpr{x: x, key: parts[0], line: line}, nil
	}
	return &sliceExpr{x: x, lo: parts[0], hi: parts[1], step: parts[2], line: line}, nil
}

// callArgs parses "(a, b, name=c)" after the "(".
func (p *parser) callArgs() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.skipOp(")") {
		if len(args)+len(kwargs) > 0 {
			if err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.skipOp(")") {
				break
			}
		}
		if t := p.peek(); t.kind == tName && p.peekN(1).kind == tOp && p.peekN(1).val == "=" {
			p.pos += 2
			x, err := p.expr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{name: t.val, x: x})
			continue
		}
		if len(kwargs) > 0 {
			return nil, nil, p.errorf(p.peek().line, "a positional argument follows a keyword argument")
		}
		x, err := p.expr()
		if err != nil {
			return nil, nil, err
		}
		args = append(args, x)
	}
	return args, kwargs, nil
}

func (p *parser) filters(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("|"):
			p.pos++
			name, err := p.expectKind(tName)
			if err != nil {
				return nil, err
			}
			if _, ok := filters[name.val]; !ok {
				return nil, p.errorf(name.line, "unknown filter %q", name.val)
			}
			f := &filterExpr{x: x, name: name.val, line: name.line}
			if p.skipOp("(") {
				if f.args, f.kwargs, err = p.callArgs(); err != nil {
					return nil, err
				}
			}
			x = f
		case p.isName("is"):
			line := p.next().line
			negate := p.skipName("not")
			name, err := p.expectKind(tName)
			if err != nil {
				return nil, err
			}
			if _, ok := tests[name.val]; !ok {
				return nil, p.errorf(name.line, "unknown test %q", name.val)
			}
			te := &testExpr{x: x, name: name.val, negate: negate, line: line}
			t := p.peek()
			switch {
			case p.isOp("("):
				p.pos++
				args, kwargs, err := p.callArgs()
				if err != nil {
					return nil, err
				}
				if len(kwargs) > 0 {
					return nil, p.errorf(line, "tests take no keyword arguments")
				}
				te.args = args
			case t.kind == tString || t.kind == tInt || t.kind == tFloat || p.isOp("[") || p.isOp("{") ||
				(t.kind == tName && t.val != "else" && t.val != "or" && t.val != "and" && t.val != "if"):
				// "x is divisibleby 3": one argument without parentheses.
				arg, err := p.primary()
				if err != nil {
					return nil, err
				}
				if arg, err = p.postfix(arg); err != nil {
					return nil, err
				}
				te.args = []expr{arg}
			}
			x = te
		default:
			return x, nil
		}
	}
}
