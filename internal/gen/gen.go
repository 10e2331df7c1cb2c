// Package gen writes the code that repeats once per callback, from the
// catalogue (luaapi.Catalogue): the engine's typed invokers and Has
// constants, the table `luahost call` dispatches through, and the LuaLS
// stubs of module_api (with luaapi.APIMembers). Run it with
// `go generate ./...` (engine/generate.go); TestGeneratedFilesAreCurrent
// fails when a checked-in file is stale.
package gen

import (
	"bytes"
	"fmt"
	"go/format"
	"strings"
	"text/template"
	"unicode"

	"github.com/luahost/luahost/luaapi"
)

// Files returns the generated files by path relative to the repository
// root.
func Files() (map[string][]byte, error) {
	out := map[string][]byte{}
	for path, tmpl := range map[string]*template.Template{
		"engine/invokers_gen.go":       invokersTmpl,
		"internal/invoke/calls_gen.go": callsTmpl,
	} {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, model()); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		src, err := format.Source(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", path, err, buf.Bytes())
		}
		out[path] = src
	}
	out["stdlib/types/module_api.lua"] = []byte(luaLSStubs())
	return out, nil
}

// cb is one callback as the templates see it.
type cb struct {
	*luaapi.Callback
	Const   string // CallbackCheckEventForSpam
	Var     string // cbCheckEventForSpam
	Params  []param
	Returns string // Go result list
	Zero    string // the answer of a nil engine
	Body    string // the invoker's body
	Fire    bool   // a notification: also a Fire method
	Call    string // the CLI table entry's body
}

type param struct {
	Name, Type string
	Arg        luaapi.Arg
}

func model() []cb {
	var out []cb
	for _, cat := range luaapi.Catalogue {
		for _, c := range cat.Callbacks {
			out = append(out, build(c))
		}
	}
	return out
}

// converters turn firstValue's Go value into a typed result.
var converters = map[string]string{
	"map[string]any":     "toMapResult",
	"[]MediaUploadLimit": "toMediaUploadLimits",
	"*RatelimitOverride": "toRatelimitOverride",
}

