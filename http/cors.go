package http

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// corsMaxAge is how long (seconds) a browser may reuse a preflight answer.
const corsMaxAge = 600

// cors lets browser clients served from CORSOrigins call the API with a
// bearer token: a preflight is answered with the methods and headers the
// API takes, and answers expose the headers clients read. Cookies are not
// allowed cross-origin (no Access-Control-Allow-Credentials), and an origin
// that is not listed gets no CORS header at all. Nil when no origin is
// listed: the API is then same-origin only.
func (s *Server) cors() echo.MiddlewareFunc {
	if len(s.cfg.CORSOrigins) == 0 {
		return nil
	}
	return middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins:  s.cfg.CORSOrigins,
		AllowMethods:  []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", echo.HeaderXRequestID, PositionHeader},
		ExposeHeaders: []string{"Link", "Retry-After", echo.HeaderXRequestID, PositionHeader},
		MaxAge:        corsMaxAge,
	})
}
