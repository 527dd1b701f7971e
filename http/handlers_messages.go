package http

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"
	"unicode"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/commands"
	"github.com/evchat/evchat/domain"
	"github.com/evchat/evchat/readmodel"
)

// sendRequest is a send-message request, from JSON or multipart.
type sendRequest struct {
	conversation int64
	text         string
	key          string
	picture      *Staged
	video        *Staged
	pictureType  string
	videoType    string
	replyTo      int64 // 0: none
}

func (r *sendRequest) discard() {
	for _, st := range []*Staged{r.picture, r.video} {
		if st != nil {
			_ = st.Discard()
		}
	}
}

func (s *Server) sendMessage(c echo.Context) error {
	if err := allow(s.lim.send, caller(c).UserID); err != nil {
		return err // before the body is read: a refused send costs nothing
	}
	req := &sendRequest{key: c.Request().Header.Get("Idempotency-Key")}
	defer req.discard() // after a commit the staged file is gone; discarding is harmless
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	var err error
	if mt == echo.MIMEMultipartForm {
		err = s.readMultipartSend(c, req)
	} else {
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.JSONBodyLimit)
		err = s.readJSONSend(c, req)
	}
	if err != nil {
		return err
	}
	if err := checkSendKey("Idempotency-Key", req.key); err != nil {
		return err
	}
	cmd := commands.SendMessage{ConversationID: req.conversation, IdempotencyKey: req.key}
	cmd.Content.Text = req.text
	cmd.Content.ReplyTo = req.replyTo
	if req.picture != nil {
		cmd.Content.Picture = &domain.Attachment{Key: req.picture.Key, ContentType: req.pictureType, Size: req.picture.Size}
	}
	if req.video != nil {
		cmd.Content.Video = &domain.Attachment{Key: req.video.Key, ContentType: req.videoType, Size: req.video.Size}
	}
	ctx := c.Request().Context()
	if req.picture != nil || req.video != nil {
		// Keep files of strangers, and of messages that will be refused,
		// off the disk.
		if err := s.checkSend(ctx, cmd.ConversationID, caller(c).UserID, cmd.Content); err != nil {
			return err
		}
	}
	// Files become visible before the event that names them, so a socket
	// that hears of the message can fetch them at once.
	for _, st := range []*Staged{req.picture, req.video} {
		if st != nil {
			if err := st.Commit(); err != nil {
				return err
			}
		}
	}
	sent, err := s.cmd.SendMessage(ctx, actor(c), cmd)
	if err != nil {
		return err
	}
	if sent.Replayed {
		// The original answer is read back from the read model.
		if err := s.waitProjected(c, sent.Position); err != nil {
			return err
		}
		m, err := s.rm.Message(ctx, sent.Message.MessageID)
		if errors.Is(err, readmodel.ErrNotFound) {
			// The read model is behind by more than the wait: answer from
			// the log (read_by then shows no reader yet).
			msg, at, lerr := s.cmd.KeyedMessage(ctx, actor(c), cmd.ConversationID, cmd.IdempotencyKey)
			if lerr != nil {
				return lerr
			}
			return c.JSON(http.StatusCreated, sentMessageView(msg, at, sent.Position, s.mediaURLs(c)))
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, newMessageView(m, s.mediaURLs(c)))
	}
	// Durable in the log: the answer is the command's own result, and the
	// caller's next read waits for the projection (readwait.go).
	s.written(c, caller(c).UserID, sent.Position)
	return c.JSON(http.StatusCreated, sentMessageView(sent.Message, sent.At, sent.Position, s.mediaURLs(c)))
}

// checkSendKey refuses an idempotency key (the Idempotency-Key header, or
// a client_id in a body or a WebSocket frame) that the key store cannot
// hold: over 255 bytes, or with a character that is not printable (a NUL
// cannot be stored in a text column at all). name is how the client sent it.
func checkSendKey(name, key string) error {
	if len(key) > 255 || strings.IndexFunc(key, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return domain.Errorf(domain.KindInvalid, "%s must be at most 255 printable characters.", name)
	}
	return nil
}

