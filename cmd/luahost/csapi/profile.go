package csapi

import (
	"errors"
	"strings"

	"github.com/luahost/luahost/engine"
)

// ---- profile ----

func (s *Server) profile(c *call, userID string) (*engine.Profile, error) {
	p, err := s.host.Profile(c.ctx(), userID)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Profile was not found"}
	}
	return p, err
}

func (s *Server) getProfile(c *call) (any, error) {
	p, err := s.profile(c, c.vars["user"])
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if p.DisplayName != "" {
		out["displayname"] = p.DisplayName
	}
	if p.AvatarURL != "" {
		out["avatar_url"] = p.AvatarURL
	}
	return out, nil
}

func (s *Server) getProfileField(c *call) (any, error) {
	p, err := s.profile(c, c.vars["user"])
	if err != nil {
		return nil, err
	}
	field := c.vars["field"]
	var v string
	switch field {
	case "displayname":
		v = p.DisplayName
	case "avatar_url":
		v = p.AvatarURL
	default:
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "The requested profile key does not exist."}
	}
	if v == "" {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "The requested profile key does not exist."}
	}
	return map[string]any{field: v}, nil
}

// putProfileField is Synapse's set_displayname / set_avatar_url: a user
// changes their own profile (an admin anyone's), the change goes into
// the rooms they joined, then on_profile_update.
func (s *Server) putProfileField(c *call) (any, error) {
	field := c.vars["field"]
	if field != "displayname" && field != "avatar_url" {
		return nil, badRequest("M_UNKNOWN", "Only displayname and avatar_url can be set on this server")
	}
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	target := c.vars["user"]
	if !strings.HasSuffix(target, ":"+s.host.ServerName()) {
		return nil, badRequest("M_UNKNOWN", "User is not hosted on this homeserver")
	}
	byAdmin := s.isAdmin(ctx, c.who.UserID)
	if !byAdmin && target != c.who.UserID {
		return nil, &engine.SynapseError{Code: 400, Errcode: "M_FORBIDDEN", Msg: "Cannot set another user's " + field}
	}
	value, ok := body[field].(string)
	if !ok {
		return nil, badRequest("M_INVALID_PARAM", "'"+field+"' must be a string")
	}
	if _, err := s.profile(c, target); err != nil {
		return nil, err
	}
	if field == "displayname" {
		if len(value) > 256 {
			return nil, badRequest("M_UNKNOWN", "Displayname is too long (max 256)")
		}
		err = s.host.SetDisplayName(ctx, target, strings.TrimSpace(value))
	} else {
		if len(value) > 1000 {
			return nil, badRequest("M_UNKNOWN", "Avatar URL is too long (max 1000)")
		}
		err = s.host.SetAvatarURL(ctx, target, value)
	}
	if err != nil {
		return nil, err
	}
	p, err := s.host.Profile(ctx, target)
	if err != nil {
		return nil, err
	}
	if err := s.eng.OnProfileUpdate(ctx, target, *p, byAdmin, false); err != nil {
		return nil, moduleErr("on_profile_update", err)
	}
	return map[string]any{}, nil
}

// ---- account data ----

func (s *Server) getAccountData(c *call) (any, error) {
	if c.vars["user"] != c.who.UserID {
		return nil, forbidden("Cannot get account data for other users.")
	}
	ctx := c.ctx()
	var content map[string]any
	var err error
	if room := c.vars["room"]; room != "" {
		content, err = s.host.RoomAccountData(ctx, c.who.UserID, room, c.vars["type"])
	} else {
		content, err = s.host.GlobalAccountData(ctx, c.who.UserID, c.vars["type"])
	}
	if err != nil {
		return nil, err
	}
	if content == nil {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Account data not found"}
	}
	return content, nil
}

// putAccountData stores account data, then on_account_data_updated, as
// Synapse's account data handler does.
func (s *Server) putAccountData(c *call) (any, error) {
	if c.vars["user"] != c.who.UserID {
		return nil, forbidden("Cannot add account data for other users.")
	}
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	ctx := c.ctx()
	room, typ := c.vars["room"], c.vars["type"]
	if room != "" {
		if !strings.HasPrefix(room, "!") {
			return nil, badRequest("M_INVALID_PARAM", room+" is not a valid room ID")
		}
		err = s.host.PutRoomAccountData(ctx, c.who.UserID, room, typ, body)
	} else {
		err = s.host.PutGlobalAccountData(ctx, c.who.UserID, typ, body)
	}
	if err != nil {
		return nil, err
	}
	if err := s.eng.OnAccountDataUpdated(ctx, c.who.UserID, room, typ, body); err != nil {
		return nil, moduleErr("on_account_data_updated", err)
	}
	return map[string]any{}, nil
}

// ---- user directory ----

// userDirectorySearch searches every local user (Synapse's
// search_all_users) and leaves out those check_username_for_spam calls
// spammy.
func (s *Server) userDirectorySearch(c *call) (any, error) {
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	term, ok := body["search_term"].(string)
	if !ok {
		return nil, badRequest("M_MISSING_PARAM", "Missing params: search_term")
	}
	limit := 10
	if l, ok := body["limit"].(float64); ok && l > 0 {
		limit = int(l)
	}
	ctx := c.ctx()
	found, more, err := s.host.SearchUsers(ctx, term, limit)
	if err != nil {
		return nil, err
	}
	results := []any{}
	for _, p := range found {
		spammy, err := s.eng.CheckUsernameForSpam(ctx, p, c.who.UserID)
		if err != nil {
			return nil, moduleErr("check_username_for_spam", err)
		}
		if !spammy {
			results = append(results, p)
		}
	}
	return map[string]any{"limited": more, "results": results}, nil
}
