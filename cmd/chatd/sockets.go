package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/evchat/evchat/internal/chatd"
)

// socketEnvironment is the -h listing of the WebSocket limits.
func socketEnvironment(d chatd.Config) string {
	return fmt.Sprintf(`  CHAT_RESUME_MAX        room events a WebSocket may resume (?since=) behind (default %d)
  CHAT_WS_PER_USER       WebSockets of one user on one process (default %d)
  CHAT_WS_MAX            WebSockets of one process (default %d)
  CHAT_TYPING_INTERVAL   how often one user's typing notices reach a room (default %s)
`, d.ResumeMax, d.SocketsPerUser, d.SocketsMax, d.TypingInterval)
}

// socketFlags defines the WebSocket limits' flags, their defaults from the
// environment over cfg's.
func socketFlags(fs *flag.FlagSet, cfg *chatd.Config) error {
	ints := []struct {
		v         *int
		env, flag string
		usage     string
	}{
		{&cfg.ResumeMax, "CHAT_RESUME_MAX", "resume-max", "room events a WebSocket may resume (?since=) behind"},
		{&cfg.SocketsPerUser, "CHAT_WS_PER_USER", "ws-per-user", "WebSockets of one user on one process"},
		{&cfg.SocketsMax, "CHAT_WS_MAX", "ws-max", "WebSockets of one process"},
	}
	for _, f := range ints {
		n, err := strconv.Atoi(env(f.env, strconv.Itoa(*f.v)))
		if err != nil || n <= 0 {
			return fmt.Errorf("%s: want a positive integer", f.env)
		}
		fs.IntVar(f.v, f.flag, n, f.usage)
	}
	durations := []struct {
		v         *time.Duration
		env, flag string
		usage     string
	}{
		{&cfg.TypingInterval, "CHAT_TYPING_INTERVAL", "typing-interval", "how often one user's typing notices reach a room"},
	}
	for _, f := range durations {
		d, err := time.ParseDuration(env(f.env, f.v.String()))
		if err != nil || d <= 0 {
			return fmt.Errorf("%s: want a positive duration such as 2s", f.env)
		}
		fs.DurationVar(f.v, f.flag, d, f.usage)
	}
	return nil
}
