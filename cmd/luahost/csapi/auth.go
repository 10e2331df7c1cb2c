package csapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/luahost/luahost/engine"
)

func (s *Server) addRoutes() {
	s.handle("GET", "/_matrix/client/versions", noAuth, s.versions)
	s.handle("GET", "/.well-known/matrix/client", noAuth, s.wellKnown)

	s.client("GET", "/login", noAuth, s.loginFlows)
	s.client("POST", "/login", noAuth, s.login)
	s.client("POST", "/logout", authAllowExpired, s.logout)
	s.client("POST", "/logout/all", authAllowExpired, s.logoutAll)
	s.client("POST", "/register", noAuth, s.register)
	s.client("GET", "/register/available", noAuth, s.registerAvailable)
	s.client("POST", "/register/email/requestToken", noAuth, s.emailRequestToken)
	s.client("GET", "/account/whoami", authRequired, s.whoami)
	s.client("GET", "/capabilities", authRequired, s.capabilities)
	s.handle("GET", "/_synapse/admin/v1/register", noAuth, s.sharedSecretNonce)
	s.handle("POST", "/_synapse/admin/v1/register", noAuth, s.sharedSecretRegister)

	s.client("POST", "/createRoom", authRequired, s.createRoom)
	s.client("POST", "/join/{room}", authRequired, s.join)
	s.client("POST", "/rooms/{room}/join", authRequired, s.join)
	s.client("POST", "/rooms/{room}/invite", authRequired, s.invite)
	s.client("POST", "/rooms/{room}/leave", authRequired, s.leave)
	s.client("POST", "/rooms/{room}/kick", authRequired, s.kick)
	s.client("POST", "/rooms/{room}/ban", authRequired, s.ban)
	s.client("POST", "/rooms/{room}/unban", authRequired, s.unban)
	s.client("PUT", "/rooms/{room}/send/{type}/{txn}", authRequired, s.send)
	s.client("PUT", "/rooms/{room}/state/{type}", authRequired, s.putState)
	s.client("PUT", "/rooms/{room}/state/{type}/{key}", authRequired, s.putState)
	s.client("GET", "/rooms/{room}/state", authRequired, s.getFullState)
	s.client("GET", "/rooms/{room}/state/{type}", authRequired, s.getState)
	s.client("GET", "/rooms/{room}/state/{type}/{key}", authRequired, s.getState)
	s.client("GET", "/rooms/{room}/messages", authRequired, s.messages)
	s.client("GET", "/rooms/{room}/event/{event}", authRequired, s.getEvent)
	s.client("GET", "/rooms/{room}/members", authRequired, s.members)
	s.client("GET", "/rooms/{room}/joined_members", authRequired, s.joinedMembers)
	s.client("GET", "/joined_rooms", authRequired, s.joinedRooms)
	s.client("GET", "/directory/room/{alias}", authRequired, s.resolveAlias)
	s.client("GET", "/directory/list/room/{room}", noAuth, s.getVisibility)
	s.client("PUT", "/directory/list/room/{room}", authRequired, s.putVisibility)
	s.client("GET", "/publicRooms", noAuth, s.publicRooms)

	s.client("GET", "/sync", authRequired, s.sync)
	s.client("POST", "/user/{user}/filter", authRequired, s.putFilter)
	s.client("GET", "/user/{user}/filter/{id}", authRequired, s.getFilter)
	s.client("GET", "/presence/{user}/status", authRequired, s.getPresence)
	s.client("PUT", "/presence/{user}/status", authRequired, s.putPresence)

	s.client("GET", "/profile/{user}", noAuth, s.getProfile)
	s.client("GET", "/profile/{user}/{field}", noAuth, s.getProfileField)
	s.client("PUT", "/profile/{user}/{field}", authRequired, s.putProfileField)
	s.client("GET", "/user/{user}/account_data/{type}", authRequired, s.getAccountData)
	s.client("PUT", "/user/{user}/account_data/{type}", authRequired, s.putAccountData)
	s.client("GET", "/user/{user}/rooms/{room}/account_data/{type}", authRequired, s.getAccountData)
	s.client("PUT", "/user/{user}/rooms/{room}/account_data/{type}", authRequired, s.putAccountData)
	s.client("POST", "/user_directory/search", authRequired, s.userDirectorySearch)

	for _, prefix := range []string{"/_matrix/media/v3", "/_matrix/media/r0", "/_matrix/client/v1/media"} {
		auth := noAuth // the legacy media API is unauthenticated
		if strings.HasPrefix(prefix, "/_matrix/client/") {
			auth = authRequired
		} else {
			s.handle("POST", prefix+"/upload", authRequired, s.upload)
		}
		s.handle("GET", prefix+"/config", authRequired, s.mediaConfig)
		for _, kind := range []string{"download", "thumbnail"} {
			s.handle("GET", prefix+"/"+kind+"/{server}/{media}", auth, s.download)
			s.handle("GET", prefix+"/"+kind+"/{server}/{media}/{filename}", auth, s.download)
		}
	}

	s.admin("POST", "/_synapse/admin/v1/deactivate/{user}", s.adminDeactivate)
	s.admin("DELETE", "/_synapse/admin/v1/rooms/{room}", s.adminDeleteRoom)
	s.admin("POST", "/_synapse/admin/v1/background_updates/start_job", s.adminStartJob)
}

