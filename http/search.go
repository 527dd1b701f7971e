package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/eventstore"
	"github.com/evchat/evchat/readmodel"
)

// Searcher answers GET /search/ from the search index, a projection of
// its own with its own checkpoint.
type Searcher interface {
	// Search returns a page of the messages matching q in rooms user is a
	// member of, newest first (readmodel.Store.Search).
	Search(ctx context.Context, user int64, q string, before int64, limit int) (readmodel.SearchPage, error)
	// WaitFor waits, until ctx ends at the latest, for the index to show
	// the log up to p. It returns at once when the index cannot get there
	// soon (paused, or backfilling a long log).
	WaitFor(ctx context.Context, p eventstore.Position) error
}

// maxSearchQuery bounds q, in characters: words to look for, not a document.
const maxSearchQuery = 1000

// searchHitView is a search result: the message as GET /messages/<id>/
// shows it, and an excerpt of its text with the matches highlighted.
type searchHitView struct {
	messageView
	Highlight string `json:"highlight"`
}

// search finds messages of the caller's rooms by words (PostgreSQL
// full-text search over the search index), newest first. It first waits,
// bounded like a write's read-your-writes wait, until the index shows what
// the chat read model shows in this process, so a message sent a moment
// ago is found.
func (s *Server) search(c echo.Context) error {
	if s.cfg.Search == nil {
		return domain.Errorf(domain.KindUnavailable, "Search is not enabled on this server.")
	}
	q := strings.TrimSpace(c.QueryParam("q"))
	switch {
	case q == "":
		return domain.FieldError("q", "This field may not be blank.")
	case utf8.RuneCountInString(q) > maxSearchQuery:
		return domain.FieldError("q", fmt.Sprintf("Ensure this field has no more than %d characters.", maxSearchQuery))
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	if p.Forward {
		return domain.FieldError("after", "Search results page back only: use before.")
	}
	ctx := c.Request().Context()
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ProjectionWait)
	err = s.cfg.Search.WaitFor(wctx, s.wm.Position())
	cancel()
	if err != nil && ctx.Err() == nil {
		s.log.Warn("search index did not catch up in time; answering from what it holds", "waited", s.cfg.ProjectionWait)
	}
	res, err := s.cfg.Search.Search(ctx, caller(c).UserID, q, p.Before, p.Limit)
	if errors.Is(err, readmodel.ErrUnknownCursor) {
		return domain.FieldError("before", "No message with this id was found.")
	}
	if err != nil {
		return err
	}
	urls := s.mediaURLs(c)
	out := make([]searchHitView, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = searchHitView{messageView: newMessageView(h.Message, urls), Highlight: readmodel.HeadlineHTML(h.Headline)}
	}
	if res.Next > 0 {
		next := url.Values{"q": {q}, "before": {fmt.Sprint(res.Next)}, "limit": {fmt.Sprint(p.Limit)}}
		c.Response().Header().Set("Link", "<"+s.baseURL(c)+c.Request().URL.Path+"?"+next.Encode()+`>; rel="next"`)
	}
	return c.JSON(http.StatusOK, out)
}
