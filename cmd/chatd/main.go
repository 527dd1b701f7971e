// Command chatd is the chat server.
//
// Configuration comes from flags, which override the environment:
//
//	CHAT_ADDR              listen address (default 127.0.0.1:8000)
//	DATABASE_URL           PostgreSQL; unset: a private PostgreSQL in the data folder
//	CHAT_DATA_DIR          data folder (default ./.data)
//	EVENTSTORE_URL         esdb://... to keep the log in EventStoreDB/KurrentDB
//	CHAT_PUBLIC_URL        base of attachment URLs (default: the request's host)
//	CHAT_MAX_GROUP_MEMBERS group size cap (default 1024)
//	CHAT_JWT_KEY_FILE      Ed25519 signing key, PKCS #8 PEM (default DATA_DIR/jwt-ed25519.pem)
//	CHAT_ACCESS_TTL        access token lifetime (default 15m)
//	CHAT_REFRESH_TTL       refresh token lifetime (default 168h)
//	CHAT_ALLOWED_ORIGINS   comma-separated origins allowed to use the login cookie on WebSockets
//	CHAT_TRUSTED_PROXIES   comma-separated CIDRs of proxies whose X-Forwarded-For is believed
//	CHAT_LOG_LEVEL         debug, info, warn or error (default info)
//	CHAT_READY_LAG         how long the read model may lag before /readyz fails (default 30s)
//	CHAT_INVITE_TTL        how long an invite to an invite-only group admits (default 168h)
//	CHAT_LOG_FORMAT        text, json or auto: text on a terminal, JSON otherwise (default auto)
//	CHAT_DEBUG_ADDR        address of a profiling listener (net/http/pprof); unset: none
//	CHAT_METRICS_ADDR      address that alone serves /metrics; unset: /metrics on CHAT_ADDR
//	CHAT_SEARCH_OFF        true: no search index (GET /search/ answers 503); default false
//	CHAT_ADMIN_TOKEN       bearer token of the operators' /admin/ routes; unset: they answer 404
//
// Request bounds and rate limits (CHAT_MAX_FORM_PARTS and the others that
// chatd -h lists) are in limits.go.
//
// chatd -version prints the build; chatd -healthcheck asks the server at
// CHAT_ADDR for /healthz and exits 0 when it answers 200 (for container
// health checks, where no curl exists).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/evchat/evchat/internal/buildinfo"
	"github.com/evchat/evchat/internal/chatd"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