func (s *Server) versions(c *call) (any, error) {
	return map[string]any{
		"versions": []string{"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
			"v1.9", "v1.10", "v1.11"},
		"unstable_features": map[string]any{},
	}, nil
}

// wellKnown points clients at this server, as the request reached it.
func (s *Server) wellKnown(c *call) (any, error) {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	return map[string]any{"m.homeserver": map[string]any{"base_url": scheme + "://" + c.r.Host + "/"}}, nil
}

func (s *Server) whoami(c *call) (any, error) {
	return map[string]any{"user_id": c.who.UserID, "device_id": c.who.DeviceID, "is_guest": false}, nil
}

func (s *Server) capabilities(c *call) (any, error) {
	return map[string]any{"capabilities": map[string]any{
		"m.change_password":    map[string]any{"enabled": false},
		"m.room_versions":      map[string]any{"default": "10", "available": map[string]any{"10": "stable"}},
		"m.set_displayname":    map[string]any{"enabled": true},
		"m.set_avatar_url":     map[string]any{"enabled": true},
		"m.3pid_changes":       map[string]any{"enabled": false},
		"m.get_login_token":    map[string]any{"enabled": false},
		"m.profile_fields":     map[string]any{"enabled": false},
		"org.matrix.lazy_load": map[string]any{"enabled": false},
	}}, nil
}

// ---- login ----

// loginFlows lists password login first (Synapse does, for clients that
// take the first), then the types modules accept.
func (s *Server) loginFlows(c *call) (any, error) {
	flows := []any{map[string]any{"type": "m.login.password"}}
	var types []string
	for t := range s.eng.LoginTypes() {
		if t != "m.login.password" {
			types = append(types, t)
		}
	}
	sort.Strings(types)
	for _, t := range types {
		flows = append(flows, map[string]any{"type": t})
	}
	return map[string]any{"flows": flows}, nil
}

func requestInfo(r *http.Request) []engine.RequestInfo {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return []engine.RequestInfo{{UserAgent: r.UserAgent(), IP: ip}}
}

const invalidLogin = "Invalid username or password"

