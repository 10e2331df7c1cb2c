// Package fswatch is an engine.FileWatcher on the operating system's file
// notifications (github.com/fsnotify/fsnotify): reloads follow a save
// within the engine's debounce, where the default polling watcher takes up
// to half a second more. It watches folders, not files, so an editor's
// rename-on-save is seen. Embedders opt in:
//
//	engine.Start(ctx, "luahost.yaml", engine.Options{Watcher: fswatch.New})
package fswatch

import (
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"

	"github.com/luahost/luahost/engine"
)

// New starts a watcher.
func New() (engine.FileWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	fw := &watcher{w: w, dirs: map[string]bool{}, files: map[string]bool{}, changes: make(chan string, 16), done: make(chan struct{})}
	go fw.run()
	return fw, nil
}

type watcher struct {
	w       *fsnotify.Watcher
	mu      sync.Mutex
	dirs    map[string]bool
	files   map[string]bool
	changes chan string
	done    chan struct{}
	once    sync.Once
}

func (fw *watcher) Add(file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.files[abs] = true
	dir := filepath.Dir(abs)
	if fw.dirs[dir] {
		return nil
	}
	if err := fw.w.Add(dir); err != nil {
		return err
	}
	fw.dirs[dir] = true
	return nil
}

func (fw *watcher) Changes() <-chan string { return fw.changes }

func (fw *watcher) Close() error {
	var err error
	fw.once.Do(func() {
		close(fw.done)
		err = fw.w.Close()
	})
	return err
}

func (fw *watcher) run() {
	defer close(fw.changes)
	for {
		select {
		case <-fw.done:
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			abs, _ := filepath.Abs(ev.Name)
			fw.mu.Lock()
			wanted := fw.files[abs]
			fw.mu.Unlock()
			if !wanted {
				continue
			}
			select {
			case fw.changes <- abs:
			case <-fw.done:
				return
			}
		case _, ok := <-fw.w.Errors:
			if !ok {
				return
			}
		}
	}
}
