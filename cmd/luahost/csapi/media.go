package csapi

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/luahost/luahost/engine"
)

// upload is Synapse's media upload: the size limits
// (is_user_allowed_to_upload_media_of_size), check_media_file_for_spam on
// the stored bytes, then the time-based limits
// (get_media_upload_limits_for_user, on_media_upload_limit_exceeded).
func (s *Server) upload(c *call) (any, error) {
	ctx := c.ctx()
	userID := c.who.UserID
	if c.r.ContentLength < 0 {
		return nil, badRequest("M_UNKNOWN", "Request must specify a Content-Length")
	}
	size := c.r.ContentLength
	tooLarge := &engine.SynapseError{Code: 413, Errcode: "M_TOO_LARGE", Msg: "Upload request body is too large"}
	if size > s.opts.MaxUploadSize {
		return nil, tooLarge
	}
	ok, err := s.eng.IsUserAllowedToUploadMediaOfSize(ctx, userID, size)
	if err != nil {
		return nil, moduleErr("is_user_allowed_to_upload_media_of_size", err)
	}
	if !ok {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(c.r.Body, size+1))
	if err != nil {
		return nil, badRequest("M_UNKNOWN", "Could not read the upload")
	}
	if int64(len(data)) != size {
		return nil, badRequest("M_UNKNOWN", "Content-Length does not match the body")
	}
	name := c.r.URL.Query().Get("filename")
	mediaType := c.r.Header.Get("Content-Type")
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	id := s.host.NewMediaID()
	d, err := s.eng.CheckMediaFileForSpam(ctx, func() ([]byte, error) { return data, nil }, map[string]any{
		"server_name": nil, "file_id": id, "upload_name": nilIfEmpty(name), "media_type": mediaType,
		"media_length": size, "thumbnail": nil,
	})
	if err != nil {
		return nil, moduleErr("check_media_file_for_spam", err)
	}
	if !d.Allowed() {
		// Synapse ignores the module's errcode here and answers 400.
		return nil, badRequest("M_UNKNOWN", "Bad content")
	}
	limits, err := s.eng.GetMediaUploadLimitsForUser(ctx, userID)
	if err != nil {
		return nil, moduleErr("get_media_upload_limits_for_user", err)
	}
	now := time.Now().UnixMilli()
	for _, l := range limits {
		sent := s.host.MediaUploadedSince(userID, now-l.TimePeriodMS)
		if sent+size > l.MaxBytes {
			if err := s.eng.OnMediaUploadLimitExceeded(ctx, userID, l, sent, size); err != nil {
				return nil, moduleErr("on_media_upload_limit_exceeded", err)
			}
			return nil, badRequest("M_RESOURCE_LIMIT_EXCEEDED", "Media upload limit exceeded")
		}
	}
	if err := s.host.StoreMediaAs(ctx, id, userID, mediaType, name, data); err != nil {
		return nil, err
	}
	return map[string]any{"content_uri": "mxc://" + s.host.ServerName() + "/" + id}, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) mediaConfig(c *call) (any, error) {
	cfg, err := s.eng.GetMediaConfigForUser(c.ctx(), c.who.UserID)
	if err != nil {
		return nil, moduleErr("get_media_config_for_user", err)
	}
	if len(cfg) == 0 {
		return map[string]any{"m.upload.size": s.opts.MaxUploadSize}, nil
	}
	return cfg, nil
}

// download serves a stored file (thumbnails too: this server does not
// scale images, it sends the original).
func (s *Server) download(c *call) (any, error) {
	if c.vars["server"] != s.host.ServerName() {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Not found"}
	}
	m, err := s.host.GetMedia(c.ctx(), c.vars["media"])
	if errors.Is(err, engine.ErrNotFound) {
		return nil, &engine.SynapseError{Code: 404, Errcode: "M_NOT_FOUND", Msg: "Not found"}
	}
	if err != nil {
		return nil, err
	}
	name := c.vars["filename"]
	if name == "" {
		name = m.UploadName
	}
	h := c.w.Header()
	h.Set("Content-Type", m.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(m.Data)))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if name != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("inline", map[string]string{"filename": name}))
	}
	c.written = true
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method != http.MethodHead {
		c.w.Write(m.Data)
	}
	return nil, nil
}