func (s *Server) login(c *call) (any, error) {
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	loginType, ok := body["type"].(string)
	if !ok {
		return nil, badRequest("M_INVALID_PARAM", "Bad parameter: type")
	}
	password, _ := body["password"].(string)
	if loginType == "m.login.password" {
		if _, ok := body["password"].(string); !ok {
			return nil, badRequest("M_INVALID_PARAM", "Bad parameter: password")
		}
	}
	id := identifier(body)
	ctx := c.ctx()
	var res *engine.AuthResult
	userID := ""
	if id["type"] == "m.id.thirdparty" {
		medium, _ := id["medium"].(string)
		address, _ := id["address"].(string)
		if medium == "" || address == "" {
			return nil, badRequest("M_UNKNOWN", "Invalid thirdparty identifier")
		}
		if medium == "email" {
			address = strings.ToLower(address)
		}
		if loginType == "m.login.password" {
			res, err = s.eng.Check3PIDAuth(ctx, medium, address, password)
			if err != nil {
				return nil, moduleErr("check_3pid_auth", err)
			}
		}
		if res == nil {
			owner := ""
			if medium == "email" {
				owner, _ = s.host.UserByEmail(ctx, address)
			}
			if owner == "" {
				return nil, forbidden(invalidLogin)
			}
			id = map[string]any{"type": "m.id.user", "user": owner}
		}
	}
	if res == nil {
		if id["type"] != "m.id.user" {
			return nil, badRequest("M_UNKNOWN", "Unknown login identifier type")
		}
		user, _ := id["user"].(string)
		if user == "" {
			return nil, badRequest("M_UNKNOWN", "User identifier is missing 'user' key")
		}
		qualified := user
		if !strings.HasPrefix(user, "@") {
			qualified = "@" + user + ":" + s.host.ServerName()
		}
		known := false
		if fields, ok := s.eng.LoginTypes()[loginType]; ok {
			known = true
			var missing []string
			dict := map[string]any{}
			for _, f := range fields {
				v, ok := body[f]
				if !ok {
					missing = append(missing, f)
					continue
				}
				dict[f] = v
			}
			if len(missing) > 0 {
				return nil, badRequest("M_UNKNOWN", "Missing parameters for login type "+loginType+": ["+quoteList(missing)+"]")
			}
			res, err = s.eng.CheckAuth(ctx, user, loginType, dict)
			if err != nil {
				return nil, moduleErr("auth_checkers", err)
			}
		}
		if res == nil && loginType == "m.login.password" {
			known = true
			userID, err = s.host.CheckPassword(ctx, qualified, password)
			if err != nil {
				return nil, err
			}
		}
		if res == nil && userID == "" {
			if !known {
				return nil, badRequest("M_UNKNOWN", "Unknown login type "+loginType)
			}
			return nil, forbidden(invalidLogin)
		}
	}
	if res != nil {
		userID = res.UserID
	}
	return s.completeLogin(c, userID, loginType, body, res)
}

// completeLogin is Synapse's _complete_login: refuse deactivated users,
// ask check_login_for_spam, make the device, tell on_user_login, then the
// accepting module's on_logged_in.
func (s *Server) completeLogin(c *call, userID, loginType string, body map[string]any, res *engine.AuthResult) (any, error) {
	ctx := c.ctx()
	canonical, err := s.host.CheckUserExists(ctx, userID)
	if err != nil {
		return nil, err
	}
	if canonical == "" {
		return nil, forbidden(invalidLogin)
	}
	userID = canonical
	if info, err := s.host.UserInfo(ctx, userID); err == nil && info.Deactivated {
		return nil, &engine.SynapseError{Code: 403, Errcode: "M_USER_DEACTIVATED", Msg: "This account has been deactivated"}
	}
	deviceID, _ := body["device_id"].(string)
	if len(deviceID) > 512 {
		return nil, badRequest("M_INVALID_PARAM", "device_id cannot be longer than 512 characters.")
	}
	displayName, _ := body["initial_device_display_name"].(string)
	d, err := s.eng.CheckLoginForSpam(ctx, userID, deviceID, displayName, requestInfo(c.r), "")
	if err != nil {
		return nil, moduleErr("check_login_for_spam", err)
	}
	if !d.Allowed() {
		return nil, refusal(d, "Login was blocked by the server")
	}
	dev, err := s.host.RegisterDevice(ctx, userID, deviceID, displayName)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"user_id": userID, "access_token": dev.AccessToken,
		"home_server": s.host.ServerName(), "device_id": dev.DeviceID}
	if err := s.eng.OnUserLogin(ctx, userID, loginType, ""); err != nil {
		return nil, moduleErr("on_user_login", err)
	}
	if err := res.LoggedIn(ctx, resp); err != nil {
		return nil, moduleErr("on_logged_in", err)
	}
	return resp, nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = "'" + it + "'"
	}
	return strings.Join(q, ", ")
}

// identifier maps a login body to its identifier, with the legacy
// top-level user / medium+address fields converted as Synapse does.
func identifier(body map[string]any) map[string]any {
	if id, ok := body["identifier"].(map[string]any); ok {
		if id["type"] == "m.id.phone" {
			return map[string]any{"type": "m.id.thirdparty", "medium": "msisdn", "address": id["phone"]}
		}
		return id
	}
	if medium, ok := body["medium"].(string); ok {
		return map[string]any{"type": "m.id.thirdparty", "medium": medium, "address": body["address"]}
	}
	return map[string]any{"type": "m.id.user", "user": body["user"]}
}

