package gen

import (
	"fmt"
	"sort"
	"strings"

	"github.com/luahost/luahost/luaapi"
)

// The LuaLS (lua-language-server) stubs of module_api: every member of
// the api table (luaapi.APIMembers), every register function's callback
// table as an exact class whose fields are the catalogue's callbacks with
// their parameters and returns (so a misspelt callback name or a wrong
// return is flagged in the editor), and the shapes that cross the
// boundary (events, requests, responses, ...). stdlib/types/stdlib.lua's
// require overloads map require("module_api") to luahost.module_api.

// luaType is the LuaLS type of a callback argument.
func luaType(a luaapi.Arg) string {
	switch a.Go {
	case "*Requester":
		return "luahost.Requester"
	case "Profile":
		return "luahost.Profile"
	case "MediaUploadLimit":
		return "luahost.MediaUploadLimit"
	case "[]RequestInfo":
		return "luahost.RequestInfo[]"
	case "[]PresenceState":
		return "luahost.PresenceState[]"
	}
	switch a.Kind {
	case luaapi.KindEvent:
		return "luahost.Event"
	case luaapi.KindState:
		return "luahost.StateMap"
	case luaapi.KindString:
		return "string"
	case luaapi.KindOptStr:
		return "string?"
	case luaapi.KindBool:
		return "boolean"
	case luaapi.KindNumber:
		return "number"
	case luaapi.KindTable:
		return "table<string, any>"
	case luaapi.KindOptTable:
		return "table<string, any>?"
	case luaapi.KindArray:
		return "any[]"
	case luaapi.KindFile:
		return "luahost.File"
	case luaapi.KindRequest:
		return "luahost.Request"
	}
	panic("gen: no LuaLS type for argument kind " + string(a.Kind))
}

// returnType is what a callback returns, in LuaLS syntax ("" for nothing).
func returnType(c *luaapi.Callback) string {
	verdict := "string"
	switch c.Legacy {
	case luaapi.LegacyTrueAllow, luaapi.LegacyTrueSpam:
		verdict = "string|boolean"
	}
	switch c.Combine {
	case luaapi.CombineSpam, luaapi.CombineSpamThenInvite:
		return verdict + ", table<string, any>?"
	case luaapi.CombineFirstTrue, luaapi.CombineFirstFalse:
		return "boolean"
	case luaapi.CombineRegistration:
		return `"allow"|"shadow_ban"|"deny"`
	case luaapi.CombineEventAllowed:
		return "boolean, table<string, any>?"
	case luaapi.CombineFirstValue:
		switch c.Result {
		case "[]MediaUploadLimit":
			return "luahost.MediaUploadLimit[]?"
		case "*RatelimitOverride":
			return "luahost.RatelimitOverride?"
		}
		return "table<string, any>?"
	case luaapi.CombineOpinion:
		return "boolean?"
	case luaapi.CombineFirstString:
		return "string?"
	case luaapi.CombineAuth:
		return "string?, fun(login_response: table<string, any>)?"
	case luaapi.CombineMergeStates:
		return "table<string, luahost.PresenceState[]>"
	case luaapi.CombineUnionUsers:
		return `string[]|"ALL"`
	case luaapi.CombineMergeFields:
		return "table<string, any>?"
	case luaapi.CombineBatch:
		return "number, fun()?"
	case luaapi.CombineBatchSize:
		return "integer"
	case luaapi.CombineLegacyRenew:
		return "boolean, boolean, integer"
	case luaapi.CombineFirstInteger:
		return "integer?"
	case luaapi.CombineNotify, luaapi.CombineChain:
		return "" // the return is ignored
	}
	panic("gen: no LuaLS return type for the combine rule of " + c.ID())
}

// funType is a callback's function type.
func funType(c *luaapi.Callback) string {
	params := make([]string, len(c.Args))
	for i, a := range c.Args {
		params[i] = a.Name + ": " + luaType(a)
	}
	s := "fun(" + strings.Join(params, ", ") + ")"
	if r := returnType(c); r != "" {
		s += ": " + r
	}
	return s
}

// oneLine keeps a doc text on one comment line.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	return strings.Join(strings.Fields(s), " ")
}

