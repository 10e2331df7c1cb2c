package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DebounceReload is how long watching waits after the last file change
// before reloading: editors write a file in several steps.
const DebounceReload = 250 * time.Millisecond

// FileWatcher reports changes to files. The engine adds every file its
// modules were loaded from (and the config file) and reloads after a
// change. The default polls; package engine/fswatch has one on the
// operating system's file notifications.
type FileWatcher interface {
	// Add starts watching a file (which may not exist yet: creating it is
	// a change). Adding a file twice is harmless.
	Add(file string) error
	// Changes delivers the path of a file that changed, was created,
	// removed or renamed over. It is closed by Close.
	Changes() <-chan string
	// Close stops watching.
	Close() error
}

// Watch reloads the engine when the config file or any module file (the
// scripts and what they require, including what a failed load tried to
// read) changes, until ctx ends. The engine must have been loaded from a
// config file and read its modules from disk.
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
	cfg := e.Config()
	if !cfg.fromDisk {
		return nil, errors.New("watch: the config was not read from a file")
	}
	newWatcher := e.opts.Watcher
	if newWatcher == nil {
		newWatcher = func() (FileWatcher, error) { return NewPollingWatcher(500 * time.Millisecond), nil }
	}
	w, err := newWatcher()
	if err != nil {
		return nil, err
	}
	fw := &fileWatch{e: e, w: w}
	fw.arm()
	done := make(chan error, 1)
	go func() {
		defer w.Close()
		done <- fw.loop(ctx)
	}()
	return done, nil
}

type fileWatch struct {
	e *Engine
	w FileWatcher
}

// arm watches the config file and every module file.
func (fw *fileWatch) arm() {
	cfg := fw.e.Config()
	files := []string{cfg.File}
	for _, f := range fw.e.files() {
		files = append(files, filepath.Join(cfg.Dir, filepath.FromSlash(f)))
	}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		if err := fw.w.Add(abs); err != nil {
			fw.e.log.Warn("watch: cannot watch file", "file", abs, "err", err)
		}
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
	changes := fw.w.Changes()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
			if timer == nil {
				timer = time.NewTimer(DebounceReload)
			} else {
				timer.Reset(DebounceReload)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			fw.e.log.Info("files changed; reloading")
			_ = fw.e.Reload(ctx) // Reload logs each failure with its module
			fw.arm()
		}
	}
}

// NewPollingWatcher returns a FileWatcher that checks its files' size,
// modification time and identity every interval: no dependency and no
// OS limits, at the cost of up to interval of latency.
func NewPollingWatcher(interval time.Duration) FileWatcher {
	p := &pollWatcher{files: map[string]fileStamp{}, changes: make(chan string, 16), stop: make(chan struct{}), done: make(chan struct{})}
	go p.run(interval)
	return p
}

type fileStamp struct {
	exists bool
	size   int64
	mod    time.Time
	info   os.FileInfo
}

func stamp(file string) fileStamp {
	fi, err := os.Stat(file)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{exists: true, size: fi.Size(), mod: fi.ModTime(), info: fi}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.exists != b.exists {
		return false
	}
	if !a.exists {
		return true
	}
	return a.size == b.size && a.mod.Equal(b.mod) && os.SameFile(a.info, b.info)
}

type pollWatcher struct {
	mu      sync.Mutex
	files   map[string]fileStamp
	changes chan string
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (p *pollWatcher) Add(file string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.files[file]; !ok {
		p.files[file] = stamp(file)
	}
	return nil
}

func (p *pollWatcher) Changes() <-chan string { return p.changes }

func (p *pollWatcher) Close() error {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
	})
	return nil
}

func (p *pollWatcher) run(interval time.Duration) {
	defer close(p.done)
	defer close(p.changes)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		var changed []string
		for f, old := range p.files {
			if now := stamp(f); !now.same(old) {
				p.files[f] = now
				changed = append(changed, f)
			}
		}
		p.mu.Unlock()
		for _, f := range changed {
			select {
			case p.changes <- f:
			case <-p.stop:
				return
			}
		}
	}
}
