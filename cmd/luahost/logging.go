package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Every command takes --log-level and --log-format, with environment
// variables as their defaults (a container or a service unit sets them
// once for every command).
const (
	envLogLevel  = "LUAHOST_LOG_LEVEL"
	envLogFormat = "LUAHOST_LOG_FORMAT"
)

type logOpts struct {
	level, format string
}

// addLogFlags adds the log flags; defLevel is the command's own default
// (serve logs at info, check and call show warnings and errors only).
func addLogFlags(fs *flag.FlagSet, o *logOpts, defLevel string) {
	level, format := defLevel, "text"
	if v := os.Getenv(envLogLevel); v != "" {
		level = v
	}
	if v := os.Getenv(envLogFormat); v != "" {
		format = v
	}
	fs.StringVar(&o.level, "log-level", level, "log level: debug, info, warn or error (default from $"+envLogLevel+")")
	fs.StringVar(&o.format, "log-format", format, "log format: text or json, one JSON object per line (default from $"+envLogFormat+")")
}

// logger builds the command's logger on w.
func (o logOpts) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(o.level) {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, fmt.Errorf("--log-level %q is not one of debug, info, warn, error", o.level)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q is not one of text, json", o.format)
}

// parseFlags parses a command's flags. Help goes to stdout and succeeds;
// a mistake goes to stderr with the usage. ok is false when the command
// must return code now.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(buf.Bytes())
		return 0, false
	default:
		stderr.Write(buf.Bytes())
		return 2, false
	}
}
