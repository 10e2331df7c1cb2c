package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/jinja"
	"github.com/luahost/luahost/internal/sandbox"
)

// api.read_templates(names [, folder]): Synapse's ModuleApi.read_templates
// over internal/jinja. Templates come from the module's own folder (or a
// subfolder of it), never from anywhere else: from disk through an
// os.Root, which also refuses symbolic links leading out of the folder,
// or through fs.Sub of an embedder's Options.FS. The files a load reads
// become part of what the generation was built from, so editing a
// template reloads the module like editing its script.
//
// Rendering runs on the module's goroutine without yielding (a render is
// bounded by jinja's step and size limits and stops at the call's
// deadline), so render works everywhere, also where host calls cannot.

// installTemplates adds api.read_templates to instance i of g.
func (e *Engine) installTemplates(L *lua.LState, api *lua.LTable, g *generation, i int) {
	moduleDir := path.Dir(g.cfg.Module)
	opts := jinja.Options{
		Globals:       map[string]any{"server_name": e.host.ServerName()},
		PublicBaseURL: e.site.publicBaseURL,
	}
	api.RawSetString("read_templates", L.NewFunction(sandbox.MethodTolerant(api, func(L *lua.LState) int {
		fail := func(format string, args ...any) {
			sandbox.RaiseAtScript(L, "read_templates: "+format, args...)
		}
		names := templateNames(L, fail)
		folder := ""
		switch v := L.Get(2).(type) {
		case *lua.LNilType:
		case lua.LString:
			folder = string(v)
		default:
			fail("bad argument #2 (folder): string expected, got %s", v.Type().String())
		}
		dir, err := templateDir(moduleDir, folder)
		if err != nil {
			fail("bad argument #2 (folder): %v", err)
		}
		fsys, err := e.templateFS(g, dir)
		if err != nil {
			fail("%v", err)
		}
		if g.recording && i == 1 {
			fsys = &recordingFS{inner: fsys, dir: dir, g: g}
		}
		ts, err := jinja.LoadWithOptions(fsys, names, opts)
		if err != nil {
			fail("%v", prefixTemplateError(err, dir))
		}
		out := L.CreateTable(len(ts), 0)
		for _, t := range ts {
			out.Append(pushTemplate(L, t, dir))
		}
		L.Push(out)
		return 1
	})))
}

// templateNames reads read_templates' first argument: an array of names.
func templateNames(L *lua.LState, fail func(string, ...any)) []string {
	t, ok := L.Get(1).(*lua.LTable)
	if !ok {
		hint := ""
		if _, isStr := L.Get(1).(lua.LString); isStr {
			hint = ` (a list, as in Synapse: api.read_templates({"name.html"}))`
		}
		fail("bad argument #1 (filenames): array of template names expected, got %s%s", L.Get(1).Type().String(), hint)
	}
	names := make([]string, 0, t.Len())
	for j := 1; j <= t.Len(); j++ {
		s, ok := t.RawGetInt(j).(lua.LString)
		if !ok {
			fail("bad argument #1 (filenames): element %d must be a string, got %s", j, t.RawGetInt(j).Type().String())
		}
		names = append(names, string(s))
	}
	if len(names) == 0 {
		fail("bad argument #1 (filenames): no template names")
	}
	return names
}