// environment is the -h listing of the variables chatd reads, with the
// defaults of chatd.DefaultConfig.
func environment() string {
	d := chatd.DefaultConfig()
	return fmt.Sprintf(`
Environment (flags override it):
  CHAT_ADDR              listen address (default %s)
  DATABASE_URL           PostgreSQL; unset: a private PostgreSQL in the data folder
  CHAT_DATA_DIR          data folder (default ./%s)
  EVENTSTORE_URL         esdb://... to keep the log in EventStoreDB/KurrentDB
  CHAT_PUBLIC_URL        base of attachment URLs (default: the request's host)
  CHAT_MAX_GROUP_MEMBERS group size cap (default %d)
  CHAT_JWT_KEY_FILE      Ed25519 signing key, PKCS #8 PEM (default DATA_DIR/jwt-ed25519.pem)
  CHAT_ACCESS_TTL        access token lifetime (default %s)
  CHAT_REFRESH_TTL       refresh token lifetime (default %s)
  CHAT_ALLOWED_ORIGINS   comma-separated origins allowed to use the login cookie on WebSockets
  CHAT_TRUSTED_PROXIES   comma-separated CIDRs of proxies whose X-Forwarded-For is believed
  CHAT_LOG_LEVEL         debug, info, warn or error (default info)
  CHAT_LOG_FORMAT        text, json or auto: text on a terminal, JSON otherwise (default auto)
  CHAT_READY_LAG         how long the read model may lag before /readyz fails (default %s)
  CHAT_INVITE_TTL        how long an invite to an invite-only group admits (default %s)
  CHAT_DEBUG_ADDR        address of a profiling listener (net/http/pprof); unset: none
  CHAT_METRICS_ADDR      address that alone serves /metrics (Prometheus); unset: /metrics on CHAT_ADDR
  CHAT_SEARCH_OFF        true: no search index (GET /search/ answers 503); default false
  CHAT_ADMIN_TOKEN       bearer token of the operators' /admin/ routes (forgetting users); unset: they answer 404
`, d.Addr, d.DataDir, d.MaxGroup, d.AccessTTL, d.RefreshTTL, d.ReadyLag, d.InviteTTL) + limitsEnvironment()
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := chatd.DefaultConfig()
	var origins, proxies, level, format, debugAddr string
	maxGroup, _ := strconv.Atoi(env("CHAT_MAX_GROUP_MEMBERS", strconv.Itoa(cfg.MaxGroup)))
	accessTTL, err := time.ParseDuration(env("CHAT_ACCESS_TTL", cfg.AccessTTL.String()))
	if err != nil {
		return fmt.Errorf("CHAT_ACCESS_TTL: %w", err)
	}
	refreshTTL, err := time.ParseDuration(env("CHAT_REFRESH_TTL", cfg.RefreshTTL.String()))
	if err != nil {
		return fmt.Errorf("CHAT_REFRESH_TTL: %w", err)
	}
	fs.StringVar(&cfg.Addr, "addr", env("CHAT_ADDR", cfg.Addr), "listen address")
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", ""), "PostgreSQL URL (unset: embedded PostgreSQL)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("CHAT_DATA_DIR", cfg.DataDir), "data folder")
	fs.StringVar(&cfg.EventStoreURL, "eventstore-url", env("EVENTSTORE_URL", ""), "EventStoreDB/KurrentDB URL (unset: PostgreSQL event store)")
	fs.StringVar(&cfg.PublicURL, "public-url", env("CHAT_PUBLIC_URL", ""), "base URL of attachment links")
	fs.IntVar(&cfg.MaxGroup, "max-group-members", maxGroup, "group size cap")
	fs.StringVar(&cfg.JWTKeyFile, "jwt-key-file", env("CHAT_JWT_KEY_FILE", ""), "Ed25519 signing key file")
	fs.DurationVar(&cfg.AccessTTL, "access-ttl", accessTTL, "access token lifetime")
	fs.DurationVar(&cfg.RefreshTTL, "refresh-ttl", refreshTTL, "refresh token lifetime")
	fs.StringVar(&origins, "allowed-origins", env("CHAT_ALLOWED_ORIGINS", ""), "origins allowed to use the login cookie on WebSockets")
	fs.StringVar(&proxies, "trusted-proxies", env("CHAT_TRUSTED_PROXIES", ""), "CIDRs of proxies whose X-Forwarded-For is believed")
	readyLag, err := time.ParseDuration(env("CHAT_READY_LAG", cfg.ReadyLag.String()))
	if err != nil {
		return fmt.Errorf("CHAT_READY_LAG: %w", err)
	}
	fs.DurationVar(&cfg.ReadyLag, "ready-lag", readyLag, "how long the read model may lag before /readyz fails")
	inviteTTL, err := time.ParseDuration(env("CHAT_INVITE_TTL", cfg.InviteTTL.String()))
	if err != nil {
		return fmt.Errorf("CHAT_INVITE_TTL: %w", err)
	}
	fs.DurationVar(&cfg.InviteTTL, "invite-ttl", inviteTTL, "how long an invite to an invite-only group admits")
	fs.StringVar(&debugAddr, "debug-addr", env("CHAT_DEBUG_ADDR", ""), "profiling listener (net/http/pprof), e.g. 127.0.0.1:6060")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", env("CHAT_METRICS_ADDR", ""), "address that alone serves /metrics, e.g. 127.0.0.1:9090 (unset: /metrics on -addr)")
	searchOff, err := strconv.ParseBool(env("CHAT_SEARCH_OFF", "false"))
	if err != nil {
		return fmt.Errorf("CHAT_SEARCH_OFF: %w", err)
	}
	fs.BoolVar(&cfg.SearchOff, "search-off", searchOff, "run no search index projector; GET /search/ answers 503")
	// Prefer the environment: a flag's value shows in the process list.
	fs.StringVar(&cfg.AdminToken, "admin-token", env("CHAT_ADMIN_TOKEN", ""), "bearer token of the /admin/ routes (prefer CHAT_ADMIN_TOKEN); unset: they answer 404")
	fs.StringVar(&level, "log-level", env("CHAT_LOG_LEVEL", "info"), "log level: debug, info, warn or error")
	fs.StringVar(&format, "log-format", env("CHAT_LOG_FORMAT", "auto"), "log format: text, json or auto")
	version := fs.Bool("version", false, "print the build and exit")
	healthcheck := fs.Bool("healthcheck", false, "ask the server at -addr for /healthz; exit 0 when it answers 200")
	if err := bindLimits(fs, &cfg); err != nil {
		return err
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "chatd is the chat server.\n\nUsage:\n  chatd [flags]\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), environment())
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see chatd -h)", fs.Arg(0))
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.Read().Line("chatd"))
		return nil
	}
	if *healthcheck {
		return checkHealth(cfg.Addr)
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return fmt.Errorf("trusted proxies: %w", err)
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, n)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log, err := newLogger(stderr, format, lvl)
	if err != nil {
		return err
	}

	if debugAddr != "" {
		// Profiles only, on an address of its own: never on the API's.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		srv := &http.Server{Addr: debugAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil {
				log.Error("debug listener", "err", err)
			}
		}()
		defer srv.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := chatd.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer m.Close()
	return m.Run(ctx)
}

// newLogger logs text to a terminal and JSON elsewhere (a file, a log
// collector), unless format names one.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text, json or auto", format)
}

// checkHealth asks the server listening on addr for /healthz. A wildcard
// host (0.0.0.0, ::, none) is asked on the loopback address.
func checkHealth(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %s", resp.Status)
	}
	return nil
}
