package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Module files are read through os.Root, which refuses a path that leaves
// its folder through a symlink (os.DirFS follows links anywhere: a
// module's require("link") read whatever link.lua pointed at, and a
// config's module: entry could be a link to any file). The config's
// folder is the root for module: entries, and module_dirs: may list
// other folders their links may lead to; each module's own folder is the
// root of its require calls.

// rootFS is an fs.FS over a folder on disk that opens every file through
// an os.Root: a file whose real path lies outside the folder (and outside
// every extra folder) is refused with an outsideError.
type rootFS struct {
	dir string
	// extra lists folders outside dir that links may lead to.
	extra func() []string
	// what names dir in errors ("the config file's folder").
	what string
}

// outsideError is a file whose real path leaves the folders it may be in.
type outsideError struct {
	real, what string
	extra      bool
}

func (e *outsideError) Error() string {
	msg := fmt.Sprintf("it resolves to %s, outside %s", e.real, e.what)
	if e.extra {
		msg += " (list that folder in module_dirs: to allow it)"
	}
	return msg
}

func (r rootFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	real, err := filepath.EvalSymlinks(filepath.Join(r.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	roots := []string{r.dir}
	if r.extra != nil {
		roots = append(roots, r.extra()...)
	}
	for _, root := range roots {
		rr, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(rr, real)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			continue
		}
		// The real path decided which root; the root decides what may be
		// opened (a link swapped in meanwhile still cannot leave it).
		root, err := os.OpenRoot(rr)
		if err != nil {
			return nil, err
		}
		f, err := root.Open(rel)
		root.Close() // the file stays open
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: &outsideError{real: real, what: r.what, extra: r.extra != nil}}
}

// subFS is the part of fsys under dir, for a module's require calls: the
// names keep their dir/ prefix (they are what the watcher records).
type subFS struct {
	fsys fs.FS
	dir  string
}

func (s subFS) Open(name string) (fs.File, error) {
	if s.dir != "." && !strings.HasPrefix(name, s.dir+"/") {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("outside the module's folder")}
	}
	return s.fsys.Open(name)
}

// moduleFS is where a module's require calls read: its own folder, and
// with the default file system nothing a link leads to outside it.
func (e *Engine) moduleFS(mc ModuleConfig) fs.FS {
	dir := path.Dir(mc.Module)
	if e.scriptDir == "" { // an embedder's FS
		return subFS{fsys: e.fsys, dir: dir}
	}
	return prefixFS{dir: dir, fsys: rootFS{dir: filepath.Join(e.scriptDir, filepath.FromSlash(dir)), what: "the module's folder"}}
}

// prefixFS serves dir/name from fsys's name.
type prefixFS struct {
	dir  string
	fsys fs.FS
}

func (p prefixFS) Open(name string) (fs.File, error) {
	if p.dir == "." {
		return p.fsys.Open(name)
	}
	rest, ok := strings.CutPrefix(name, p.dir+"/")
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("outside the module's folder")}
	}
	return p.fsys.Open(rest)
}

// resolveModuleDirs resolves a config's module_dirs: against its folder.
func resolveModuleDirs(cfg *Config) []string {
	out := make([]string, 0, len(cfg.ModuleDirs))
	for _, d := range cfg.ModuleDirs {
		if !filepath.IsAbs(d) {
			d = filepath.Join(cfg.Dir, d)
		}
		out = append(out, d)
	}
	return out
}

// extraDirs are the folders module: links may lead to. Safe from any
// goroutine (a reload sets them before it loads).
func (e *Engine) extraDirs() []string {
	if p := e.moduleDirs.Load(); p != nil {
		return *p
	}
	return nil
}
