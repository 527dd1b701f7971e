package http

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
)

// Forgetter forgets users (the right to be forgotten): their key is
// deleted, so their personal data in the log reads as placeholders, the
// read model is rewritten, they can no longer log in and their attachment
// files are removed. Forgetting again is no error; an unknown user is a
// domain.KindNotFound error.
type Forgetter interface {
	ForgetUser(ctx context.Context, user int64) (Forgotten, error)
}

// Forgotten is the outcome of forgetting a user.
type Forgotten struct {
	User int64 `json:"user"`
	// Position is the log position of the user's chat.user_forgotten.
	Position string `json:"position"`
	// SessionsRevoked and FilesRemoved count what went with the user.
	SessionsRevoked int64 `json:"sessions_revoked"`
	FilesRemoved    int   `json:"files_removed"`
}

var (
	errAdminNotAuthenticated = domain.Errorf(domain.KindUnauthorized, "Admin token required.")
	errAdminForbidden        = domain.Errorf(domain.KindForbidden, "Invalid admin token.")
)

// requireAdmin admits the operators' requests: Authorization: Bearer
// <CHAT_ADMIN_TOKEN>. With no admin token configured the admin routes do
// not exist (404). No token: 401; a wrong one: 403. The tokens are
// compared by their SHA-256 in constant time, so neither their content nor
// their length leaks through timing.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.AdminToken == "" || s.cfg.Forgetter == nil {
			return echo.ErrNotFound
		}
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		if !ok || got == "" {
			return errAdminNotAuthenticated
		}
		want := sha256.Sum256([]byte(s.cfg.AdminToken))
		have := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
			return errAdminForbidden
		}
		return next(c)
	}
}

// forgetUser is DELETE /admin/users/<id>/.
func (s *Server) forgetUser(c echo.Context) error {
	id, err := pathID(c, errUserNotFound)
	if err != nil {
		return err
	}
	f, err := s.cfg.Forgetter.ForgetUser(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, f) // the forgetter logs it
}
