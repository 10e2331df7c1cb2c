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

// SetStoreMaxAttempts changes how often api.store.update and transaction
// try before they give up, for modules loaded afterwards; the returned
// function restores it.
func SetStoreMaxAttempts(n int) (restore func()) {
	old := storeMaxAttempts.Swap(int64(n))
	return func() { storeMaxAttempts.Store(old) }
}
