package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/luahost/luahost/engine/internal/runtime"
)

const holdsModule = `local M = {}
function M.new(config, api)
  local seen = 0
  api.register_password_auth_provider_callbacks{
    auth_checkers = { ["m.login.password"] = { fields = {"password"}, check = function(user, lt, dict)
      return "@" .. user .. ":example.org", function(resp) seen = seen + 1 end
    end } },
  }
  api.register_background_update_controller_callbacks{
    on_update = function(name, db, one_shot) return 100, function() seen = seen + 1 end end,
    default_batch_size = function() return 10 end,
    min_batch_size = function() return 1 end,
  }
  api.register_web_resource("/_synapse/client/holds", function() return {json = {seen = seen}} end)
end
return M
`

// An accepted login's on_logged_in and a batch's end function run on the
// generation that answered, even when a reload replaced it meanwhile: the
// results hold their generation open until they ran.
func TestLoggedInAndDoneOutliveAReload(t *testing.T) {
	r := newReloadRig(t, "server_name: example.org\nmodules:\n  - module: spam.lua\n", map[string]string{"spam.lua": holdsModule})
	ctx := context.Background()
	res, err := r.e.CheckAuth(ctx, "alice", "m.login.password", map[string]any{"password": "x"})
	if err != nil || res == nil {
		t.Fatal(res, err)
	}
	batch, err := r.e.OnUpdate(ctx, "u", "main", false)
	if err != nil || batch == nil {
		t.Fatal(batch, err)
	}
	if err := r.e.ReloadModule(ctx, "spam"); err != nil {
		t.Fatal(err)
	}
	if err := res.LoggedIn(ctx, map[string]any{"user_id": "@alice:example.org"}); err != nil {
		t.Errorf("LoggedIn after a reload: %v", err)
	}
	if err := batch.Done(ctx); err != nil {
		t.Errorf("Done after a reload: %v", err)
	}
}

// LoggedIn, Done, callbacks and timers racing Close never touch a closed
// state: they run, or get "module is closed" (run with -race).
func TestHoldsRaceClose(t *testing.T) {
	for round := 0; round < 20; round++ {
		e := mustEngine(t, "server_name: example.org\nmodules:\n  - module: m.lua\n", map[string]string{"m.lua": holdsModule})
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					res, err := e.CheckAuth(ctx, "alice", "m.login.password", map[string]any{"password": "x"})
					if err == nil && res != nil {
						err = res.LoggedIn(ctx, map[string]any{})
					}
					if err != nil && !errors.Is(err, runtime.ErrClosed) {
						t.Errorf("LoggedIn racing Close: %v", err)
						return
					}
					b, err := e.OnUpdate(ctx, "u", "main", false)
					if err == nil && b != nil {
						err = b.Done(ctx)
					}
					if err != nil && !errors.Is(err, runtime.ErrClosed) {
						t.Errorf("Done racing Close: %v", err)
						return
					}
				}
			}()
		}
		e.Close()
		wg.Wait()
	}
}
