package memhost

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"sort"
	"strings"

	"github.com/luahost/luahost/engine"
)

// What a Client-Server API needs beyond engine.Host: passwords, devices
// and their tokens, logging out, deactivation, emails and avatars.

// passwordHash is a salted SHA-256: the server lives in memory and dies
// with its process, so a slow hash would only slow the tests down.
func passwordHash(salt, password string) []byte {
	sum := sha256.Sum256([]byte(salt + "\x00" + password))
	return sum[:]
}

// SetPassword sets a user's password ("" removes it: no password login).
func (h *Host) SetPassword(ctx context.Context, userID, password string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("set password: user %s: %w", userID, engine.ErrNotFound)
	}
	if password == "" {
		u.salt, u.password = "", nil
		return nil
	}
	u.salt = randomToken(16)
	u.password = passwordHash(u.salt, password)
	return nil
}

// CheckPassword returns the canonical ID of the user whose ID matches
// userID ignoring case and whose password is password, or "" when there
// is none (unknown user, wrong password, no password, deactivated).
func (h *Host) CheckPassword(ctx context.Context, userID, password string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	u := h.users[h.usersFolded[strings.ToLower(userID)]]
	if u == nil || u.password == nil || u.deactivated {
		return "", nil
	}
	if subtle.ConstantTimeCompare(passwordHash(u.salt, password), u.password) != 1 {
		return "", nil
	}
	return u.id, nil
}

// SetShadowBanned marks a user shadow-banned (or not): their messages and
// invites seem to succeed but go nowhere, as in Synapse.
func (h *Host) SetShadowBanned(userID string, banned bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("shadow ban: user %s: %w", userID, engine.ErrNotFound)
	}
	u.shadowBanned = banned
	return nil
}

// AddEmail binds an email address to a user (addresses are compared in
// lower case).
func (h *Host) AddEmail(ctx context.Context, userID, email string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("add email: user %s: %w", userID, engine.ErrNotFound)
	}
	email = strings.ToLower(email)
	for _, tp := range u.threepids {
		if tp.Medium == "email" && tp.Address == email {
			return nil
		}
	}
	now := nowMS()
	u.addThreepid(engine.Threepid{Medium: "email", Address: email, ValidatedAt: now, AddedAt: now})
	return nil
}

// UserByEmail returns the user an email address is bound to, "" if none.
func (h *Host) UserByEmail(ctx context.Context, email string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	email = strings.ToLower(email)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, u := range h.users {
		for _, tp := range u.threepids {
			if tp.Medium == "email" && tp.Address == email {
				return u.id, nil
			}
		}
	}
	return "", nil
}

// SetAvatarURL sets a user's avatar and, as Synapse does, sends it as a
// membership event into every room they have joined.
func (h *Host) SetAvatarURL(ctx context.Context, userID, avatarURL string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("set avatar: user %s: %w", userID, engine.ErrNotFound)
	}
	u.avatarURL = avatarURL
	h.propagateProfile(u)
	return nil
}

// propagateProfile sends the user's profile into the rooms they joined;
// h.mu is held.
func (h *Host) propagateProfile(u *user) {
	for _, r := range h.sortedRooms() {
		cur := r.state.Get(evMember, u.id)
		if cur == nil || cur.Content["membership"] != "join" {
			continue
		}
		content := cloneMap(cur.Content)
		delete(content, "displayname")
		delete(content, "avatar_url")
		if u.displayName != "" {
			content["displayname"] = u.displayName
		}
		if u.avatarURL != "" {
			content["avatar_url"] = u.avatarURL
		}
		r.append(stateEvent(evMember, u.id, u.id, content))
	}
}

// sortedRooms lists the live rooms by ID, so that changes touching
// several rooms happen in a stable order; h.mu is held.
func (h *Host) sortedRooms() []*room {
	ids := make([]string, 0, len(h.rooms))
	for id, r := range h.rooms {
		if !r.deleted {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := make([]*room, len(ids))
	for i, id := range ids {
		out[i] = h.rooms[id]
	}
	return out
}

// DeleteAccessToken logs one token out; it returns the device it
// belonged to (ErrNotFound for an unknown token).
func (h *Host) DeleteAccessToken(ctx context.Context, token string) (*engine.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.tokens[token]
	if !ok {
		return nil, engine.ErrNotFound
	}
	delete(h.tokens, token)
	return &engine.Device{UserID: s.userID, DeviceID: s.deviceID, AccessToken: token}, nil
}

// DeleteDevices removes a user's devices (all of them when deviceIDs is
// nil) and every token issued to them; it returns the tokens removed,
// sorted, so the caller can tell modules about each logout.
func (h *Host) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) ([]engine.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deleteDevices(userID, deviceIDs), nil
}

func (h *Host) deleteDevices(userID string, deviceIDs []string) []engine.Device {
	match := func(string) bool { return true }
	if deviceIDs != nil {
		set := map[string]bool{}
		for _, d := range deviceIDs {
			set[d] = true
		}
		match = func(d string) bool { return set[d] }
	}
	var out []engine.Device
	for token, s := range h.tokens {
		if s.userID == userID && match(s.deviceID) {
			delete(h.tokens, token)
			out = append(out, engine.Device{UserID: userID, DeviceID: s.deviceID, AccessToken: token})
		}
	}
	if u := h.users[userID]; u != nil {
		for d := range u.devices {
			if match(d) {
				delete(u.devices, d)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AccessToken < out[j].AccessToken })
	return out
}

// Deactivate deactivates a user as Synapse does: every device and token
// goes (returned, for the logout notifications), the password too, the
// user leaves every room they joined and every invite is rejected; with
// erase, the display name and avatar are removed.
func (h *Host) Deactivate(ctx context.Context, userID string, erase bool) ([]engine.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return nil, fmt.Errorf("deactivate: user %s: %w", userID, engine.ErrNotFound)
	}
	removed := h.deleteDevices(userID, nil)
	u.salt, u.password = "", nil
	u.deactivated = true
	u.threepids = nil // as Synapse, deactivation unbinds every threepid
	if erase {
		u.displayName, u.avatarURL = "", ""
	}
	for _, r := range h.sortedRooms() {
		switch r.membership(userID) {
		case "join", "invite", "knock":
			r.append(stateEvent(evMember, userID, userID, map[string]any{"membership": "leave"}))
		}
	}
	return removed, nil
}

// SearchUsers returns the profiles of active local users whose ID or
// display name contains term (ignoring case), sorted by user ID, at most
// limit; more reports whether there were others.
func (h *Host) SearchUsers(ctx context.Context, term string, limit int) (results []map[string]any, more bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	term = strings.ToLower(term)
	h.mu.RLock()
	defer h.mu.RUnlock()
	ids := make([]string, 0, len(h.users))
	for id, u := range h.users {
		if u.deactivated {
			continue
		}
		if strings.Contains(strings.ToLower(id), term) || strings.Contains(strings.ToLower(u.displayName), term) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if len(results) == limit {
			return results, true, nil
		}
		u := h.users[id]
		p := map[string]any{"user_id": id}
		if u.displayName != "" {
			p["display_name"] = u.displayName
		}
		if u.avatarURL != "" {
			p["avatar_url"] = u.avatarURL
		}
		results = append(results, p)
	}
	return results, false, nil
}
