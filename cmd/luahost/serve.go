package main

import (
	"fmt"
	"io"

	"github.com/luahost/luahost/engine"
)

// reportPartial lists, under serve --allow-partial, the modules that did
// not load, and says how they will.
func reportPartial(eng *engine.Engine, stderr io.Writer, noWatch bool) {
	failed := 0
	for _, st := range eng.Status() {
		if st.LastError != nil && !st.Serving {
			fmt.Fprintf(stderr, "error: %v\n", st.LastError)
			failed++
		}
	}
	if failed == 0 {
		return
	}
	how := "fix and save the files to load them"
	if noWatch {
		how = "fix the files and send SIGHUP to load them"
	}
	fmt.Fprintf(stderr, "luahost: %d of %d module(s) failed to load and are not serving; %s\n", failed, len(eng.Status()), how)
}
