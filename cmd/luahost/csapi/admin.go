package csapi

import (
	"errors"
	"strings"

	"github.com/luahost/luahost/engine"
)

// adminDeactivate is POST /_synapse/admin/v1/deactivate/{user}:
// check_can_deactivate_user, then the deactivation (logging every device
// out, with on_logged_out for each), on_profile_update when erasing, and
// on_user_deactivation_status_changed.
func (s *Server) adminDeactivate(c *call) (any, error) {
	ctx := c.ctx()
	target := c.vars["user"]
	if !strings.HasSuffix(target, ":"+s.host.ServerName()) {
		return nil, badRequest("M_UNKNOWN", "Can only deactivate local users")
	}
	if _, err := s.host.UserInfo(ctx, target); errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "User not found"}
	} else if err != nil {
		return nil, err
	}
	body, err := c.object(true)
	if err != nil {
		return nil, err
	}
	erase := false
	if v, ok := body["erase"]; ok {
		if erase, ok = v.(bool); !ok {
			return nil, badRequest("M_BAD_JSON", "Param 'erase' must be a boolean, if given")
		}
	}
	ok, err := s.eng.CheckCanDeactivateUser(ctx, target, true)
	if err != nil {
		return nil, moduleErr("check_can_deactivate_user", err)
	}
	if !ok {
		return nil, forbidden("Deactivation of this user is forbidden")
	}
	removed, err := s.host.Deactivate(ctx, target, erase)
	if err != nil {
		return nil, err
	}
	if err := s.loggedOut(c, removed); err != nil {
		return nil, err
	}
	if erase {
		if err := s.eng.OnProfileUpdate(ctx, target, engine.Profile{}, true, true); err != nil {
			return nil, moduleErr("on_profile_update", err)
		}
	}
	if err := s.eng.OnUserDeactivationStatusChanged(ctx, target, true, true); err != nil {
		return nil, moduleErr("on_user_deactivation_status_changed", err)
	}
	return map[string]any{"id_server_unbind_result": "success"}, nil
}

// adminDeleteRoom is DELETE /_synapse/admin/v1/rooms/{room}:
// check_can_shutdown_room, then every local member leaves and the room
// is gone.
func (s *Server) adminDeleteRoom(c *call) (any, error) {
	ctx := c.ctx()
	roomID := c.vars["room"]
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"block", "purge", "force_purge"} {
		if v, ok := body[k]; ok {
			if _, ok := v.(bool); !ok {
				return nil, badRequest("M_BAD_JSON", "Param '"+k+"' must be a boolean, if given")
			}
		}
	}
	if !strings.HasPrefix(roomID, "!") || !strings.Contains(roomID, ":") {
		return nil, badRequest("M_UNKNOWN", roomID+" is not a legal room ID")
	}
	ok, err := s.eng.CheckCanShutdownRoom(ctx, c.who.UserID, roomID)
	if err != nil {
		return nil, moduleErr("check_can_shutdown_room", err)
	}
	if !ok {
		return nil, forbidden("Shutdown of this room is forbidden")
	}
	kicked, aliases, err := s.host.ShutdownRoom(ctx, roomID)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Unknown room " + roomID}
	}
	if err != nil {
		return nil, err
	}
	if kicked == nil {
		kicked = []string{}
	}
	if aliases == nil {
		aliases = []string{}
	}
	return map[string]any{"kicked_users": kicked, "failed_to_kick_users": []string{},
		"local_aliases": aliases, "new_room_id": nil}, nil
}

// backgroundJobs are the jobs Synapse's start_job admin API accepts that
// mean something here, with what each goes through.
var backgroundJobs = map[string]string{
	"populate_stats_process_rooms": "rooms",
	"regenerate_directory":         "users",
}

// adminStartJob is POST /_synapse/admin/v1/background_updates/start_job.
// There is no database here, so the update walks the rooms or users in
// memory, in batches the background update controller sizes
// (default_batch_size, min_batch_size, on_update and its end callback);
// unlike Synapse it runs to the end before answering.
func (s *Server) adminStartJob(c *call) (any, error) {
	body, err := c.object(false)
	if err != nil {
		return nil, err
	}
	name, ok := body["job_name"].(string)
	if !ok {
		return nil, badRequest("M_MISSING_PARAM", "Missing params: job_name")
	}
	kind, ok := backgroundJobs[name]
	if !ok {
		return nil, badRequest("M_UNKNOWN", "Invalid job_name")
	}
	ctx := c.ctx()
	total := 0
	if kind == "rooms" {
		total = s.host.RoomCount()
	} else {
		found, _, err := s.host.SearchUsers(ctx, "", 1<<30)
		if err != nil {
			return nil, err
		}
		total = len(found)
	}
	const db = "main"
	done := 0
	for batch := 0; done < total || batch == 0; batch++ {
		b, err := s.eng.OnUpdate(ctx, name, db, false)
		if err != nil {
			return nil, moduleErr("on_update", err)
		}
		var size int
		if batch == 0 {
			if size, err = s.eng.DefaultBatchSize(ctx, name, db); err != nil {
				return nil, moduleErr("default_batch_size", err)
			}
		} else {
			// The work takes no time here, so Synapse's scaling to the
			// target duration would take everything left.
			size = total - done
		}
		minSize, err := s.eng.MinBatchSize(ctx, name, db)
		if err != nil {
			return nil, moduleErr("min_batch_size", err)
		}
		size = min(max(size, minSize), total-done)
		done += size
		target := 100.0
		if b != nil {
			target = b.DurationMS
		}
		s.log.Info("background update batch", "update", name, "items", size, "done", done, "total", total, "target_ms", target)
		if err := b.Done(ctx); err != nil {
			return nil, moduleErr("on_update (batch end)", err)
		}
		if total == 0 {
			break
		}
	}
	return map[string]any{}, nil
}