func (s *Server) readJSONSend(c echo.Context, req *sendRequest) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	if req.conversation, err = b.id(b.first("conversation_id", "conversation")); err != nil {
		return err
	}
	text, err := b.str("text")
	if err != nil {
		return err
	}
	if text != nil {
		req.text = *text
	}
	if req.replyTo, err = optionalReplyTo(b); err != nil {
		return err
	}
	if req.key == "" {
		if cid, err := b.str("client_id"); err == nil && cid != nil {
			req.key = *cid
		}
	}
	return nil
}

func quoteJSON(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r < 0x20:
			sb.WriteString(" ")
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

func (s *Server) listMessages(c echo.Context) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	res, err := s.rm.UserMessages(c.Request().Context(), caller(c).UserID, p)
	if err != nil {
		return err
	}
	s.recordListed(c, res.Messages)
	return s.writePage(c, res, "")
}

func (s *Server) listConversationMessages(c echo.Context) error {
	id, err := pathID(c, domain.ErrConversationNotFound)
	if err != nil {
		return err
	}
	p, err := page(c)
	if err != nil {
		return err
	}
	if cut, past, err := s.asOf(c); err != nil || past {
		if err != nil {
			return err
		}
		return s.pastConversationMessages(c, id, cut, p)
	}
	ctx := c.Request().Context()
	if err := s.checkMember(c, id); err != nil {
		return err
	}
	res, err := s.rm.ConversationMessages(ctx, id, p)
	if err != nil {
		return err
	}
	s.recordListed(c, res.Messages)
	return s.writePage(c, res, "")
}

// checkMember answers 404 for a missing conversation and 403 for a non-member.
func (s *Server) checkMember(c echo.Context, conversation int64) error {
	exists, member, err := s.rm.Membership(c.Request().Context(), conversation, caller(c).UserID)
	switch {
	case err != nil:
		return err
	case !exists:
		return domain.ErrConversationNotFound
	case !member:
		return domain.ErrNotMember
	}
	return nil
}

// writePage answers a page of messages, its neighbours in the Link header;
// a page of the past (asOf, the moment as the request wrote it) keeps its
// moment in the links.
func (s *Server) writePage(c echo.Context, res readmodel.PageResult, asOf string) error {
	urls := s.mediaURLs(c)
	out := make([]messageView, len(res.Messages))
	for i, m := range res.Messages {
		out[i] = newMessageView(m, urls)
	}
	if link := linkHeader(c, s.baseURL(c), res.Prev, res.Next, asOf); link != "" {
		c.Response().Header().Set("Link", link)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) readMessage(c echo.Context) error {
	b, err := readJSON(c)
	if err != nil {
		return err
	}
	conv, err := b.id(b.first("conversation_id", "conversation"))
	if err != nil {
		return err
	}
	ids, present, err := b.ids("message_ids")
	if err != nil {
		return err
	}
	if !present {
		return domain.FieldError("message_ids", "This field is required.")
	}
	if err := allow(s.lim.read, caller(c).UserID); err != nil {
		return err
	}
	r, err := s.cmd.MarkRead(c.Request().Context(), actor(c), commands.MarkRead{ConversationID: conv, MessageIDs: ids})
	if err != nil {
		return err
	}
	s.written(c, caller(c).UserID, r.Position)
	return c.JSON(http.StatusOK, map[string]bool{"success": true})
}

// checkSend applies the send rules to the log's state ahead of the command:
// ErrConversationNotFound, ErrNotMember, or a problem with the content.
func (s *Server) checkSend(ctx context.Context, conversation, user int64, content domain.MessageContent) error {
	conv, err := s.cmd.Conversation(ctx, conversation)
	if err != nil {
		return err
	}
	return conv.CheckSend(user, content, s.cmd.Limits())
}
