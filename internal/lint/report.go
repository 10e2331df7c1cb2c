package lint

import (
	"fmt"
	"sort"
	"strings"
)

// report turns what the walk recorded into findings.
func (w *walker) report() []finding {
	var out []finding
	w.decideAPI()

	// What the chunk itself defines: globals it assigns, and fields it
	// assigns on globals (function string.trim(s) ... end).
	assigned := map[string]bool{}
	fieldAssigned := map[string]bool{}
	fieldNames := map[string][]string{} // "string" -> the fields the script adds to it
	var assignedNames []string
	for _, g := range w.globals {
		if !g.write {
			continue
		}
		if len(g.path) == 1 || len(g.path) == 2 && g.path[0] == "_G" {
			// _G.name = v is a deliberate global: defined, not warned.
			name := g.path[len(g.path)-1]
			if !assigned[name] {
				assigned[name] = true
				assignedNames = append(assignedNames, name)
			}
		}
		if len(g.path) > 1 {
			name := strings.Join(g.path, ".")
			if !fieldAssigned[name] {
				fieldAssigned[name] = true
				parent := strings.Join(g.path[:len(g.path)-1], ".")
				if len(fieldNames[parent]) < maxLocalCandidates {
					fieldNames[parent] = append(fieldNames[parent], g.path[len(g.path)-1])
				}
			}
		}
	}
	if len(assignedNames) > maxLocalCandidates {
		assignedNames = assignedNames[:maxLocalCandidates]
	}
	var globalNames []string
	for name := range w.env.Globals {
		globalNames = append(globalNames, name)
	}
	sug := &suggester{cache: map[suggestKey]string{}, budget: maxSuggestions}

	for _, g := range w.globals {
		root := g.path[0]
		if g.write && len(g.path) == 1 {
			how := "local " + root
			if g.funcDef {
				how = "local function " + root
			}
			out = append(out, finding{line: g.lines[0], code: CodeGlobalWrite, match: g.path,
				msg: fmt.Sprintf("assignment to global %q: use %s (globals are shared by every callback of the module)", root, how)})
			continue
		}
		if w.env.Globals == nil || assigned[root] {
			continue
		}
		read := len(g.path)
		if g.write {
			read-- // a.b = v reads a, assigns its field b
		}
		fields := w.env.Globals
		for i := 0; i < read && fields != nil; i++ {
			name := strings.Join(g.path[:i+1], ".")
			if i > 0 && fieldAssigned[name] {
				break
			}
			sub, ok := fields[g.path[i]]
			if ok {
				fields = sub
				continue
			}
			f := finding{line: g.lines[i], match: g.path[:i+1]}
			if why, removed := sandboxRemoved[name]; removed {
				f.code = CodeSandboxGlobal
				f.msg = name + " is not available in the luahost sandbox" + why
			} else {
				f.code = CodeUndefinedGlobal
				f.msg = name + " is not defined"
				if note, ok := notLua51[name]; ok {
					f.msg += note
				} else {
					parent := strings.Join(g.path[:i], ".")
					s := sug.get(g.path[i], parent, g.locals, func() []string {
						if i == 0 {
							return append(append(append([]string(nil), globalNames...), assignedNames...), g.locals...)
						}
						return append(keys(fields), fieldNames[parent]...)
					})
					if s != "" {
						f.msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(append(g.path[:i:i], s), "."))
					}
				}
			}
			out = append(out, f)
			break
		}
	}

	if w.env.API != nil {
		// Members the script assigns on the api table are its own: reads
		// of them are not reported (and the writes are allowed).
		written := map[string]bool{}
		for _, m := range w.members {
			if m.b.isAPI && m.write {
				written[strings.Join(m.path[1:], ".")] = true
			}
		}
		for _, m := range w.members {
			if !m.b.isAPI {
				continue
			}
			elems := m.path[1:]
			read := len(elems)
			if m.write {
				read--
			}
			fields := w.env.API
			for i := 0; i < read && fields != nil; i++ {
				if written[strings.Join(elems[:i+1], ".")] {
					break
				}
				sub, ok := fields[elems[i]]
				if ok {
					fields = sub
					continue
				}
				name := strings.Join(m.path[:i+2], ".")
				msg := name + " is not a module_api member"
				if note, ok := notPorted[elems[i]]; ok && i == 0 {
					msg += note
				} else if s := sug.get(elems[i], "api."+strings.Join(elems[:i], "."), nil, func() []string { return keys(fields) }); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(append(m.path[:i+1:i+1], s), "."))
				}
				out = append(out, finding{line: m.lines[i+1], code: CodeUnknownAPIMember, msg: msg, match: m.path[:i+2]})
				break
			}
		}
	}
	return out
}

// decideAPI marks the locals that hold the api table: given it directly
// (constructor parameter, require("module_api"), a parameter named api) or
// only through other such locals, and never anything else. A local given
// api here and a table there is not checked: better silent than wrong.
func (w *walker) decideAPI() {
	var queue []*binding
	for _, b := range w.all {
		if b.otherSrc || !b.apiSrc && len(b.aliases) == 0 {
			continue
		}
		b.pending = len(b.aliases)
		for _, a := range b.aliases {
			a.dependent = append(a.dependent, b)
		}
		if b.pending == 0 {
			b.isAPI = true
			queue = append(queue, b)
		}
	}
	for len(queue) > 0 {
		a := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, b := range a.dependent {
			b.pending--
			if b.pending == 0 && !b.isAPI {
				b.isAPI = true
				queue = append(queue, b)
			}
		}
	}
}

func keys(f Fields) []string {
	out := make([]string, 0, len(f))
	for k := range f {
		if !strings.HasPrefix(k, "__") { // metamethods are not what anyone meant
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// maxSuggestions bounds the "did you mean" searches for one file, so a
// hostile file of a million misspellings costs a bounded amount of work;
// later findings just have no suggestion.
const maxSuggestions = 2000

type suggestKey struct {
	name, parent string
	locals       *string // identifies the locals-in-scope list (shared per scope)
}

// suggester caches Suggest per name and candidate set.
type suggester struct {
	cache  map[suggestKey]string
	budget int
}

func (s *suggester) get(name, parent string, locals []string, cands func() []string) string {
	key := suggestKey{name: name, parent: parent}
	if len(locals) > 0 {
		key.locals = &locals[0]
	}
	if v, ok := s.cache[key]; ok {
		return v
	}
	if s.budget <= 0 {
		return ""
	}
	s.budget--
	v := Suggest(name, cands())
	s.cache[key] = v
	return v
}