// luaLSStubs renders stdlib/types/module_api.lua.
func luaLSStubs() string {
	var b strings.Builder
	b.WriteString(stubHeader)
	b.WriteString(stubShapes)

	b.WriteString("\n---------------------------------------------------------------- callbacks\n")
	for _, cat := range luaapi.Catalogue {
		fmt.Fprintf(&b, "\n---The table api.%s takes: callback name = function.\n", cat.RegisterFunc())
		fmt.Fprintf(&b, "---@class (exact) %s\n", luaapi.CallbacksClass(cat))
		for _, c := range cat.Callbacks {
			doc := "Returns " + oneLine(c.Returns) + ". Combine: " + oneLine(c.CombineText()) + "."
			if c.Name == "auth_checkers" {
				fmt.Fprintf(&b, "---@field auth_checkers? table<string, luahost.AuthChecker> # %s\n", "login type -> {fields, check}; check "+doc)
				continue
			}
			fmt.Fprintf(&b, "---@field %s? %s # %s\n", c.Name, funType(c), doc)
		}
		for _, c := range cat.Callbacks {
			if c.Name == "auth_checkers" {
				fmt.Fprintf(&b, "\n---One login type's checker.\n---@class (exact) luahost.AuthChecker\n")
				fmt.Fprintf(&b, "---@field fields string[] # The login_dict fields the checker needs.\n")
				fmt.Fprintf(&b, "---@field check %s\n", funType(c))
			}
		}
	}

	b.WriteString("\n---------------------------------------------------------------- module_api\n\n")
	b.WriteString("---The api table: M.new(config, api) receives it, and require(\"module_api\") returns it.\n")
	b.WriteString("---Reading a member it does not have raises \"api.X: no such function\".\n")
	b.WriteString("---@class luahost.module_api\nlocal module_api = {}\n")
	members := luaapi.APIMembers()
	for _, m := range members {
		writeMember(&b, "module_api", m)
	}
	var nilable []string
	nilable = append(nilable, luaapi.NilableMembers...)
	sort.Strings(nilable)
	for _, n := range nilable {
		found := false
		for _, m := range members {
			found = found || m.Name == n
		}
		if !found {
			fmt.Fprintf(&b, "\n---Set by hosts that have it; nil otherwise.\n---@type any?\nmodule_api.%s = nil\n", n)
		}
	}
	b.WriteString("\nreturn module_api\n")
	return b.String()
}

func writeMember(b *strings.Builder, owner string, m *luaapi.Member) {
	b.WriteString("\n")
	if m.Doc != "" {
		doc := oneLine(m.Doc)
		if m.Yields {
			doc += " Yields."
		}
		fmt.Fprintf(b, "---%s\n", doc)
	}
	switch m.Kind {
	case luaapi.MemberValue:
		fmt.Fprintf(b, "---@type %s\n%s.%s = nil\n", m.Type, owner, m.Name)
	case luaapi.MemberTable:
		fmt.Fprintf(b, "---@class %s\n%s.%s = {}\n", m.Class, owner, m.Name)
		for _, sub := range m.Members {
			writeMember(b, owner+"."+m.Name, sub)
		}
	case luaapi.MemberFunction:
		names := make([]string, len(m.Params))
		for i, p := range m.Params {
			names[i] = p.Name
			opt := ""
			if p.Optional {
				opt = "?"
			}
			if p.Name == "..." {
				fmt.Fprintf(b, "---@param ... %s\n", p.Type)
				continue
			}
			fmt.Fprintf(b, "---@param %s%s %s\n", p.Name, opt, p.Type)
		}
		for _, r := range m.Returns {
			if r.Name != "" {
				fmt.Fprintf(b, "---@return %s %s\n", r.Type, r.Name)
			} else {
				fmt.Fprintf(b, "---@return %s\n", r.Type)
			}
		}
		fmt.Fprintf(b, "function %s.%s(%s) end\n", owner, m.Name, strings.Join(names, ", "))
	}
}

const stubHeader = `---@meta
-- Code generated by go run ./internal/gen/cmd; DO NOT EDIT.
--
-- LuaLS (lua-language-server) definitions of luahost's module API:
-- module_api and its host functions, the callback tables of every
-- register_*_callbacks function, and the values that cross the boundary.
-- Point LuaLS at this folder (workspace.library in .luarc.json; luahost new
-- writes one) and annotate the constructor:
--
--     ---@param config table
--     ---@param api luahost.module_api
--     function M.new(config, api) ... end
--
-- docs/editor.md shows the set-up for VS Code and Neovim.
`