// templateDir is the slash path, inside the scripts' folder, of folder
// under the module's own folder; folder may not leave it.
func templateDir(moduleDir, folder string) (string, error) {
	if folder == "" {
		return moduleDir, nil
	}
	clean := path.Clean(strings.ReplaceAll(folder, `\`, "/"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") || strings.ContainsRune(folder, 0) {
		return "", fmt.Errorf("%q must be a folder inside the module's folder", folder)
	}
	return path.Join(moduleDir, clean), nil
}

// templateFS returns the folder dir (a slash path inside the scripts'
// folder) as a confined fs.FS, opened once per generation.
func (e *Engine) templateFS(g *generation, dir string) (fs.FS, error) {
	if e.scriptDir == "" {
		sub, err := fs.Sub(e.fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("template folder %s: %w", dir, err)
		}
		return sub, nil
	}
	g.resMu.Lock()
	defer g.resMu.Unlock()
	if g.roots == nil {
		g.roots = map[string]*os.Root{}
	}
	if r := g.roots[dir]; r != nil {
		return r.FS(), nil
	}
	r, err := os.OpenRoot(filepath.Join(e.scriptDir, filepath.FromSlash(dir)))
	if err != nil {
		return nil, fmt.Errorf("template folder %s: %w", dir, unwrapPathError(err))
	}
	g.roots[dir] = r
	g.resources = append(g.resources, r)
	return r.FS(), nil
}

// unwrapPathError drops the absolute path an *fs.PathError carries: the
// message names the folder relative to the config instead.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// prefixTemplateError makes a template error name files from the config's
// folder (templates/notice.html:3), as a script error names its file.
func prefixTemplateError(err error, dir string) error {
	var je *jinja.Error
	if !errors.As(err, &je) || dir == "." {
		return err
	}
	c := *je
	c.File = path.Join(dir, je.File)
	c.IncludedFrom = make([]string, len(je.IncludedFrom))
	for i, at := range je.IncludedFrom {
		c.IncludedFrom[i] = path.Join(dir, at)
	}
	return &c
}

// templateProxy is a template as a script holds it.
type templateProxy struct {
	t      *jinja.Template
	dir    string
	render lua.LValue // bound on first use: t.render(vars) works as t:render(vars)
}

func pushTemplate(L *lua.LState, t *jinja.Template, dir string) lua.LValue {
	ud := L.NewUserData()
	ud.Value = &templateProxy{t: t, dir: dir}
	ud.Metatable = templateMeta(L)
	return ud
}

func templateOf(v lua.LValue) (*templateProxy, bool) {
	if ud, ok := v.(*lua.LUserData); ok {
		p, ok := ud.Value.(*templateProxy)
		return p, ok
	}
	return nil, false
}

// renderFunc is a template's render, bound to it: Synapse modules call
// template.render(**vars), so t.render(vars) and t:render(vars) both work.
func (p *templateProxy) renderFunc(L *lua.LState) lua.LValue {
	if p.render != nil {
		return p.render
	}
	p.render = L.NewFunction(func(L *lua.LState) int {
		at := 1
		if q, ok := templateOf(L.Get(1)); ok && q == p {
			at = 2
		}
		vars := map[string]any{}
		switch v := L.Get(at).(type) {
		case *lua.LNilType:
		case *lua.LTable:
			m, err := luaObject(L, v)
			if err != nil {
				sandbox.RaiseAtScript(L, "render: bad argument (vars): %v", err)
			}
			vars = m
		default:
			sandbox.RaiseAtScript(L, "render: bad argument (vars): table expected, got %s", v.Type().String())
		}
		ctx := L.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		s, err := p.t.RenderContext(ctx, vars)
		if err != nil {
			sandbox.RaiseAtScript(L, "render: %v", prefixTemplateError(err, p.dir))
		}
		L.Push(lua.LString(s))
		return 1
	})
	return p.render
}

func templateMeta(L *lua.LState) *lua.LTable {
	mt, built := proxyMeta(L, "template", "a template is read-only")
	if built {
		return mt
	}
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		p, _ := templateOf(L.Get(1))
		switch L.CheckString(2) {
		case "render":
			L.Push(p.renderFunc(L))
		case "name":
			L.Push(lua.LString(p.t.Name()))
		default:
			L.Push(lua.LNil)
		}
		return 1
	}))
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		p, _ := templateOf(L.Get(1))
		L.Push(lua.LString("template " + path.Join(p.dir, p.t.Name())))
		return 1
	}))
	return mt
}

// recordingFS notes every template a module's load reads in the
// generation's sources, as the script loader does for required files.
type recordingFS struct {
	inner fs.FS
	dir   string
	g     *generation
}

// maxRecorded bounds what one recorded file may hold; jinja refuses a
// larger template anyway.
const maxRecorded = 1<<20 + 1

func (r *recordingFS) Open(name string) (fs.File, error) {
	f, err := r.inner.Open(name)
	p := path.Join(r.dir, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			r.g.sources[p] = nil
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecorded))
	if err != nil {
		return nil, err
	}
	if data == nil {
		data = []byte{}
	}
	r.g.sources[p] = data
	return &memFile{Reader: bytes.NewReader(data), st: st}, nil
}

// memFile is a file read into memory.
type memFile struct {
	*bytes.Reader
	st fs.FileInfo
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.st, nil }
func (f *memFile) Close() error               { return nil }
