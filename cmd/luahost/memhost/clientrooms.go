package memhost

import (
	"context"
	"fmt"
	"sort"

	"github.com/luahost/luahost/engine"
)

// What a Client-Server API needs of rooms beyond engine.Host.

// Membership returns userID's membership of a room ("" for none);
// ErrNotFound for an unknown room.
func (h *Host) Membership(ctx context.Context, roomID, userID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return "", err
	}
	return r.membership(userID), nil
}

// JoinedRooms lists the rooms userID has joined, sorted.
func (h *Host) JoinedRooms(ctx context.Context, userID string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := []string{}
	for _, r := range h.sortedRooms() {
		if r.membership(userID) == "join" {
			out = append(out, r.id)
		}
	}
	return out, nil
}

// EventByTxn returns the event a device sent into a room with a
// transaction ID, nil if it sent none: a repeated request gets it back
// instead of sending again.
func (h *Host) EventByTxn(ctx context.Context, roomID, deviceKey, txnID string) (*engine.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return nil, err
	}
	id, ok := r.txns[deviceKey+"\x00"+txnID]
	if !ok {
		return nil, nil
	}
	for _, st := range r.timeline {
		if st.ev.EventID == id {
			return cloneEvent(st.ev), nil
		}
	}
	return nil, nil
}

// SendClientEvent is SendEvent for a client's request: with a transaction
// ID, the event is remembered under (deviceKey, txnID), EventByTxn finds
// it, and the sending device sees the ID in unsigned.transaction_id.
func (h *Host) SendClientEvent(ctx context.Context, ev *engine.Event, deviceKey, txnID string) (*engine.Event, error) {
	stored, err := h.SendEvent(ctx, ev)
	if err != nil || txnID == "" {
		return stored, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[stored.RoomID]
	if r == nil {
		return stored, nil
	}
	if r.txns == nil {
		r.txns = map[string]string{}
	}
	r.txns[deviceKey+"\x00"+txnID] = stored.EventID
	for i := len(r.timeline) - 1; i >= 0; i-- {
		if r.timeline[i].ev.EventID == stored.EventID {
			r.timeline[i].device, r.timeline[i].txnID = deviceKey, txnID
			break
		}
	}
	return stored, nil
}

// Event returns one event of a room by ID (ErrNotFound if there is none).
func (h *Host) Event(ctx context.Context, roomID, eventID string) (*engine.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return nil, err
	}
	for _, st := range r.timeline {
		if st.ev.EventID == eventID {
			return cloneEvent(st.ev), nil
		}
	}
	return nil, fmt.Errorf("event %s: %w", eventID, engine.ErrNotFound)
}

// RoomCount is how many rooms exist.
func (h *Host) RoomCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sortedRooms())
}

// SetPublished lists a room in the room directory, or takes it off.
func (h *Host) SetPublished(ctx context.Context, roomID string, published bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return err
	}
	r.published = published
	return nil
}

// Published reports whether a room is listed in the room directory.
func (h *Host) Published(ctx context.Context, roomID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return false, err
	}
	return r.published, nil
}

// PublishedRooms lists the rooms in the room directory, sorted.
func (h *Host) PublishedRooms(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := []string{}
	for _, r := range h.sortedRooms() {
		if r.published {
			out = append(out, r.id)
		}
	}
	return out, nil
}

// ShutdownRoom is Synapse's admin room deletion: every joined local user
// leaves, the room's aliases and directory entry go, and the room is
// gone for every later request (only /sync still reports the leave).
// It returns the users made to leave and the aliases removed, sorted.
func (h *Host) ShutdownRoom(ctx context.Context, roomID string) (kicked, aliases []string, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.lookupRoom(roomID)
	if err != nil {
		return nil, nil, err
	}
	var members []string
	for userID, ev := range r.state[evMember] {
		if ev.Content["membership"] == "join" && h.isLocal(userID) {
			members = append(members, userID)
		}
	}
	sort.Strings(members)
	for _, userID := range members {
		r.append(stateEvent(evMember, userID, userID, map[string]any{"membership": "leave"}))
	}
	for alias, id := range h.aliases {
		if id == roomID {
			aliases = append(aliases, alias)
			delete(h.aliases, alias)
		}
	}
	sort.Strings(aliases)
	r.published = false
	r.deleted = true
	return append([]string{}, members...), aliases, nil
}

// Media is one uploaded file.
type Media struct {
	ID          string
	ContentType string
	UploadName  string
	Data        []byte
	UserID      string
	CreatedMS   int64
}

// NewMediaID picks an unused media ID, for a file that is checked before
// it is stored (StoreMediaAs).
func (h *Host) NewMediaID() string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for {
		id := randomToken(18)
		if h.media[id] == nil {
			return id
		}
	}
}

// StoreMediaAs keeps an uploaded file under the ID NewMediaID gave.
func (h *Host) StoreMediaAs(ctx context.Context, id, userID, contentType, uploadName string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.media[id] != nil {
		return fmt.Errorf("store media: %w", refuse(ErrInvalid, "media ID %s is taken", id))
	}
	h.media[id] = &Media{ID: id, ContentType: contentType, UploadName: uploadName,
		Data: append([]byte(nil), data...), UserID: userID, CreatedMS: nowMS()}
	return nil
}

// GetMedia returns a stored file (ErrNotFound if there is none). The
// data is shared: do not modify it.
func (h *Host) GetMedia(ctx context.Context, id string) (*Media, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	m := h.media[id]
	if m == nil {
		return nil, fmt.Errorf("media %s: %w", id, engine.ErrNotFound)
	}
	c := *m
	return &c, nil
}

// MediaUploadedSince is how many bytes userID uploaded at or after
// sinceMS (a Unix time in milliseconds).
func (h *Host) MediaUploadedSince(userID string, sinceMS int64) int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var n int64
	for _, m := range h.media {
		if m.UserID == userID && m.CreatedMS >= sinceMS {
			n += int64(len(m.Data))
		}
	}
	return n
}