func (s *Server) logout(c *call) (any, error) {
	removed, err := s.host.DeleteDevices(c.ctx(), c.who.UserID, []string{c.who.DeviceID})
	if err != nil {
		return nil, err
	}
	return map[string]any{}, s.loggedOut(c, removed)
}

func (s *Server) logoutAll(c *call) (any, error) {
	removed, err := s.host.DeleteDevices(c.ctx(), c.who.UserID, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{}, s.loggedOut(c, removed)
}

// loggedOut tells on_logged_out about every token that went, as
// Synapse's delete_access_tokens_for_user does.
func (s *Server) loggedOut(c *call, removed []engine.Device) error {
	for _, d := range removed {
		if err := s.eng.OnLoggedOut(c.ctx(), d.UserID, d.DeviceID, d.AccessToken); err != nil {
			return moduleErr("on_logged_out", err)
		}
	}
	return nil
}

// ---- registration ----

// checkUsername applies Synapse's check_username.
func (s *Server) checkUsername(c *call, localpart string) error {
	for _, r := range localpart {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("=_-./+", r)) {
			return badRequest("M_INVALID_USERNAME", "User ID can only contain characters a-z, 0-9, or '=_-./+'")
		}
	}
	if localpart == "" {
		return badRequest("M_INVALID_USERNAME", "User ID cannot be empty")
	}
	if localpart[0] == '_' {
		return badRequest("M_INVALID_USERNAME", "User ID may not begin with _")
	}
	userID := "@" + localpart + ":" + s.host.ServerName()
	if len(userID) > 255 {
		return badRequest("M_INVALID_USERNAME", "User ID may not be longer than 255 characters")
	}
	if taken, _ := s.host.CheckUserExists(c.ctx(), userID); taken != "" {
		return badRequest("M_USER_IN_USE", "User ID already taken.")
	}
	if strings.Trim(localpart, "0123456789") == "" {
		return badRequest("M_INVALID_USERNAME", "Numeric user IDs are reserved for guest users.")
	}
	return nil
}

