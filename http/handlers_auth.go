package http

import (
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/auth"
	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

type userView struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

func (s *Server) register(c echo.Context) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	f, err := b.requiredStrings("username", "password")
	if err != nil {
		return err
	}
	if err := allow(s.lim.register, addressKey(c)); err != nil {
		return err
	}
	a := commands.Actor{RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
	r, err := s.cmd.Register(c.Request().Context(), a, commands.Register{Username: f[0], Password: f[1]}, s.passwords)
	if err != nil {
		return err
	}
	if err := s.waitProjected(c, r.Position); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, userView{ID: r.UserID, Username: r.Username})
}

// maxUsernameRunes is the registration limit of usernames (domain).
const maxUsernameRunes = 150

func (s *Server) login(c echo.Context) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	f, err := b.requiredStrings("username", "password")
	if err != nil {
		return err
	}
	username, password := f[0], f[1]
	// No account has a longer name (registration bounds it), and a longer
	// one must not reach the throttle's indexed look-ups.
	// Registration bounds the NFKC form, which may be longer than the
	// name typed.
	if utf8.RuneCountInString(username) > maxUsernameRunes || utf8.RuneCountInString(domain.CleanUsername(username)) > maxUsernameRunes {
		return domain.FieldError("username", fmt.Sprintf("Ensure this field has no more than %d characters.", maxUsernameRunes))
	}
	ctx := c.Request().Context()
	addr := c.RealIP()
	// Every form of one name counts against the same account.
	subject := domain.NormalizeUsername(username)
	if err := s.throttle.Begin(ctx, subject, addr); err != nil {
		return err
	}
	// A user logs in with both their projected user and their credential
	// (see commands.Register); without either, the comparison does the
	// same work and fails.
	var hash []byte
	u, err := s.rm.UserByUsername(ctx, username)
	if err != nil && !errors.Is(err, readmodel.ErrNotFound) {
		return err
	}
	if err == nil {
		h, found, err := s.credentials.PasswordHash(ctx, u.ID)
		if err != nil {
			return err
		}
		if found {
			hash = []byte(h)
		} else {
			u.ID = 0
		}
	}
	if s.passwords.Compare(hash, password) != nil || u.ID == 0 {
		return errBadCredentials
	}
	s.throttle.Succeeded(ctx, subject, addr)
	pair, err := s.tokens.Login(ctx, u.ID)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{
		Name: accessCookie, Value: pair.Access, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Scheme() == "https",
		MaxAge: int(s.tokens.AccessTTL().Seconds()),
	})
	// A struct, not a map: the keys keep the contract's order.
	return c.JSON(http.StatusOK, struct {
		Message string   `json:"message"`
		Access  string   `json:"access"`
		Refresh string   `json:"refresh"`
		User    userView `json:"user"`
	}{"Login successful", pair.Access, pair.Refresh, userView{ID: u.ID, Username: u.Username}})
}

func (s *Server) refresh(c echo.Context) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	f, err := b.requiredStrings("refresh")
	if err != nil {
		return err
	}
	pair, err := s.tokens.Refresh(c.Request().Context(), f[0])
	if errors.Is(err, auth.ErrRefreshReused) {
		// Two clients racing, a retry after a lost answer, or a stolen
		// token: worth a line for whoever audits sessions.
		s.log.Warn("refresh token used again after rotation or logout", "remote", c.RealIP())
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, pair)
}

func (s *Server) logout(c echo.Context) error {
	cl := caller(c)
	if err := s.tokens.Revoke(c.Request().Context(), cl.SessionID); err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: accessCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	return c.JSON(http.StatusOK, map[string]string{"message": "Logout successful"})
}
