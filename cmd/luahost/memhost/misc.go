package memhost

import (
	"context"
	"fmt"

	"github.com/luahost/luahost/engine"
)

// GlobalAccountData implements engine.AccountDataStore: a copy of the
// user's content of typ, nil when there is none.
func (h *Host) GlobalAccountData(ctx context.Context, userID, typ string) (map[string]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !h.isLocal(userID) {
		return nil, fmt.Errorf("global account data: %w", refuse(ErrInvalid, "%s is not a user of %s", userID, h.serverName))
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	e, ok := h.accountData[accountDataKey{userID, ""}][typ]
	if !ok {
		return nil, nil
	}
	return cloneMap(e.content), nil
}

// PutGlobalAccountData implements engine.AccountDataStore. The user must
// exist; the content is copied (nil stores an empty object).
func (h *Host) PutGlobalAccountData(ctx context.Context, userID, typ string, content map[string]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if typ == "" {
		return fmt.Errorf("put global account data: %w", refuse(ErrInvalid, "empty type"))
	}
	if !h.isLocal(userID) {
		return fmt.Errorf("put global account data: %w", refuse(ErrInvalid, "%s is not a user of %s", userID, h.serverName))
	}
	c := cloneMap(content)
	if c == nil {
		c = map[string]any{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users[userID] == nil {
		return fmt.Errorf("put global account data: user %s: %w", userID, engine.ErrNotFound)
	}
	h.putAccountData(accountDataKey{userID, ""}, typ, c)
	return nil
}

// accountDataKey is whose account data: a user's global data (room ""),
// or their data for one room.
type accountDataKey struct{ userID, roomID string }

type accountDataEntry struct {
	content map[string]any
	pos     int64
}

// putAccountData stores content (which it now owns); h.mu is held.
func (h *Host) putAccountData(k accountDataKey, typ string, content map[string]any) {
	byType := h.accountData[k]
	if byType == nil {
		byType = map[string]accountDataEntry{}
		h.accountData[k] = byType
	}
	byType[typ] = accountDataEntry{content: content, pos: h.advance()}
}

// RoomAccountData returns a copy of the user's account data of typ for a
// room, nil when there is none.
func (h *Host) RoomAccountData(ctx context.Context, userID, roomID, typ string) (map[string]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	e, ok := h.accountData[accountDataKey{userID, roomID}][typ]
	if !ok {
		return nil, nil
	}
	return cloneMap(e.content), nil
}

// PutRoomAccountData stores a user's account data of typ for a room; the
// room must exist. The content is copied.
func (h *Host) PutRoomAccountData(ctx context.Context, userID, roomID, typ string, content map[string]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if typ == "" {
		return fmt.Errorf("put room account data: %w", refuse(ErrInvalid, "empty type"))
	}
	c := cloneMap(content)
	if c == nil {
		c = map[string]any{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users[userID] == nil {
		return fmt.Errorf("put room account data: user %s: %w", userID, engine.ErrNotFound)
	}
	if _, err := h.lookupRoom(roomID); err != nil {
		return fmt.Errorf("put room account data: %w", err)
	}
	h.putAccountData(accountDataKey{userID, roomID}, typ, c)
	return nil
}

// SetPresence implements engine.PresenceSetter. Each state must name a user
// and be online, unavailable or offline; nothing is stored unless all are.
func (h *Host) SetPresence(ctx context.Context, states []engine.PresenceState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, s := range states {
		if err := validUserID(s.UserID); err != nil {
			return fmt.Errorf("set presence: %w", err)
		}
		switch s.State {
		case "online", "unavailable", "offline":
		default:
			return fmt.Errorf("set presence: %w", refuse(ErrInvalid, "state %q for %s (want online, unavailable or offline)", s.State, s.UserID))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range states {
		h.presence[s.UserID] = presenceEntry{state: s, pos: h.advance()}
	}
	return nil
}

type presenceEntry struct {
	state engine.PresenceState
	pos   int64
}

// SendLocalOnlinePresenceTo implements engine.PresenceSender. With nobody
// to send to, it records the target list; see PresenceSentTo.
func (h *Host) SendLocalOnlinePresenceTo(ctx context.Context, userIDs []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.presenceSent = append(h.presenceSent, append([]string{}, userIDs...))
	return nil
}

// PresenceSentTo returns a copy of the target lists given to
// SendLocalOnlinePresenceTo, in call order. For tests.
func (h *Host) PresenceSentTo() [][]string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([][]string, len(h.presenceSent))
	for i, ids := range h.presenceSent {
		out[i] = append([]string{}, ids...)
	}
	return out
}

// Presence returns the last presence set for userID.
func (h *Host) Presence(userID string) (engine.PresenceState, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	e, ok := h.presence[userID]
	return e.state, ok
}
