package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/evchat/evchat/internal/chatd"
	"github.com/evchat/evchat/internal/ratelimit"
)

// limitSetting is a limit (request bounds, rate limits, WebSocket and
// login limits): its variable, flag and
// help, with the default of chatd.DefaultConfig.
type limitSetting struct {
	env, flag, help string
	bind            func(fs *flag.FlagSet, env, name, help string) error
}

// limitSettings binds every request bound and rate limit of cfg to its
// flag, each defaulting to its environment variable, else to cfg's value.
func limitSettings(cfg *chatd.Config) []limitSetting {
	return []limitSetting{
		{"CHAT_MAX_FORM_PARTS", "max-form-parts", "parts of a multipart send-message form", intSetting(&cfg.MaxFormParts)},
		{"CHAT_MAX_FORM_FIELD", "max-form-field", "bytes of a multipart form field other than text and attachments", int64Setting(&cfg.MaxFormField)},
		{"CHAT_RATE_REGISTER", "rate-register", "registrations per client address: <n>/<s|m|h>,<burst> or off", rateSetting(&cfg.RegisterRate)},
		{"CHAT_RATE_SEND", "rate-send", "sends per user (REST and WebSocket)", rateSetting(&cfg.SendRate)},
		{"CHAT_RATE_READ", "rate-read", "read receipts per user (REST and WebSocket)", rateSetting(&cfg.ReadRate)},
		{"CHAT_BODY_TIMEOUT", "body-timeout", "time for a request body's first bytes", durationSetting(&cfg.BodyTimeout)},
		{"CHAT_BODY_MIN_RATE", "body-min-rate", "bytes a second a request body must average after that (slower: 408)", int64Setting(&cfg.BodyMinRate)},
		{"CHAT_READ_HEADER_TIMEOUT", "read-header-timeout", "time for a request's headers", durationSetting(&cfg.ReadHeaderTimeout)},
		{"CHAT_IDLE_TIMEOUT", "idle-timeout", "how long a kept-alive connection waits for its next request", durationSetting(&cfg.IdleTimeout)},
		{"CHAT_CORS_ORIGINS", "cors-origins", "comma-separated origins whose pages may call the API (CORS); none: off", listSetting(&cfg.CORSOrigins)},
		{"CHAT_RESUME_MAX", "resume-max", "room events a WebSocket may resume (?since=) behind", intSetting(&cfg.ResumeMax)},
		{"CHAT_WS_PER_USER", "ws-per-user", "WebSockets of one user on one process", intSetting(&cfg.SocketsPerUser)},
		{"CHAT_WS_MAX", "ws-max", "WebSockets of one process", intSetting(&cfg.SocketsMax)},
		{"CHAT_TYPING_INTERVAL", "typing-interval", "how often one user's typing notices reach a room", durationSetting(&cfg.TypingInterval)},
		{"CHAT_REFRESH_REUSE_GRACE", "refresh-reuse-grace", "how long a rotated-away refresh token may come back before its use ends the session", durationSetting(&cfg.RefreshReuseGrace)},
		{"CHAT_LOGIN_WINDOW", "login-window", "window of the login attempt counters", durationSetting(&cfg.LoginWindow)},
		{"CHAT_LOGIN_PER_USER_ADDRESS", "login-per-user-address", "failed logins at one username from one address before 429", intSetting(&cfg.LoginPerUserAddress)},
		{"CHAT_LOGIN_PER_ADDRESS", "login-per-address", "login attempts from one address before 429", intSetting(&cfg.LoginPerAddress)},
		{"CHAT_LOGIN_PER_USER", "login-per-user", "failed logins at one username from anywhere before it is slowed", intSetting(&cfg.LoginPerUser)},
		{"CHAT_LOGIN_MAX_DELAY", "login-max-delay", "longest delay between attempts at a slowed username", durationSetting(&cfg.LoginMaxDelay)},
		{"CHAT_DELIVERY_BATCH", "delivery-batch", "pending delivered message ids that start a bulk append of delivery receipts", intSetting(&cfg.DeliveryBatch)},
		{"CHAT_DELIVERY_FLUSH", "delivery-flush", "longest wait before delivery receipts are appended", durationSetting(&cfg.DeliveryFlush)},
		{"CHAT_PRESENCE_DEBOUNCE", "presence-debounce", "how long a user's last socket may be gone before they count as offline", durationSetting(&cfg.PresenceDebounce)},
		{"CHAT_PRESENCE_HEARTBEAT", "presence-heartbeat", "how often a process tells the others it is alive (its users go offline after 3 missed)", durationSetting(&cfg.PresenceHeartbeat)},
		{"CHAT_READ_WAIT", "read-wait", "what a read waits for to show its caller's writes: head (the log's head; any number of processes) or user (the caller's writes through this process)", textSetting(&cfg.ReadWait)},
	}
}

func intSetting(v *int) func(fs *flag.FlagSet, env, name, help string) error {
	return func(fs *flag.FlagSet, env, name, help string) error {
		if s, ok := os.LookupEnv(env); ok && s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
			*v = n
		}
		fs.IntVar(v, name, *v, help)
		return nil
	}
}

func int64Setting(v *int64) func(fs *flag.FlagSet, env, name, help string) error {
	return func(fs *flag.FlagSet, env, name, help string) error {
		if s, ok := os.LookupEnv(env); ok && s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
			*v = n
		}
		fs.Int64Var(v, name, *v, help)
		return nil
	}
}

func durationSetting(v *time.Duration) func(fs *flag.FlagSet, env, name, help string) error {
	return func(fs *flag.FlagSet, env, name, help string) error {
		if s, ok := os.LookupEnv(env); ok && s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
			*v = d
		}
		fs.DurationVar(v, name, *v, help)
		return nil
	}
}

func rateSetting(v *ratelimit.Limit) func(fs *flag.FlagSet, env, name, help string) error {
	return func(fs *flag.FlagSet, env, name, help string) error {
		if s, ok := os.LookupEnv(env); ok && s != "" {
			l, err := ratelimit.Parse(s)
			if err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
			*v = l
		}
		fs.TextVar(v, name, *v, help)
		return nil
	}
}

// commaList is a comma-separated list flag.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(s string) error {
	*l = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func listSetting(v *[]string) func(fs *flag.FlagSet, env, name, help string) error {
	return func(fs *flag.FlagSet, env, name, help string) error {
		l := (*commaList)(v)
		if s, ok := os.LookupEnv(env); ok && s != "" {
			_ = l.Set(s)
		}
		fs.Var(l, name, help)
		return nil
	}
}

// bindLimits registers the flags of limitSettings.
func bindLimits(fs *flag.FlagSet, cfg *chatd.Config) error {
	for _, s := range limitSettings(cfg) {
		if err := s.bind(fs, s.env, s.flag, s.help); err != nil {
			return err
		}
	}
	return nil
}

// limitsEnvironment is the -h listing of limitSettings' variables.
func limitsEnvironment() string {
	d := chatd.DefaultConfig()
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	out := ""
	for _, s := range limitSettings(&d) {
		_ = s.bind(fs, "", s.flag, s.help) // no variable: the default
		def := fs.Lookup(s.flag).DefValue
		if def == "" {
			def = "none"
		}
		out += fmt.Sprintf("  %-22s %s (default %s)\n", s.env, s.help, def)
	}
	return out
}
