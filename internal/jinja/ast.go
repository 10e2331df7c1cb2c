package jinja

// Statements.

type node interface{ nodeLine() int }

type textNode struct {
	text string
	line int
}

type outputNode struct {
	x    expr
	line int
}

type ifNode struct {
	conds    []expr
	bodies   [][]node
	elseBody []node
	line     int
}

type forNode struct {
	targets  []string
	iter     expr
	filter   expr // "for x in xs if cond"; nil when absent
	body     []node
	elseBody []node
	line     int
}

type setNode struct {
	targets []string
	value   expr   // nil for a block set
	body    []node // "{% set x %}...{% endset %}"
	line    int
}

type includeNode struct {
	name          expr
	ignoreMissing bool
	withContext   bool
	line          int
}

type extendsNode struct {
	name expr
	line int
}

type blockNode struct {
	name  string
	body  []node
	owner *parsed // the template whose file the block is written in
	line  int
}

func (n *textNode) nodeLine() int    { return n.line }
func (n *outputNode) nodeLine() int  { return n.line }
func (n *ifNode) nodeLine() int      { return n.line }
func (n *forNode) nodeLine() int     { return n.line }
func (n *setNode) nodeLine() int     { return n.line }
func (n *includeNode) nodeLine() int { return n.line }
func (n *extendsNode) nodeLine() int { return n.line }
func (n *blockNode) nodeLine() int   { return n.line }

// Expressions.

type expr interface{ exprLine() int }

type constExpr struct {
	v    any
	line int
}

type nameExpr struct {
	name string
	line int
}

type listExpr struct {
	items []expr
	line  int
}

type dictExpr struct {
	keys, values []expr
	line         int
}

type attrExpr struct { // x.name
	x    expr
	name string
	line int
}

type itemExpr struct { // x[key]
	x, key expr
	line   int
}

type sliceExpr struct { // x[lo:hi:step], each part may be nil
	x, lo, hi, step expr
	line            int
}

type callExpr struct {
	fn     expr
	args   []expr
	kwargs []kwarg
	line   int
}

type kwarg struct {
	name string
	x    expr
}

type filterExpr struct {
	x      expr
	name   string
	args   []expr
	kwargs []kwarg
	line   int
}

type testExpr struct {
	x      expr
	name   string
	args   []expr
	negate bool
	line   int
}

type unaryExpr struct { // -x, +x, not x
	op   string
	x    expr
	line int
}

type binaryExpr struct { // arithmetic, ~, and, or
	op   string
	l, r expr
	line int
}

type compareExpr struct { // a < b <= c ... ; ops include "in" and "not in"
	first expr
	ops   []string
	rest  []expr
	line  int
}

type condExpr struct { // then if cond else els
	then, cond, els expr // els may be nil
	line            int
}

func (e *constExpr) exprLine() int   { return e.line }
func (e *nameExpr) exprLine() int    { return e.line }
func (e *listExpr) exprLine() int    { return e.line }
func (e *dictExpr) exprLine() int    { return e.line }
func (e *attrExpr) exprLine() int    { return e.line }
func (e *itemExpr) exprLine() int    { return e.line }
func (e *sliceExpr) exprLine() int   { return e.line }
func (e *callExpr) exprLine() int    { return e.line }
func (e *filterExpr) exprLine() int  { return e.line }
func (e *testExpr) exprLine() int    { return e.line }
func (e *unaryExpr) exprLine() int   { return e.line }
func (e *binaryExpr) exprLine() int  { return e.line }
func (e *compareExpr) exprLine() int { return e.line }
func (e *condExpr) exprLine() int    { return e.line }
