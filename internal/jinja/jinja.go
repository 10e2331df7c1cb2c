// Package jinja renders the Jinja2 templates of Synapse modules
// (ModuleApi.read_templates) unchanged: a subset of Jinja2 large enough for
// Synapse's and its modules' email and web templates, with Synapse's
// environment (autoescape for .html/.htm/.xml, the format_ts, mxc_to_http and
// localpart_from_email filters, globals such as server_name), bounded so a
// hostile template can neither hang nor exhaust memory, and confined to one
// fs.FS.
//
// Supported: {{ }} with filters and "is" tests; literals (strings, numbers,
// lists, dicts, tuples); . and [] access, slices, calls of a few dict and str
// methods and of range, dict and super; arithmetic, ~, %-formatting,
// comparisons, in, not, and, or, "x if c else y"; {% if/elif/else %},
// {% for %} (unpacking, an "if" filter, {% else %}, loop.index and the rest),
// {% set %} (also the block form), {% include %} (a list of names, ignore
// missing, with/without context), {% extends %}/{% block %} with super(),
// {% raw %}, {# comments #} and whitespace control ({%- -%}). Not supported,
// reported at load time: macros, call blocks, {% filter %}, {% with %},
// imports, recursive loops.
//
// Differences from Jinja2 a template may notice: a map's keys are visited in
// sorted order (Lua tables have no order); integers beyond 64 bits become
// floats; an include cycle is an error even when a condition would have
// ended it.
package jinja

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"
)

