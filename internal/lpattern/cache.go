package lpattern

import (
	"sync"
	"sync/atomic"
)

// Cache remembers compiled patterns, so code that calls string.find with
// the same pattern in a loop compiles it once. Compiling costs about as
// much as a short match; a cache hit is one map lookup. A Cache is safe for
// concurrent use. It holds at most the size given to NewCache, and only
// patterns of up to MaxCachedLen bytes, so a script cannot grow it: when it
// is full it starts afresh.
type Cache struct {
	size int
	cur  atomic.Pointer[cacheMap]
}

// MaxCachedLen is the longest pattern a Cache keeps.
const MaxCachedLen = 256

type cacheMap struct {
	// pattern text -> *Pattern, one map per reading of '^': a string key
	// hashes faster than a struct.
	find, gmatch sync.Map
	n            atomic.Int64
}

func (cm *cacheMap) of(gmatch bool) *sync.Map {
	if gmatch {
		return &cm.gmatch
	}
	return &cm.find
}

// NewCache returns a Cache of up to size patterns.
func NewCache(size int) *Cache {
	c := &Cache{size: size}
	c.cur.Store(&cacheMap{})
	return c
}

// Compile is Compile, through the cache.
func (c *Cache) Compile(pat string) *Pattern { return c.get(pat, false) }

// CompileGmatch is CompileGmatch, through the cache.
func (c *Cache) CompileGmatch(pat string) *Pattern { return c.get(pat, true) }

// Find is Find, compiling through the cache.
func (c *Cache) Find(subject, pattern string, init int, plain bool, opts *Options) (*Match, error) {
	return find(subject, pattern, init, plain, opts, c.Compile)
}

func (c *Cache) get(pat string, gmatch bool) *Pattern {
	if len(pat) > MaxCachedLen {
		return compile(pat, !gmatch)
	}
	cm := c.cur.Load()
	if p, ok := cm.of(gmatch).Load(pat); ok {
		return p.(*Pattern)
	}
	p := compile(pat, !gmatch)
	if cm.n.Add(1) > int64(c.size) {
		// Full: start a new map. Racing callers may each do so; any of
		// the new maps is fine.
		cm = &cacheMap{}
		c.cur.Store(cm)
		cm.n.Add(1)
	}
	cm.of(gmatch).Store(pat, p)
	return p
}
