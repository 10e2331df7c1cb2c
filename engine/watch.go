package engine

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DebounceReload is how long Watch waits after the last file event before
// reloading: editors write a file in several steps.
const DebounceReload = 250 * time.Millisecond

// Watch reloads the engine when the config file or any module file (the
// scripts and what they require) changes, until ctx ends. It watches the
// folders, not the files, so an editor's rename-on-save is seen, and it
// re-arms after every reload for files added since. The engine must have
// been loaded with LoadConfig and read its modules from disk.
func (e *Engine) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	watched := map[string]bool{}
	wanted := map[string]bool{}
	arm := func() {
		cfg := e.Config()
		files := []string{cfg.File}
		for _, f := range e.Files() {
			files = append(files, filepath.Join(cfg.Dir, filepath.FromSlash(f)))
		}
		for _, f := range files {
			abs, err := filepath.Abs(f)
			if err != nil {
				continue
			}
			wanted[abs] = true
			dir := filepath.Dir(abs)
			if !watched[dir] {
				if err := w.Add(dir); err != nil {
					e.log.Warn("watch: cannot watch folder", "dir", dir, "err", err)
					continue
				}
				watched[dir] = true
			}
		}
	}
	arm()
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			abs, _ := filepath.Abs(ev.Name)
			if !wanted[abs] || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(DebounceReload)
			} else {
				timer.Reset(DebounceReload)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			e.log.Warn("watch: file watcher error", "err", err)
		case <-fire:
			fire = nil
			e.log.Info("files changed; reloading")
			if err := e.Reload(ctx); err != nil {
				e.log.Error("reload finished with errors; failing modules keep their previous version", "err", err)
			}
			arm()
		}
	}
}
