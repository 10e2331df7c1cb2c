package memhost

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/luahost/luahost/engine"
)

type user struct {
	id           string
	displayName  string
	avatarURL    string
	admin        bool
	shadowBanned bool
	creationTS   int64 // seconds, as Synapse stores it
	threepids    []engine.Threepid
	devices      map[string]string // device ID → display name
	salt         string
	password     []byte // passwordHash(salt, password); nil: no password
	deactivated  bool
	expiresAt    int64 // ms since the epoch; 0: never (SetAccountExpiry)
}

type session struct{ userID, deviceID string }

// checkLocalpart applies Synapse's rules for a new registration: the
// Matrix user ID grammar, no leading underscore (reserved for application
// services) and no all-digit localparts (reserved for guests).
func (h *Host) checkLocalpart(localpart string) error {
	if localpart == "" {
		return refuse(ErrInvalid, "localpart is empty")
	}
	for _, r := range localpart {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', strings.ContainsRune("._=-/", r):
		default:
			return refuse(ErrInvalid, "localpart %q: user IDs may only contain a-z, 0-9, '.', '_', '=', '-' and '/'", localpart)
		}
	}
	if localpart[0] == '_' {
		return refuse(ErrInvalid, "localpart %q: user IDs may not begin with '_'", localpart)
	}
	if strings.Trim(localpart, "0123456789") == "" {
		return refuse(ErrInvalid, "localpart %q: numeric user IDs are reserved for guest users", localpart)
	}
	if id := "@" + localpart + ":" + h.serverName; len(id) > 255 {
		return refuse(ErrInvalid, "user ID %q is longer than 255 bytes", id)
	}
	return nil
}

// CheckUserExists implements engine.UserChecker: the match ignores case and
// the canonical ID is returned, "" when there is no such user.
func (h *Host) CheckUserExists(ctx context.Context, userID string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.usersFolded[strings.ToLower(userID)], nil
}

// UserInfo implements engine.UserInfoGetter. CreationTS is in seconds, as in
// Synapse.
func (h *Host) UserInfo(ctx context.Context, userID string) (*engine.UserInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	u := h.users[userID]
	if u == nil {
		return nil, engine.ErrNotFound
	}
	return &engine.UserInfo{
		UserID:       u.id,
		IsAdmin:      u.admin,
		ShadowBanned: u.shadowBanned,
		CreationTS:   u.creationTS,
		Deactivated:  u.deactivated,
	}, nil
}

// Profile implements engine.ProfileGetter.
func (h *Host) Profile(ctx context.Context, userID string) (*engine.Profile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	u := h.users[userID]
	if u == nil {
		return nil, engine.ErrNotFound
	}
	return &engine.Profile{DisplayName: u.displayName, AvatarURL: u.avatarURL}, nil
}

// SetDisplayName implements engine.DisplayNameSetter. As in Synapse, the new name
// is also sent as a membership event into every room the user has joined.
func (h *Host) SetDisplayName(ctx context.Context, userID, displayName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(displayName) > 256 {
		return refuse(ErrInvalid, "display name is longer than 256 bytes")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return fmt.Errorf("set display name: user %s: %w", userID, engine.ErrNotFound)
	}
	u.displayName = displayName
	h.propagateProfile(u)
	return nil
}

// RegisterUser implements engine.UserRegisterer. It refuses a localpart that is
// taken (ErrUserInUse, ignoring case) or outside the Matrix grammar
// (ErrInvalid). The display name defaults to the localpart.
func (h *Host) RegisterUser(ctx context.Context, nu engine.NewUser) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := h.checkLocalpart(nu.Localpart); err != nil {
		return "", fmt.Errorf("register user: %w", err)
	}
	id := "@" + nu.Localpart + ":" + h.serverName
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, taken := h.usersFolded[strings.ToLower(id)]; taken {
		return "", fmt.Errorf("register user: %w", refuse(ErrUserInUse, "%s", id))
	}
	name := nu.DisplayName
	if name == "" {
		name = nu.Localpart
	}
	u := &user{
		id:          id,
		displayName: name,
		admin:       nu.Admin,
		creationTS:  time.Now().Unix(),
		devices:     map[string]string{},
	}
	// As Synapse's register_user, the emails become validated threepids.
	now := nowMS()
	for _, e := range nu.Emails {
		u.addThreepid(engine.Threepid{Medium: "email", Address: e, ValidatedAt: now, AddedAt: now})
	}
	h.users[id] = u
	h.usersFolded[strings.ToLower(id)] = id
	return id, nil
}

// RegisterDevice implements engine.DeviceRegisterer. An empty deviceID picks a
// random one; an existing device is kept and gets a further token.
// Tokens look like Synapse's: syt_<base64 localpart>_<random>.
func (h *Host) RegisterDevice(ctx context.Context, userID, deviceID, initialDisplayName string) (*engine.Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return nil, fmt.Errorf("register device: user %s: %w", userID, engine.ErrNotFound)
	}
	if deviceID == "" {
		for {
			deviceID = randomUpper(10)
			if _, taken := u.devices[deviceID]; !taken {
				break
			}
		}
	}
	if _, ok := u.devices[deviceID]; !ok {
		u.devices[deviceID] = initialDisplayName
	}
	localpart, _, _ := splitID(userID)
	token := "syt_" + base64.RawURLEncoding.EncodeToString([]byte(localpart)) + "_" + randomToken(24)
	h.tokens[token] = session{userID: userID, deviceID: deviceID}
	return &engine.Device{UserID: userID, DeviceID: deviceID, AccessToken: token}, nil
}

// UserByAccessToken implements engine.TokenAuthenticator.
func (h *Host) UserByAccessToken(ctx context.Context, token string) (*engine.Requester, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.tokens[token]
	if !ok {
		return nil, engine.ErrNotFound
	}
	u := h.users[s.userID]
	if u == nil {
		return nil, engine.ErrNotFound
	}
	return &engine.Requester{
		UserID:       u.id,
		DeviceID:     s.deviceID,
		ShadowBanned: u.shadowBanned,
		AccessToken:  token,
	}, nil
}

// CreateUser is the CLI's development helper (`luahost serve --dev-user`):
// it registers userID (a full "@alice:server" or just "alice") unless a
// user by that ID exists, ignoring case, then creates a new device and
// returns its access token. admin=true also makes an existing user an
// admin; admin=false never demotes one.
func (h *Host) CreateUser(userID string, admin bool) (accessToken string, err error) {
	ctx := context.Background()
	if !strings.HasPrefix(userID, "@") {
		userID = "@" + userID + ":" + h.serverName
	}
	if err := validUserID(userID); err != nil {
		return "", fmt.Errorf("create user: %w", err)
	}
	localpart, server, _ := splitID(userID)
	if server != h.serverName {
		return "", fmt.Errorf("create user: %w", refuse(ErrInvalid, "%s is not on this server (%s)", userID, h.serverName))
	}
	id, _ := h.CheckUserExists(ctx, userID)
	if id == "" {
		id, err = h.RegisterUser(ctx, engine.NewUser{Localpart: localpart, Admin: admin})
		if errors.Is(err, ErrUserInUse) { // registered meanwhile by another caller
			id, err = h.CheckUserExists(ctx, userID)
		}
		if err != nil {
			return "", err
		}
	}
	if admin {
		h.mu.Lock()
		h.users[id].admin = true
		h.mu.Unlock()
	}
	dev, err := h.RegisterDevice(ctx, id, "", "luahost dev")
	if err != nil {
		return "", err
	}
	return dev.AccessToken, nil
}