func (s *Server) registerAvailable(c *call) (any, error) {
	name := strings.ToLower(c.r.URL.Query().Get("username"))
	if err := s.checkUsername(c, name); err != nil {
		return nil, err
	}
	return map[string]any{"available": true}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// register is POST /register with user-interactive auth: m.login.dummy,
// or m.login.email.identity with an email "validated" by
// /register/email/requestToken (this server sends no email).
func (s *Server) register(c *call) (any, error) {
	if kind := c.r.URL.Query().Get("kind"); kind != "" && kind != "user" {
		if kind == "guest" {
			return nil, forbidden("Guest access is disabled")
		}
		return nil, errUnrecognized()
	}
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	username := ""
	if v, ok := body["username"]; ok {
		u, ok := v.(string)
		if !ok || len(u) > 512 {
			return nil, badRequest("M_UNKNOWN", "Invalid username")
		}
		username = strings.ToLower(u)
	}
	password, hasPassword := body["password"].(string)
	if _, ok := body["password"]; ok && (!hasPassword || len(password) > 512) {
		return nil, badRequest("M_UNKNOWN", "Invalid password")
	}
	delete(body, "password")
	if username != "" {
		if err := s.checkUsername(c, username); err != nil {
			return nil, err
		}
	}
	auth, _ := body["auth"].(map[string]any)
	authResult := map[string]any{}
	switch t, _ := auth["type"].(string); t {
	case "m.login.dummy":
		authResult["m.login.dummy"] = true
	case "m.login.email.identity":
		creds, _ := auth["threepid_creds"].(map[string]any)
		sid, _ := creds["sid"].(string)
		secret, _ := creds["client_secret"].(string)
		s.mu.Lock()
		v, ok := s.emailSids[sid]
		s.mu.Unlock()
		if !ok || v.clientSecret != secret {
			return nil, &engine.SynapseError{Code: 401, Errcode: "M_UNAUTHORIZED", Msg: "Unable to get validated threepid"}
		}
		authResult["m.login.email.identity"] = map[string]any{"medium": "email", "address": v.email, "validated_at": v.validatedAt}
	default:
		// The first request: the flows this server offers.
		session, _ := auth["session"].(string)
		if session == "" {
			session = randomHex(12)
		}
		c.written = true
		writeJSON(c.w, http.StatusUnauthorized, map[string]any{
			"session": session,
			"flows": []any{
				map[string]any{"stages": []string{"m.login.dummy"}},
				map[string]any{"stages": []string{"m.login.email.identity"}},
			},
			"params": map[string]any{},
		})
		return nil, nil
	}
	ctx := c.ctx()
	var threepid map[string]any
	if tp, ok := authResult["m.login.email.identity"].(map[string]any); ok {
		threepid = tp
		address := tp["address"].(string)
		allowed, err := s.eng.Is3PIDAllowed(ctx, "email", address, true)
		if err != nil {
			return nil, moduleErr("is_3pid_allowed", err)
		}
		if !allowed {
			return nil, &engine.SynapseError{Code: 403, Errcode: "M_THREEPID_DENIED",
				Msg: "Third party identifiers (email/phone numbers) are not authorized on this server"}
		}
		if owner, _ := s.host.UserByEmail(ctx, address); owner != "" {
			return nil, badRequest("M_THREEPID_IN_USE", "email is already in use")
		}
	}
	if !hasPassword {
		return nil, badRequest("M_MISSING_PARAM", "Missing params: password")
	}
	if name, ok, err := s.eng.GetUsernameForRegistration(ctx, authResult, body); err != nil {
		return nil, moduleErr("get_username_for_registration", err)
	} else if ok {
		username = strings.ToLower(name)
	}
	displayName, hasDisplayName, err := s.eng.GetDisplaynameForRegistration(ctx, authResult, body)
	if err != nil {
		return nil, moduleErr("get_displayname_for_registration", err)
	}
	if username == "" {
		username = "user-" + strings.ToLower(randomHex(4))
	}
	userID, err := s.registerUser(c, username, password, displayName, hasDisplayName, false, threepid)
	if err != nil {
		return nil, err
	}
	return s.registrationDetails(c, userID, body)
}

// registerUser is Synapse's RegistrationHandler.register_user plus the
// post-registration steps: check_registration_for_spam, the account,
// on_user_registration, the email binding.
func (s *Server) registerUser(c *call, localpart, password, displayName string, hasDisplayName, admin bool, threepid map[string]any) (string, error) {
	ctx := c.ctx()
	behaviour, err := s.eng.CheckRegistrationForSpam(ctx, threepid, localpart, requestInfo(c.r), "")
	if err != nil {
		return "", moduleErr("check_registration_for_spam", err)
	}
	if behaviour == engine.RegistrationDeny {
		s.log.Info("registration refused by check_registration_for_spam", "localpart", localpart)
		// Synapse answers 429 so that it is not obvious they were denied.
		return "", &engine.SynapseError{Code: 429, Errcode: "M_UNKNOWN", Msg: "Rate limited"}
	}
	if err := s.checkUsername(c, localpart); err != nil {
		return "", err
	}
	if !hasDisplayName {
		displayName = localpart
	}
	userID, err := s.host.RegisterUser(ctx, engine.NewUser{Localpart: localpart, DisplayName: displayName, Admin: admin})
	if err != nil {
		return "", err
	}
	if err := s.host.SetPassword(ctx, userID, password); err != nil {
		return "", err
	}
	if behaviour == engine.RegistrationShadowBan {
		s.log.Info("registration shadow-banned by check_registration_for_spam", "user_id", userID)
		if err := s.host.SetShadowBanned(userID, true); err != nil {
			return "", err
		}
	}
	if err := s.eng.OnUserRegistration(ctx, userID); err != nil {
		return "", moduleErr("on_user_registration", err)
	}
	if threepid != nil {
		address := threepid["address"].(string)
		if err := s.host.AddEmail(ctx, userID, address); err != nil {
			return "", err
		}
		if err := s.eng.OnAddUserThirdPartyIdentifier(ctx, userID, "email", address); err != nil {
			return "", moduleErr("on_add_user_third_party_identifier", err)
		}
	}
	return userID, nil
}

// registrationDetails logs the new user in (unless inhibit_login).
func (s *Server) registrationDetails(c *call, userID string, params map[string]any) (any, error) {
	resp := map[string]any{"user_id": userID, "home_server": s.host.ServerName()}
	if inhibit, _ := params["inhibit_login"].(bool); inhibit {
		return resp, nil
	}
	deviceID, _ := params["device_id"].(string)
	name, _ := params["initial_device_display_name"].(string)
	dev, err := s.host.RegisterDevice(c.ctx(), userID, deviceID, name)
	if err != nil {
		return nil, err
	}
	resp["access_token"] = dev.AccessToken
	resp["device_id"] = dev.DeviceID
	return resp, nil
}

// emailRequestToken starts an email registration. No email is sent:
// the address counts as validated at once, which a development server
// can afford and lets is_3pid_allowed and check_registration_for_spam see
// a threepid.
func (s *Server) emailRequestToken(c *call) (any, error) {
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	secret, _ := body["client_secret"].(string)
	email, _ := body["email"].(string)
	if secret == "" || email == "" {
		return nil, badRequest("M_MISSING_PARAM", "Missing params: client_secret, email")
	}
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return nil, badRequest("M_UNKNOWN", "Unable to parse email address")
	}
	email = email[:at+1] + strings.ToLower(email[at+1:])
	ctx := c.ctx()
	allowed, err := s.eng.Is3PIDAllowed(ctx, "email", email, true)
	if err != nil {
		return nil, moduleErr("is_3pid_allowed", err)
	}
	if !allowed {
		return nil, &engine.SynapseError{Code: 403, Errcode: "M_THREEPID_DENIED", Msg: "Your email domain is not authorized to register on this server"}
	}
	if owner, _ := s.host.UserByEmail(ctx, email); owner != "" {
		return nil, badRequest("M_THREEPID_IN_USE", "Email is already in use")
	}
	sid := randomHex(8)
	s.mu.Lock()
	s.emailSids[sid] = emailValidation{clientSecret: secret, email: email, validatedAt: time.Now().UnixMilli()}
	s.mu.Unlock()
	s.log.Info("dev homeserver: no email sent; the address counts as validated", "email", email, "sid", sid)
	return map[string]any{"sid": sid}, nil
}

