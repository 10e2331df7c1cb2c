package memhost

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/luahost/luahost/engine"
)

// The capabilities ports of real Synapse modules need beyond the first
// set: threepids, state as a list of events, the public room list and an
// account-validity rule of the server's own.

var (
	_ engine.ThreepidGetter        = (*Host)(nil)
	_ engine.StateEventsGetter     = (*Host)(nil)
	_ engine.PublicRoomListChecker = (*Host)(nil)
	_ engine.PublicRoomListEditor  = (*Host)(nil)
	_ engine.AccountExpiryChecker  = (*Host)(nil)
)

// addThreepid binds tp to u, replacing a binding of the same medium and
// address. Email addresses are kept lower-cased, as Synapse canonicalises
// them.
func (u *user) addThreepid(tp engine.Threepid) {
	if tp.Medium == "email" {
		tp.Address = strings.ToLower(tp.Address)
	}
	for i, cur := range u.threepids {
		if cur.Medium == tp.Medium && cur.Address == tp.Address {
			u.threepids[i] = tp
			return
		}
	}
	u.threepids = append(u.threepids, tp)
}

// ThreepidsForUser implements engine.ThreepidGetter: the user's
// threepids in the order they were added; none for an unknown user.
func (h *Host) ThreepidsForUser(ctx context.Context, userID string) ([]engine.Threepid, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	u := h.users[userID]
	if u == nil {
		return []engine.Threepid{}, nil
	}
	return append([]engine.Threepid{}, u.threepids...), nil
}

// AddThreepid binds a validated threepid (medium "email" or "msisdn") to a
// local user, now. For tests and development.
func (h *Host) AddThreepid(userID, medium, address string) error {
	if medium != "email" && medium != "msisdn" {
		return fmt.Errorf("add threepid: %w: medium %q (want email or msisdn)", ErrInvalid, medium)
	}
	if address == "" {
		return fmt.Errorf("add threepid: %w: empty address", ErrInvalid)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("add threepid: user %s: %w", userID, engine.ErrNotFound)
	}
	now := nowMS()
	u.addThreepid(engine.Threepid{Medium: medium, Address: address, ValidatedAt: now, AddedAt: now})
	return nil
}

// StateEvents implements engine.StateEventsGetter: copies of the room's
// current state events, sorted by type and state key; none for an unknown
// room, as Synapse gives.
func (h *Host) StateEvents(ctx context.Context, roomID string, filter []engine.StateFilter) ([]*engine.Event, error) {
	st, err := h.RoomState(ctx, roomID, filter)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return []*engine.Event{}, nil
	}
	evs := []*engine.Event{}
	for _, byKey := range st {
		for _, ev := range byKey {
			evs = append(evs, ev)
		}
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].Type != evs[j].Type {
			return evs[i].Type < evs[j].Type
		}
		return *evs[i].StateKey < *evs[j].StateKey
	})
	return evs, nil
}

// RoomIsInPublicRoomList implements engine.PublicRoomListChecker: false
// for an unknown room, as in Synapse.
func (h *Host) RoomIsInPublicRoomList(ctx context.Context, roomID string) (bool, error) {
	ok, err := h.Published(ctx, roomID)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	return ok, err
}

// SetRoomInPublicRoomList implements engine.PublicRoomListEditor.
func (h *Host) SetRoomInPublicRoomList(ctx context.Context, roomID string, published bool) error {
	if err := h.SetPublished(ctx, roomID, published); err != nil {
		return fmt.Errorf("public room list: %w", err)
	}
	return nil
}

// SetAccountExpiry sets when a local user's account expires (ms since the
// epoch; 0: never), the server's own account-validity rule that
// IsAccountExpired applies. For tests and development.
func (h *Host) SetAccountExpiry(userID string, expiresAtMS int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("set account expiry: user %s: %w", userID, engine.ErrNotFound)
	}
	u.expiresAt = expiresAtMS
	return nil
}

// IsAccountExpired implements engine.AccountExpiryChecker.
func (h *Host) IsAccountExpired(ctx context.Context, userID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	u := h.users[userID]
	return u != nil && u.expiresAt != 0 && nowMS() >= u.expiresAt, nil
}
