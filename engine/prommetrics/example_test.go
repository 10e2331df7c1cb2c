package prommetrics_test

import (
	"context"
	"fmt"
	"net/http"
	"testing/fstest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/prommetrics"
)

// A homeserver that embeds the engine and serves its metrics.
func Example() {
	ctx := context.Background()
	cfg, err := engine.ParseConfig([]byte("server_name: example.org\nmodules:\n  - module: spam.lua\n"), "luahost.yaml")
	if err != nil {
		panic(err)
	}
	scripts := fstest.MapFS{"spam.lua": &fstest.MapFile{Data: []byte(`return { new = function(config, api)
		api.register_spam_checker_callbacks{ check_event_for_spam = function(ev) return api.NOT_SPAM end }
	end }`)}}

	reg := prometheus.NewRegistry()
	metrics, err := prommetrics.New(reg)
	if err != nil {
		panic(err)
	}
	eng, err := engine.New(ctx, cfg, engine.Options{Observer: metrics, FS: scripts, Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	metrics.Attach(eng)
	mux := http.NewServeMux() // the homeserver's admin mux
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	eng.CheckEventForSpam(ctx, &engine.Event{Type: "m.room.message", Sender: "@a:example.org", Content: map[string]any{"body": "hi"}})
	n, _ := testutil.GatherAndCount(reg, "luahost_callback_calls_total")
	fmt.Println("series:", n)
	// Output: series: 1
}
