// luahost glue for Dendrite, copied into clientapi/routing by run.sh; docs/embedding-dendrite.md explains it.
package routing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	appserviceAPI "github.com/element-hq/dendrite/appservice/api"
	"github.com/element-hq/dendrite/internal/httputil"
	rsAPI "github.com/element-hq/dendrite/roomserver/api"
	"github.com/element-hq/dendrite/roomserver/types"
	"github.com/element-hq/dendrite/setup/config"
	userapi "github.com/element-hq/dendrite/userapi/api"
	"github.com/luahost/luahost/engine"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/util"
	"github.com/sirupsen/logrus"
)

// luaEngine stays nil without LUAHOST_CONFIG: a nil engine has no modules and allows everything.
var luaEngine *engine.Engine

// StartLuahost loads the modules (reloading them as their files change), mounts their web
// resources under /_synapse/client/, and closes them when ctx ends.
func StartLuahost(ctx context.Context, routers httputil.Routers, cfg *config.Dendrite, rs rsAPI.ClientRoomserverAPI, users userapi.UserInternalAPI) {
	if file := os.Getenv("LUAHOST_CONFIG"); file != "" {
		var err error
		if luaEngine, err = engine.Start(ctx, file, engine.Options{Host: &luaHost{cfg, rs, users}}); err != nil {
			logrus.WithError(err).Fatal("luahost: modules did not load")
		}
		routers.SynapseAdmin.PathPrefix("/client/").Handler(luaEngine.Handler())
	}
}

// luahostCheckEvent asks check_event_for_spam about an event before it goes to the roomserver.
func luahostCheckEvent(ctx context.Context, pdu gomatrixserverlib.PDU) *util.JSONResponse {
	ev, err := engine.EventOf(pdu)
	if err != nil {
		return luahostRefusal(engine.NotSpam, err)
	}
	return luahostRefusal(luaEngine.CheckEventForSpam(ctx, ev))
}

// luahostRefusal is the response for a refusing or failing check, nil to go ahead.
func luahostRefusal(d engine.SpamDecision, err error) *util.JSONResponse {
	if e := engine.Refusal(d, err); e != nil {
		return &util.JSONResponse{Code: e.Code, JSON: e.ErrorBody()}
	}
	return nil
}

// luaHost is the engine.Host behind the modules' api.* calls.
type luaHost struct {
	cfg   *config.Dendrite
	rs    rsAPI.ClientRoomserverAPI
	users userapi.UserInternalAPI
}

func (h *luaHost) ServerName() string { return string(h.cfg.Global.ServerName) }

// UserInfo implements engine.UserInfoGetter: api.get_userinfo_by_id, api.is_user_admin.
func (h *luaHost) UserInfo(ctx context.Context, userID string) (*engine.UserInfo, error) {
	local, domain, err := gomatrixserverlib.SplitID('@', userID)
	if err != nil {
		return nil, engine.ErrNotFound
	}
	var res userapi.QueryAccountByLocalpartResponse
	err = h.users.QueryAccountByLocalpart(ctx, &userapi.QueryAccountByLocalpartRequest{Localpart: local, ServerName: domain}, &res)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, engine.ErrNotFound
	} else if err != nil {
		return nil, err
	}
	t := res.Account.AccountType
	return &engine.UserInfo{UserID: res.Account.UserID, IsAdmin: t == userapi.AccountTypeAdmin, IsGuest: t == userapi.AccountTypeGuest}, nil
}

// Profile implements engine.ProfileGetter: api.get_profile_for_user.
func (h *luaHost) Profile(ctx context.Context, userID string) (*engine.Profile, error) {
	p, err := h.users.QueryProfile(ctx, userID)
	if errors.Is(err, appserviceAPI.ErrProfileNotExists) {
		return nil, engine.ErrNotFound
	} else if err != nil {
		return nil, err
	}
	return &engine.Profile{DisplayName: p.DisplayName, AvatarURL: p.AvatarURL}, nil
}

// UserByAccessToken implements engine.TokenAuthenticator: api.get_user_by_req.
func (h *luaHost) UserByAccessToken(ctx context.Context, token string) (*engine.Requester, error) {
	var res userapi.QueryAccessTokenResponse
	if err := h.users.QueryAccessToken(ctx, &userapi.QueryAccessTokenRequest{AccessToken: token}, &res); err != nil || res.Device == nil {
		return nil, cmp.Or(err, engine.ErrNotFound)
	}
	d := res.Device
	return &engine.Requester{UserID: d.UserID, DeviceID: d.ID, IsGuest: d.AccountType == userapi.AccountTypeGuest, AppServiceID: d.AppserviceID, AccessToken: token}, nil
}

// RoomState implements engine.RoomStateGetter: api.get_room_state.
func (h *luaHost) RoomState(ctx context.Context, roomID string, filter []engine.StateFilter) (engine.StateMap, error) {
	var res rsAPI.QueryLatestEventsAndStateResponse
	if err := h.rs.QueryLatestEventsAndState(ctx, &rsAPI.QueryLatestEventsAndStateRequest{RoomID: roomID}, &res); err != nil || !res.RoomExists {
		return nil, cmp.Or(err, engine.ErrNotFound)
	}
	state := engine.StateMap{} // the engine applies api.get_room_state's filter
	for _, he := range res.StateEvents {
		ev, err := engine.EventOf(he)
		if err != nil {
			return nil, err
		}
		state.Put(ev)
	}
	return state, nil
}

// SendEvent implements engine.EventSender: api.create_and_send_event_into_room.
func (h *luaHost) SendEvent(ctx context.Context, ev *engine.Event) (*engine.Event, error) {
	pdu, res := generateSendEvent(ctx, ev.ContentMap(), &userapi.Device{UserID: ev.Sender}, ev.RoomID, ev.Type, ev.StateKey, h.rs, time.Now())
	if res != nil {
		return nil, fmt.Errorf("%d %+v", res.Code, res.JSON)
	}
	domain := h.cfg.Global.ServerName
	if err := rsAPI.SendEvents(ctx, h.rs, rsAPI.KindNew, []*types.HeaderedEvent{{PDU: pdu}}, domain, domain, domain, nil, false); err != nil {
		return nil, err
	}
	return engine.EventOf(pdu)
}
