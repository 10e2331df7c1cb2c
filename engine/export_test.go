package engine

import "time"

// SetStoreLogEvery changes how often a storage outage is logged again,
// for tests; the returned function restores it.
func SetStoreLogEvery(d time.Duration) (restore func()) {
	old := storeLogEvery
	storeLogEvery = d
	return func() { storeLogEvery = old }
}

// Files lists what the watcher watches.
func (e *Engine) Files() []string { return e.files() }
