package http

import (
	"net"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/internal/ratelimit"
)

// limiters are the API's request rate limits: registrations per client
// address, and sends and read receipts per user, over REST and WebSocket
// together. Login has its own throttle (LoginThrottle).
type limiters struct {
	register   *ratelimit.Limiter[string]
	send, read *ratelimit.Limiter[int64]
}

func newLimiters(cfg Config) limiters {
	or := func(l ratelimit.Limit) ratelimit.Limit {
		if l.IsZero() {
			return ratelimit.Off
		}
		return l
	}
	return limiters{
		register: ratelimit.New[string](or(cfg.RegisterLimit), cfg.Now),
		send:     ratelimit.New[int64](or(cfg.SendLimit), cfg.Now),
		read:     ratelimit.New[int64](or(cfg.ReadLimit), cfg.Now),
	}
}

// allow takes a token of key's bucket, or returns the 429 that says when
// to come back (whole seconds, rounded up).
func allow[K comparable](l *ratelimit.Limiter[K], key K) error {
	ok, wait := l.Allow(key)
	if ok {
		return nil
	}
	secs := int64(1)
	if wait > time.Second {
		secs = int64((wait + time.Second - 1) / time.Second)
	}
	return &rateLimited{retryAfter: int(min(secs, 1<<31-1))}
}

// addressKey is the rate-limit key of a client address: the address, or
// for IPv6 its /64, which one subscriber usually holds whole.
func addressKey(c echo.Context) string {
	ip := net.ParseIP(c.RealIP())
	switch {
	case ip == nil:
		return c.RealIP()
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