func build(c *luaapi.Callback) cb {
	m := cb{Callback: c, Const: "Callback" + c.Go, Var: "cb" + c.Go}
	var names, luaArgs []string
	for _, a := range c.Args {
		p := param{Name: goName(a.Name), Type: a.GoType(), Arg: a}
		m.Params = append(m.Params, p)
		names = append(names, p.Name)
		switch {
		case a.Kind == luaapi.KindOptStr, a.Late && a.Kind == luaapi.KindString:
			// A late argument the caller left out arrives as nil, as
			// Synapse calls modules written before it existed.
			luaArgs = append(luaArgs, "opt("+p.Name+")")
		case a.Kind == luaapi.KindOptTable, a.Late && a.Kind == luaapi.KindTable:
			luaArgs = append(luaArgs, "optMap("+p.Name+")")
		case a.Kind == luaapi.KindFile:
			luaArgs = append(luaArgs, "mediaFile("+p.Name+")")
		case a.Kind == luaapi.KindRequest:
			luaArgs = append(luaArgs, "e.luaRequest("+p.Name+")")
		case a.Late:
			panic("gen: no way to leave out late argument " + a.Name + " of " + c.ID())
		default:
			luaArgs = append(luaArgs, p.Name)
		}
	}
	args := "argsOf(" + strings.Join(luaArgs, ", ") + ")"
	v := m.Var
	switch c.Combine {
	case luaapi.CombineSpam:
		m.Returns, m.Zero = "(SpamDecision, error)", "NotSpam, nil"
		m.Body = fmt.Sprintf("return e.spam(ctx, %s, %s)", v, args)
	case luaapi.CombineSpamThenInvite:
		m.Returns, m.Zero = "(SpamDecision, error)", "NotSpam, nil"
		m.Body = fmt.Sprintf("return e.spamThenInvite(ctx, %s, %s)", v, names[0])
	case luaapi.CombineFirstTrue:
		m.Returns, m.Zero = "(bool, error)", "false, nil"
		m.Body = fmt.Sprintf("return e.firstBool(ctx, %s, true, %s)", v, args)
	case luaapi.CombineFirstFalse:
		m.Returns, m.Zero = "(bool, error)", "true, nil"
		m.Body = fmt.Sprintf("return e.firstBool(ctx, %s, false, %s)", v, args)
	case luaapi.CombineRegistration:
		m.Returns, m.Zero = "(RegistrationBehaviour, error)", "RegistrationAllow, nil"
		m.Body = fmt.Sprintf("return e.registration(ctx, %s, %s)", v, args)
	case luaapi.CombineEventAllowed:
		m.Returns, m.Zero = "(EventDecision, error)", "EventDecision{}, nil"
		m.Body = fmt.Sprintf("return e.eventAllowed(ctx, %s, %s)", v, strings.Join(names, ", "))
	case luaapi.CombineChain:
		m.Returns, m.Zero = "(map[string]any, error)", names[1]+", nil"
		m.Body = fmt.Sprintf("return e.chain(ctx, %s, %s)", v, strings.Join(names, ", "))
	case luaapi.CombineNotify:
		m.Returns, m.Zero = "error", "nil"
		m.Body = fmt.Sprintf("return e.notify(ctx, %s, %s)", v, args)
		m.Fire = true
	case luaapi.CombineFirstValue:
		conv := converters[c.Result]
		if conv == "" {
			panic("gen: no converter for result type " + c.Result + " of " + c.ID())
		}
		m.Returns, m.Zero = "("+c.Result+", error)", "nil, nil"
		m.Body = fmt.Sprintf("return %s(e.firstValue(ctx, %s, %s))", conv, v, args)
	case luaapi.CombineOpinion:
		m.Returns, m.Zero = "(value, decided bool, err error)", "false, false, nil"
		m.Body = fmt.Sprintf("return e.opinion(ctx, %s, %s)", v, args)
	case luaapi.CombineFirstString:
		m.Returns, m.Zero = "(s string, ok bool, err error)", `"", false, nil`
		m.Body = fmt.Sprintf("return e.firstString(ctx, %s, %s)", v, args)
	case luaapi.CombineAuth:
		m.Returns, m.Zero = "(*AuthResult, error)", "nil, nil"
		if c.Name == "auth_checkers" {
			// The login dict goes in last, cut to each checker's fields.
			m.Body = fmt.Sprintf("return e.auth(ctx, %s, %s, %s, %s)", v, names[1], names[2], strings.Join(names[:2], ", "))
		} else {
			m.Body = fmt.Sprintf(`return e.auth(ctx, %s, "", nil, %s)`, v, strings.Join(names, ", "))
		}
	case luaapi.CombineMergeStates:
		m.Returns, m.Zero = "(map[string][]map[string]any, error)", "map[string][]map[string]any{}, nil"
		m.Body = fmt.Sprintf("return e.mergeStates(ctx, %s, %s)", v, names[0])
	case luaapi.CombineUnionUsers:
		m.Returns, m.Zero = "(InterestedUsers, error)", "InterestedUsers{}, nil"
		m.Body = fmt.Sprintf("return e.unionUsers(ctx, %s, %s)", v, names[0])
	case luaapi.CombineMergeFields:
		m.Returns, m.Zero = "(map[string]any, error)", "map[string]any{}, nil"
		m.Body = fmt.Sprintf("return e.mergeFields(ctx, %s, %s)", v, names[0])
	case luaapi.CombineBatch:
		m.Returns, m.Zero = "(*UpdateBatch, error)", "nil, nil"
		m.Body = fmt.Sprintf("return e.batch(ctx, %s, %s)", v, args)
	case luaapi.CombineBatchSize:
		m.Returns, m.Zero = "(int, error)", "100, nil"
		m.Body = fmt.Sprintf("return e.batchSize(ctx, %s, %s)", v, args)
	case luaapi.CombineLegacyRenew:
		m.Returns, m.Zero = "(*LegacyRenewal, error)", "nil, nil"
		m.Body = fmt.Sprintf("return e.legacyRenew(ctx, %s, %s)", v, args)
	case luaapi.CombineFirstInteger:
		m.Returns, m.Zero = "(n int64, ok bool, err error)", "0, false, nil"
		m.Body = fmt.Sprintf("return e.firstInteger(ctx, %s, %s)", v, args)
	default:
		panic("gen: no invoker shape for the combine rule of " + c.ID())
	}
	m.Call = callBody(m, names)
	return m
}

