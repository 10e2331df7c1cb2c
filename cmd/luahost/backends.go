package main

// The luahost command offers every storage backend; package engine links only "memory"
// (docs/storage.md).
import (
	_ "github.com/luahost/luahost/engine/storage/bolt"
	_ "github.com/luahost/luahost/engine/storage/redis"
)
