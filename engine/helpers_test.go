package engine_test

import (
	"context"
	"errors"
	"testing"

	. "github.com/luahost/luahost/engine"
)

// wholeStateHost ignores get_room_state's filter, as a homeserver whose
// query has none may: the engine drops what the script did not ask for.
type wholeStateHost struct{ nameHost }

func (wholeStateHost) RoomState(ctx context.Context, roomID string, filter []StateFilter) (StateMap, error) {
	st := StateMap{}
	empty, bob := "", "@bob:example.org"
	st.Put(&Event{Type: "m.room.name", StateKey: &empty, Content: map[string]any{"name": "N"}})
	st.Put(&Event{Type: "m.room.member", StateKey: &bob, Content: map[string]any{"membership": "join"}})
	return st, nil
}

func TestRoomStateFilterAppliedByTheEngine(t *testing.T) {
	e := newTestEngine(t, wholeStateHost{"example.org"}, map[string]string{"t.lua": `local M = {}
function M.new(c, api)
  api.register_spam_checker_callbacks{ check_event_for_spam = function(ev)
    local st = api.get_room_state("!r:example.org", {{"m.room.name", ""}})
    if st["m.room.member"] ~= nil then return "M_MEMBER_LEAKED" end
    if st["m.room.name"][""].content.name ~= "N" then return "M_NO_NAME" end
    return api.NOT_SPAM
  end }
end
return M`}, "server_name: example.org\nmodules:\n  - module: t.lua\n")
	d, err := e.CheckEventForSpam(context.Background(), hfEvent("@a:example.org", "x"))
	if err != nil || !d.Allowed() {
		t.Fatalf("%+v %v", d, err)
	}
}

type pdu struct{ raw, id string }

func (p pdu) JSON() []byte    { return []byte(p.raw) }
func (p pdu) EventID() string { return p.id }

func TestEventOfAndRefusal(t *testing.T) {
	ev, err := EventOf(pdu{`{"type":"m.room.message","sender":"@a:x","content":{"body":"hi"}}`, "$abc"})
	if err != nil || ev.EventID != "$abc" || ev.ContentMap()["body"] != "hi" {
		t.Fatalf("EventOf: %+v %v", ev, err)
	}
	if e := Refusal(NotSpam, nil); e != nil {
		t.Errorf("allowed: %v", e)
	}
	if e := Refusal(SpamDecision{Errcode: "M_FORBIDDEN", Msg: "no"}, nil); e == nil || e.Code != 403 || e.Msg != "no" {
		t.Errorf("refused: %+v", e)
	}
	if e := Refusal(NotSpam, errors.New("script error")); e == nil || e.Code != 500 || e.Errcode != "M_UNKNOWN" {
		t.Errorf("failed: %+v", e)
	}
}