// callBody is the `luahost call` table entry: decode the JSON arguments
// into the invoker's types, call it, hand back what to print.
func callBody(m cb, names []string) string {
	var b strings.Builder
	var ptrs []string
	for _, p := range m.Params {
		typ := qualify(p.Type)
		if p.Arg.Kind == luaapi.KindFile {
			// From the command line a file is its content as a JSON string.
			fmt.Fprintf(&b, "var %sContent string\n", p.Name)
			ptrs = append(ptrs, "&"+p.Name+"Content")
			continue
		}
		if p.Arg.Kind == luaapi.KindRequest {
			// From the command line a request is its JSON body.
			fmt.Fprintf(&b, "var %sBody json.RawMessage\n", p.Name)
			ptrs = append(ptrs, "&"+p.Name+"Body")
			continue
		}
		fmt.Fprintf(&b, "var %s %s\n", p.Name, typ)
		ptrs = append(ptrs, "&"+p.Name)
	}
	fmt.Fprintf(&b, "if err := decodeArgs(cb, raw, %s); err != nil {\nreturn nil, err\n}\n", strings.Join(ptrs, ", "))
	for _, p := range m.Params {
		switch p.Arg.Kind {
		case luaapi.KindFile:
			fmt.Fprintf(&b, "%s := func() ([]byte, error) { return []byte(%sContent), nil }\n", p.Name, p.Name)
		case luaapi.KindRequest:
			fmt.Fprintf(&b, "%s := jsonRequest(%sBody)\n", p.Name, p.Name)
		}
	}
	call := fmt.Sprintf("e.%s(ctx, %s)", m.Go, strings.Join(names, ", "))
	switch m.Combine {
	case luaapi.CombineOpinion, luaapi.CombineFirstString, luaapi.CombineFirstInteger:
		fmt.Fprintf(&b, "v, ok, err := %s\nif !ok {\nreturn nil, err\n}\nreturn v, err", call)
	case luaapi.CombineBatch:
		fmt.Fprintf(&b, "u, err := %s\nif err == nil {\nerr = u.Done(ctx)\n}\nreturn u, err", call)
	case luaapi.CombineNotify:
		fmt.Fprintf(&b, "return nil, %s", call)
	default:
		fmt.Fprintf(&b, "return %s", call)
	}
	return b.String()
}

// qualify prefixes the engine's own types for code outside the package.
func qualify(t string) string {
	var b strings.Builder
	for i := 0; i < len(t); {
		j := i
		for j < len(t) && (unicode.IsLetter(rune(t[j])) || unicode.IsDigit(rune(t[j]))) {
			j++
		}
		if j == i {
			b.WriteByte(t[i])
			i++
			continue
		}
		word := t[i:j]
		if unicode.IsUpper(rune(word[0])) {
			b.WriteString("engine.")
		}
		b.WriteString(word)
		i = j
	}
	return b.String()
}

// goName is the Go parameter name of a snake_case argument.
func goName(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		switch {
		case i == 0:
		case p == "id":
			parts[i] = "ID"
		default:
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

func docLine(c cb) string {
	return fmt.Sprintf("%s %s (%s).", c.Go, c.Doc, c.ID())
}

var funcs = template.FuncMap{"doc": docLine, "join": strings.Join}

var invokersTmpl = template.Must(template.New("invokers").Funcs(funcs).Parse(`// Code generated by go run ./internal/gen/cmd; DO NOT EDIT.

package engine

import (
	"context"
	"net/http"

	"github.com/luahost/luahost/luaapi"
)

// Callback names one callback of the catalogue, for Has.
type Callback int

// The callbacks, one constant each.
const (
{{- range $i, $c := .}}
	// {{$c.Const}} is {{$c.ID}}.
	{{$c.Const}}{{if eq $i 0}} Callback = iota + 1{{end}}
{{- end}}
)

var callbacks = [...]*luaapi.Callback{
	nil,
{{- range .}}
	luaapi.MustCallback("{{.ID}}"),
{{- end}}
}

var (
{{- range .}}
	{{.Var}} = callbacks[{{.Const}}]
{{- end}}
)

// String is the callback's "category.name".
func (c Callback) String() string {
	if c <= 0 || int(c) >= len(callbacks) {
		return "unknown callback"
	}
	return callbacks[c].ID()
}
{{range .}}
// {{doc .}}
//
// Combine: {{.CombineText}}. On a module's error: {{.OnError}}.
func (e *Engine) {{.Go}}(ctx context.Context{{range .Params}}, {{.Name}} {{.Type}}{{end}}) {{.Returns}} {
	if e == nil {
		return {{.Zero}}
	}
	{{.Body}}
}
{{if .Fire}}
// Fire{{.Go}} queues {{.Go}} and returns at once; it reports false when
// the notification queue was full and the notification was dropped.
func (e *Engine) Fire{{.Go}}({{range $i, $p := .Params}}{{if $i}}, {{end}}{{$p.Name}} {{$p.Type}}{{end}}) bool {
	if e == nil {
		return true
	}
	return e.fire({{.Var}}, func(ctx context.Context) error { return e.{{.Go}}(ctx{{range .Params}}, {{.Name}}{{end}}) })
}
{{end}}
{{- end}}
`))

var callsTmpl = template.Must(template.New("calls").Funcs(funcs).Parse(`// Code generated by go run ./internal/gen/cmd; DO NOT EDIT.

package invoke

import (
	"context"
	"encoding/json"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/luaapi"
)

// calls runs each callback for ` + "`luahost call`" + `: the JSON arguments decoded
// into the typed invoker's parameters, the combined answer returned.
var calls = map[string]func(e *engine.Engine, ctx context.Context, cb *luaapi.Callback, raw []json.RawMessage) (any, error){
{{- range .}}
	"{{.ID}}": func(e *engine.Engine, ctx context.Context, cb *luaapi.Callback, raw []json.RawMessage) (any, error) {
		{{.Call}}
	},
{{- end}}
}
`))