// ---- shared-secret registration (Synapse's admin API) ----

func (s *Server) sharedSecretNonce(c *call) (any, error) {
	nonce := randomHex(32)
	s.mu.Lock()
	for n, t := range s.nonces {
		if time.Since(t) > time.Minute {
			delete(s.nonces, n)
		}
	}
	s.nonces[nonce] = time.Now()
	s.mu.Unlock()
	return map[string]any{"nonce": nonce}, nil
}

func (s *Server) sharedSecretRegister(c *call) (any, error) {
	if s.opts.RegistrationSharedSecret == "" {
		return nil, badRequest("M_UNKNOWN", "Shared secret registration is not enabled")
	}
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	nonce, ok := body["nonce"].(string)
	if !ok {
		return nil, badRequest("M_BAD_JSON", "nonce must be specified")
	}
	s.mu.Lock()
	issued, known := s.nonces[nonce]
	delete(s.nonces, nonce)
	s.mu.Unlock()
	if !known || time.Since(issued) > time.Minute {
		return nil, badRequest("M_UNKNOWN", "unrecognised nonce")
	}
	username, ok := body["username"].(string)
	if !ok {
		return nil, badRequest("M_BAD_JSON", "username must be specified")
	}
	password, ok := body["password"].(string)
	if !ok {
		return nil, badRequest("M_BAD_JSON", "password must be specified")
	}
	if len(username) > 512 || strings.ContainsRune(username, 0) {
		return nil, badRequest("M_UNKNOWN", "Invalid username")
	}
	if len(password) > 512 || strings.ContainsRune(password, 0) {
		return nil, badRequest("M_UNKNOWN", "Invalid password")
	}
	admin, _ := body["admin"].(bool)
	gotMAC, ok := body["mac"].(string)
	if !ok {
		return nil, badRequest("M_BAD_JSON", "mac must be specified")
	}
	mac := hmac.New(sha1.New, []byte(s.opts.RegistrationSharedSecret))
	mac.Write([]byte(nonce + "\x00" + username + "\x00" + password + "\x00"))
	if admin {
		mac.Write([]byte("admin"))
	} else {
		mac.Write([]byte("notadmin"))
	}
	if !hmac.Equal([]byte(hex.EncodeToString(mac.Sum(nil))), []byte(gotMAC)) {
		return nil, &engine.SynapseError{Code: 403, Errcode: "M_UNKNOWN", Msg: "HMAC incorrect"}
	}
	displayName, hasDisplayName := body["displayname"].(string)
	userID, err := s.registerUser(c, strings.ToLower(username), password, displayName, hasDisplayName, admin, nil)
	if err != nil {
		return nil, err
	}
	return s.registrationDetails(c, userID, body)
}
