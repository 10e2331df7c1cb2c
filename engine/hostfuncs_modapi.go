package engine

import (
	"context"
	"errors"
	"sort"

	lua "github.com/yuin/gopher-lua"

	"github.com/luahost/luahost/internal/mail"
	"github.com/luahost/luahost/internal/sandbox"
	"github.com/luahost/luahost/luaapi"
	"github.com/luahost/luahost/stdlib"
)

// The ModuleApi members ports of real Synapse modules need beyond the
// first set (hostfuncs.go): email, threepids, state as a list of events,
// the public room list, and the site's public_baseurl, email_app_name and
// worker_name.

// siteConfig is what the engine reads once, at New, from the config's
// top-level email:, public_baseurl: and instance_name: (a change needs a
// restart, like storage:).
type siteConfig struct {
	email         *EmailConfig // nil: no email: section
	publicBaseURL string       // never empty
	instanceName  string       // "" on a single instance
}

func siteOf(cfg *Config) siteConfig {
	return siteConfig{email: cfg.Email, publicBaseURL: cfg.publicBaseURL(), instanceName: cfg.InstanceName}
}

// installModAPI adds the members of this file to api's table.
func (e *Engine) installModAPI(L *lua.LState, api *luaapi.ModuleAPI) {
	host := e.host
	t := api.Table
	threepids, hasThreepids := capability[ThreepidGetter](host)
	stateEvents, hasStateEvents := capability[StateEventsGetter](host)
	states, hasStates := capability[RoomStateGetter](host)
	publicList, hasPublicList := capability[PublicRoomListChecker](host)
	publisher, hasPublisher := capability[PublicRoomListEditor](host)
	mailer, hasMailer := capability[MailSender](host)
	site := e.site

	t.RawSetString("public_baseurl", lua.LString(site.publicBaseURL))
	t.RawSetString("email_app_name", lua.LString(site.email.appName()))
	if site.instanceName != "" {
		t.RawSetString("worker_name", lua.LString(site.instanceName))
	}

	isPublic := func(a *hostArgs) runFunc {
		roomID := a.str(1, "room_id")
		return func(ctx context.Context) (sandbox.Result, error) {
			ok, err := publicList.RoomIsInPublicRoomList(ctx, roomID)
			if errors.Is(err, ErrNotFound) {
				return values(false), nil
			}
			if err != nil {
				return nil, err
			}
			return values(ok), nil
		}
	}
	e.install(L, t, api.Module, "", []hostFunc{
		{"get_threepids_for_user", hasThreepids, func(a *hostArgs) runFunc {
			userID := a.str(1, "user_id")
			return func(ctx context.Context) (sandbox.Result, error) {
				tps, err := threepids.ThreepidsForUser(ctx, userID)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
				return func(L *lua.LState) []lua.LValue {
					arr := stdlib.NewArray(L, len(tps))
					for _, tp := range tps {
						r := L.CreateTable(0, 4)
						r.RawSetString("medium", lua.LString(tp.Medium))
						r.RawSetString("address", lua.LString(tp.Address))
						r.RawSetString("validated_at", lua.LNumber(tp.ValidatedAt))
						r.RawSetString("added_at", lua.LNumber(tp.AddedAt))
						arr.Append(r)
					}
					return []lua.LValue{arr}
				}, nil
			}
		}},
		{"get_state_events_in_room", hasStateEvents || hasStates, func(a *hostArgs) runFunc {
			roomID := a.str(1, "room_id")
			filter := a.stateFilter(2)
			return func(ctx context.Context) (sandbox.Result, error) {
				var evs []*Event
				var err error
				if hasStateEvents {
					evs, err = stateEvents.StateEvents(ctx, roomID, filter)
					evs = filterEvents(evs, filter)
				} else {
					var st StateMap
					st, err = states.RoomState(ctx, roomID, filter)
					evs = flattenState(filterState(st, filter)) // a host may return the whole state
				}
				if err != nil && !errors.Is(err, ErrNotFound) {
					return nil, err
				}
				return func(L *lua.LState) []lua.LValue {
					arr := stdlib.NewArray(L, len(evs))
					for _, ev := range evs {
						arr.Append(pushEvent(L, ev))
					}
					return []lua.LValue{arr}
				}, nil
			}
		}},
		{"room_is_in_public_room_list", hasPublicList, isPublic},
		{"send_mail", true, func(a *hostArgs) runFunc {
			m := Mail{
				To:      a.str(1, "recipient"),
				Subject: a.str(2, "subject"),
				HTML:    a.str(3, "html"),
				Text:    a.str(4, "text"),
				AppName: site.email.appName(),
			}
			if !hasMailer && site.email == nil {
				a.fail("no email: section in the config (smtp_host, smtp_port, notif_from, ...), so no email can be sent")
			}
			return func(ctx context.Context) (sandbox.Result, error) {
				if hasMailer {
					return nil, mailer.SendMail(ctx, m)
				}
				return nil, mail.Send(ctx, site.email.mailConfig(), mail.Message{To: m.To, Subject: m.Subject, HTML: m.HTML, Text: m.Text})
			}
		}},
	})

	prlm := L.CreateTable(0, 2)
	t.RawSetString("public_room_list_manager", prlm)
	luaapi.GuardLazy(L, prlm, "api.public_room_list_manager", "function", func(L *lua.LState, prlm *lua.LTable) {
		setPublic := func(published bool) func(a *hostArgs) runFunc {
			return func(a *hostArgs) runFunc {
				roomID := a.str(1, "room_id")
				return func(ctx context.Context) (sandbox.Result, error) {
					return nil, publisher.SetRoomInPublicRoomList(ctx, roomID, published)
				}
			}
		}
		e.install(L, prlm, api.Module, "public_room_list_manager.", []hostFunc{
			{"room_is_in_public_room_list", hasPublicList, isPublic},
			{"add_room_to_public_room_list", hasPublisher, setPublic(true)},
			{"remove_room_from_public_room_list", hasPublisher, setPublic(false)},
		})
	})
}

// flattenState lists a state map's events sorted by type and state key
// (Synapse gives no order; a fixed one keeps scripts deterministic).
func flattenState(st StateMap) []*Event {
	var evs []*Event
	for _, byKey := range st {
		for _, ev := range byKey {
			evs = append(evs, ev)
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].Type != evs[j].Type {
			return evs[i].Type < evs[j].Type
		}
		return stateKey(evs[i]) < stateKey(evs[j])
	})
	return evs
}

func stateKey(ev *Event) string {
	if ev.StateKey == nil {
		return ""
	}
	return *ev.StateKey
}

// filterEvents keeps the events a get_state_events_in_room filter asked
// for (a host may have returned the whole state), in their order.
func filterEvents(evs []*Event, filter []StateFilter) []*Event {
	if len(filter) == 0 {
		return evs
	}
	out := evs[:0:0]
	for _, ev := range evs {
		for _, f := range filter {
			if ev.Type == f.Type && (f.AnyKey || stateKey(ev) == f.StateKey) {
				out = append(out, ev)
				break
			}
		}
	}
	return out
}
