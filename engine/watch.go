package engine

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DebounceReload is how long watching waits after the last file event
// before reloading: editors write a file in several steps.
const DebounceReload = 250 * time.Millisecond

// Watch reloads the engine when the config file or any module file (the
// scripts and what they require, including what a failed load tried to
// read) changes, until ctx ends. It watches the folders, not the files,
// so an editor's rename-on-save is seen, and it re-arms after every reload
// for files added since. The engine must have been loaded with LoadConfig
// and read its modules from disk.
func (e *Engine) Watch(ctx context.Context) error {
	done, err := e.StartWatch(ctx)
	if err != nil {
		return err
	}
	return <-done
}

// StartWatch is Watch in the background: it returns once the files are
// being watched (an edit made after it returns is seen), and the channel
// reports when watching ends.
func (e *Engine) StartWatch(ctx context.Context) (<-chan error, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	fw := &fileWatch{e: e, w: w, watched: map[string]bool{}, wanted: map[string]bool{}}
	fw.arm()
	done := make(chan error, 1)
	go func() {
		defer w.Close()
		done <- fw.loop(ctx)
	}()
	return done, nil
}

type fileWatch struct {
	e       *Engine
	w       *fsnotify.Watcher
	watched map[string]bool // folders
	wanted  map[string]bool // files
}

// arm watches the folders of the config file and every module file.
func (fw *fileWatch) arm() {
	cfg := fw.e.Config()
	files := []string{cfg.File}
	for _, f := range fw.e.Files() {
		files = append(files, filepath.Join(cfg.Dir, filepath.FromSlash(f)))
	}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		fw.wanted[abs] = true
		dir := filepath.Dir(abs)
		if fw.watched[dir] {
			continue
		}
		if err := fw.w.Add(dir); err != nil {
			fw.e.log.Warn("watch: cannot watch folder", "dir", dir, "err", err)
			continue
		}
		fw.watched[dir] = true
	}
}

func (fw *fileWatch) loop(ctx context.Context) error {
	var timer *time.Timer
	var fire <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.w.Events:
			if !ok {
				return nil
			}
			abs, _ := filepath.Abs(ev.Name)
			if !fw.wanted[abs] || ev.Op == fsnotify.Chmod {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(DebounceReload)
			} else {
				timer.Reset(DebounceReload)
			}
			fire = timer.C
		case err, ok := <-fw.w.Errors:
			if !ok {
				return nil
			}
			fw.e.log.Warn("watch: file watcher error", "err", err)
		case <-fire:
			fire = nil
			fw.e.log.Info("files changed; reloading")
			_ = fw.e.Reload(ctx) // Reload logs each failure with its module
			fw.arm()
		}
	}
}
