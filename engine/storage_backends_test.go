package engine_test

// The tests run api.store on every backend; the engine itself links only
// the memory one.
import (
	_ "github.com/luahost/luahost/engine/storage/bolt"
	_ "github.com/luahost/luahost/engine/storage/redis"
)
