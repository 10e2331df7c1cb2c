// Package runtime runs a module's Lua states.
//
// # Who may touch a state, and when
//
// A *lua.LState is not goroutine-safe. The rule: exactly one goroutine at
// a time touches a state, the one holding its baton (baton.go). The baton
// is not a goroutine:
//
//   - a caller that finds the state idle takes the baton and runs its step
//     on its own goroutine: no hand-off, no wake-up;
//   - a caller that finds it busy queues its step and waits; whoever holds
//     the baton runs queued steps before releasing it, and after a few of
//     them hands the baton to the next waiter, so no caller serves others
//     for ever;
//   - nothing spins and nothing runs while no call is in flight: an idle
//     module costs no goroutine and no CPU.
//
// A step is one resume of a call's worker coroutine (call.go). A call
// that makes a host call (a lookup, HTTP, storage, sleep) yields: the step
// ends, the baton is released, and the caller's own goroutine does the Go
// work while the module serves other calls; then it asks for the baton
// again to resume. Timers and the watchdog follow the same rule: a timer
// is just another caller, and the watchdog never touches a state; it
// cancels the context the running step checks (watchdog.go).
//
// A Set (set.go) is N independent states of one module behind one
// dispatcher (`instances: N`), so a module can use every core.
package runtime