// Error is a template error: the file and line, and what is wrong.
type Error struct {
	File string
	Line int
	Msg  string
	// IncludedFrom lists "file:line" of the include/extends tags that led to
	// File, innermost first.
	IncludedFrom []string
	Err          error // a limit error (ErrOutputTooLarge ...) or nil
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	for _, at := range e.IncludedFrom {
		s += " (included from " + at + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// The limits a render stops at; the *Error that reports one (naming the file
// and line) wraps it, for errors.Is.
var (
	ErrOutputTooLarge = errors.New("output too large")
	ErrTooManySteps   = errors.New("too many evaluation steps")
	ErrTooDeep        = errors.New("templates nested too deeply")
)

// Options configures loading and rendering; the zero value is usable.
type Options struct {
	// Globals are variables every template sees (Synapse sets server_name);
	// Render's vars shadow them.
	Globals map[string]any
	// PublicBaseURL is the homeserver's public_baseurl, ending in "/", for
	// the mxc_to_http filter (an error when empty, as in Synapse).
	PublicBaseURL string
	// Location is the time zone of format_ts; default time.Local, as
	// Synapse's time.localtime.
	Location *time.Location
	// MaxOutputBytes caps a render's output and any string it builds.
	// Default 1 MiB.
	MaxOutputBytes int
	// MaxSteps caps the work of one render: every tag, expression and loop
	// iteration is a step. Default 1,000,000.
	MaxSteps int
	// MaxDepth caps the nesting of include and extends. Default 16.
	MaxDepth int
	// MaxTemplateBytes caps the size of one template file. Default 1 MiB.
	MaxTemplateBytes int
}

const (
	defaultMaxOutput   = 1 << 20
	defaultMaxSteps    = 1_000_000
	defaultMaxDepth    = 16
	defaultMaxTemplate = 1 << 20
)

func (o Options) withDefaults() Options {
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = defaultMaxOutput
	}
	if o.MaxSteps <= 0 {
		o.MaxSteps = defaultMaxSteps
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = defaultMaxDepth
	}
	if o.MaxTemplateBytes <= 0 {
		o.MaxTemplateBytes = defaultMaxTemplate
	}
	return o
}

// Template is one loaded template. Render may be called from several
// goroutines at once.
type Template struct {
	set *templateSet
	p   *parsed
}

// templateSet is what the templates of one Load share: their folder, their
// options and the files parsed so far (includes named by an expression are
// parsed on first use).
type templateSet struct {
	fsys fs.FS
	opts Options

	mu    sync.Mutex
	cache map[string]*parsed
}

// Load reads and parses the named templates from fsys with default Options.
// See LoadWithOptions.
func Load(fsys fs.FS, names []string) ([]*Template, error) {
	return LoadWithOptions(fsys, names, Options{})
}

// LoadWithOptions reads and parses the named templates from fsys, and every
// template they include or extend by a constant name, so a syntax error or a
// missing file is reported now, as "file:line: message". Template names are
// slash-separated paths inside fsys; no name may leave it ("..", absolute
// paths). Give an os.Root's FS() to also refuse symbolic links that point
// outside the folder.
func LoadWithOptions(fsys fs.FS, names []string, opts Options) ([]*Template, error) {
	set := &templateSet{fsys: fsys, opts: opts.withDefaults(), cache: map[string]*parsed{}}
	out := make([]*Template, 0, len(names))
	for _, name := range names {
		p, err := set.loadTree(name, map[string]bool{})
		if err != nil {
			return nil, err
		}
		out = append(out, &Template{set: set, p: p})
	}
	return out, nil
}

// Name is the template's name as given to Load.
func (t *Template) Name() string { return t.p.name }

// Render renders the template with vars, which may hold nil, bool, string,
// numbers, []any and map[string]any (what Lua tables convert to), nested.
// A map's keys are visited in sorted order.
func (t *Template) Render(vars map[string]any) (string, error) {
	return t.RenderContext(context.Background(), vars)
}

// RenderContext is Render that also stops, with ctx's error, when ctx is
// done (checked every few thousand steps).
func (t *Template) RenderContext(ctx context.Context, vars map[string]any) (string, error) {
	r := newRenderer(t.set)
	r.ctx = ctx
	r.stack = []stackEntry{{name: t.p.name}}
	root := &scope{vars: t.set.opts.Globals}
	user := &scope{vars: vars, parent: root}
	top := &scope{vars: map[string]any{}, parent: user}
	out := &output{max: t.set.opts.MaxOutputBytes}
	if err := r.renderTemplate(t.p, top, out); err != nil {
		return "", err
	}
	return out.String(), nil
}

// loadTree loads name and, depth first, the constant names it includes or
// extends. seen stops at cycles (rendering reports them when they happen).
func (s *templateSet) loadTree(name string, seen map[string]bool) (*parsed, error) {
	p, err := s.load(name)
	if err != nil {
		return nil, err
	}
	if seen[p.name] {
		return p, nil
	}
	seen[p.name] = true
	for _, d := range p.deps {
		if _, err := s.loadTree(d.name, seen); err != nil {
			var terr *Error
			if errors.As(err, &terr) {
				terr.IncludedFrom = append(terr.IncludedFrom, fmt.Sprintf("%s:%d", p.name, d.line))
				return nil, err
			}
			if d.ignoreMissing && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, &Error{File: p.name, Line: d.line, Msg: err.Error()}
		}
	}
	return p, nil
}

// load returns the parsed template called name, reading it on first use.
// A name that cannot be read is an error wrapping the fs error (so
// fs.ErrNotExist can be told apart); a syntax error is an *Error.
func (s *templateSet) load(name string) (*parsed, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	p, ok := s.cache[clean]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	src, err := s.read(clean)
	if err != nil {
		return nil, err
	}
	p, err = parse(clean, src)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.cache[clean]; ok {
		return prev, nil
	}
	s.cache[clean] = p
	return p, nil
}

func (s *templateSet) read(name string) (string, error) {
	f, err := s.fsys.Open(name)
	if err != nil {
		return "", fmt.Errorf("template %q: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(s.opts.MaxTemplateBytes)+1))
	if err != nil {
		return "", fmt.Errorf("template %q: %w", name, err)
	}
	if len(data) > s.opts.MaxTemplateBytes {
		return "", fmt.Errorf("template %q is larger than %d bytes", name, s.opts.MaxTemplateBytes)
	}
	return string(data), nil
}

// cleanName turns a template name into a path inside the folder, refusing
// any that would leave it, as Jinja's loaders do.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty template name")
	}
	if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return "", fmt.Errorf("template name %q must be a relative slash-separated path inside the template folder", name)
	}
	var parts []string
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("template name %q leaves the template folder", name)
		}
		parts = append(parts, part)
	}
	clean := path.Join(parts...)
	if !fs.ValidPath(clean) || clean == "." {
		return "", fmt.Errorf("template name %q is not a valid path", name)
	}
	return clean, nil
}