const stubShapes = `
---------------------------------------------------------------- values

---JSON null inside content (api.null, json.null).
---@class luahost.null: userdata

---A Matrix event, read-only: event:get_dict() gives a copy you may change.
---@class luahost.Event
---@field type string
---@field sender string
---@field room_id string?
---@field event_id string?
---@field state_key string? # nil unless it is a state event
---@field content table<string, any>
---@field unsigned table<string, any>?
---@field origin_server_ts integer?
---@field redacts string?
---@field membership string? # m.room.member events only
---@field get_dict fun(self: luahost.Event): table<string, any> # A plain table copy you may change.
---@field is_state fun(self: luahost.Event): boolean

---Room state: state[event_type][state_key] = event.
---@alias luahost.StateMap table<string, table<string, luahost.Event>>

---@class luahost.Requester
---@field user_id string
---@field device_id string?
---@field is_guest boolean
---@field shadow_banned boolean
---@field app_service_id string?

---@class luahost.UserInfo
---@field user_id string
---@field is_admin boolean
---@field is_guest boolean
---@field is_deactivated boolean
---@field is_shadow_banned boolean
---@field creation_ts integer # seconds
---@field locked boolean

---@class luahost.Profile
---@field display_name string?
---@field avatar_url string?

---@class luahost.RequestInfo
---@field user_agent string
---@field ip string

---@class luahost.PresenceState
---@field user_id string
---@field state "online"|"unavailable"|"offline"|string
---@field last_active_ts integer?
---@field status_msg string?
---@field currently_active boolean?

---@class luahost.MediaUploadLimit
---@field max_bytes integer
---@field time_period_ms integer

---@class luahost.RatelimitOverride
---@field per_second number # 0 disables the limit
---@field burst_count number

---An uploaded file (check_media_file_for_spam).
---@class luahost.File
---@field read fun(self: luahost.File): string # The file's bytes.

---A web request a handler receives.
---@class luahost.Request
---@field method string
---@field path string
---@field subpath string # the part below the registered path
---@field query table<string, string> # name -> first value
---@field query_all table<string, string[]>
---@field headers table<string, string> # lower-case name -> first value
---@field body string
---@field remote_addr string
---@field json fun(self: luahost.Request): any # The decoded body; malformed JSON answers 400 M_NOT_JSON.

---What a handler returns: {status=, json=} or {status=, html=} or {status=, headers=, body=}.
---@class luahost.Response
---@field status integer? # default 200
---@field headers table<string, string|string[]>?
---@field body string?
---@field json any?
---@field html string?

---@alias luahost.Handler fun(request: luahost.Request): luahost.Response|string|nil

---api.http_client.request's answer.
---@class luahost.HttpResponse
---@field code integer
---@field headers table<string, string> # lower-case name -> first value
---@field body string

---The error the JSON helpers of api.http_client raise on a non-2xx status.
---@class luahost.HttpResponseException
---@field code integer
---@field msg string
---@field body string
---@field message string

---@class luahost.ConfigError
---@field msg string

---@class luahost.SynapseError
---@field code integer
---@field msg string
---@field errcode string
---@field extra table<string, any>?

---A third-party identifier bound to an account.
---@class luahost.Threepid
---@field medium "email"|"msisdn"
---@field address string
---@field validated_at integer # milliseconds since the epoch
---@field added_at integer # milliseconds since the epoch

---A template api.read_templates loaded.
---@class luahost.Template
---@field render fun(vars: table<string, any>): string # t.render(vars) and t:render(vars) both work

---A Matrix identifier made by api.UserID, api.RoomID or api.RoomAlias.
---@class luahost.MatrixID
---@field localpart string
---@field domain string? # nil for room IDs of room versions without a domain
---@field id string # the whole identifier
---@field to_string fun(self: luahost.MatrixID): string
---@field get_domain fun(self: luahost.MatrixID): string?

---What the background call functions return.
---@class luahost.TimerHandle
---@field stop fun() # Stops the timer.
`
