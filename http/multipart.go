package http

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/evchat/evchat/domain"
)

// formLimits bound a multipart send-message form as it is read, part by
// part: nothing of it is buffered beyond them.
type formLimits struct {
	// maxParts is the number of parts (fields and files) a form may have.
	maxParts int
	// maxField bounds each field other than text, in bytes.
	maxField int64
	// maxText bounds the text field, in bytes.
	maxText int64
}

// Field errors of a multipart form.
var (
	errFileBeforeConversation = domain.FieldError("conversation_id", "Send conversation_id before the attachments.")
)

func errTooManyParts(n int) error {
	return domain.FieldError("non_field_errors", fmt.Sprintf("A form may have at most %d parts.", n))
}

// isAttachmentField reports whether a form field carries a file.
func isAttachmentField(name string) bool {
	return name == "attachment_picture" || name == "attachment_video"
}

// readSendForm reads a send-message form from mr and returns its fields
// (conversation_id, text, client_id, ...). Each file part goes to file, but
// only after beforeFiles has accepted the conversation named by the fields
// before it: a file of a stranger, or of a form that names its room after
// the file, is refused before a byte of it is read. Errors are field
// errors (400), errTooLarge (413), or what beforeFiles and file return.
func readSendForm(mr *multipart.Reader, lim formLimits, beforeFiles func(conversation int64) error, file func(name string, part io.Reader) error) (map[string]string, error) {
	fields := map[string]string{}
	checked := false
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return fields, nil
		}
		if err != nil {
			return nil, formError(err)
		}
		if n >= lim.maxParts {
			return nil, errTooManyParts(lim.maxParts)
		}
		name := part.FormName()
		if isAttachmentField(name) && part.FileName() != "" {
			if !checked {
				conv, err := formConversation(fields)
				if err != nil {
					return nil, err
				}
				if err := beforeFiles(conv); err != nil {
					return nil, err
				}
				checked = true
			}
			pr := &partReader{r: part}
			if err := file(name, pr); err != nil {
				if pr.err != nil && pr.err != io.EOF {
					// The form broke off or went over the body's bound
					// while the file was read: the client's fault, not a
					// failure of where the file was going.
					return nil, formError(pr.err)
				}
				return nil, err
			}
			continue
		}
		// A field, or an empty file input as browsers send for no file.
		max := lim.maxField
		if name == "text" {
			max = lim.maxText
		}
		v, err := io.ReadAll(io.LimitReader(part, max+1))
		if err != nil {
			return nil, formError(err)
		}
		if int64(len(v)) > max {
			key := name
			if key != "text" && key != "conversation_id" && key != "conversation" && key != "client_id" {
				key = "non_field_errors" // an unknown field: its name is not echoed
			}
			return nil, domain.FieldError(key, fmt.Sprintf("Ensure this field has no more than %d bytes.", max))
		}
		if !isAttachmentField(name) {
			fields[name] = string(v)
		}
	}
}

// partReader remembers the error reading a part failed with, to tell a
// broken form from a failure of the file's destination.
type partReader struct {
	r   io.Reader
	err error
}

func (p *partReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil {
		p.err = err
	}
	return n, err
}

// formConversation reads the conversation id of a form's fields.
func formConversation(fields map[string]string) (int64, error) {
	b := body{}
	for _, k := range []string{"conversation_id", "conversation"} {
		if v, ok := fields[k]; ok {
			b[k] = []byte(quoteJSON(v))
		}
	}
	if len(b) == 0 {
		return 0, errFileBeforeConversation
	}
	return b.id(b.first("conversation_id", "conversation"))
}

// formError classifies a failure to read a form.
func formError(err error) error {
	var mbe *http.MaxBytesError
	var de *domain.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &mbe):
		return errTooLarge
	case errors.As(err, &de), errors.As(err, &he):
		return err
	}
	return domain.Errorf(domain.KindInvalid, "Multipart form parse error - %s", err.Error())
}

func (s *Server) readMultipartSend(c echo.Context, req *sendRequest) error {
	limit := s.cfg.MaxPicture + s.cfg.MaxVideo + int64(s.cmd.Limits().MaxTextBytes) + 1<<20
	if c.Request().ContentLength > limit {
		return errTooLarge // declared over the limit: none of it is read
	}
	c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return domain.Errorf(domain.KindInvalid, "Multipart form parse error - %s", err.Error())
	}
	ctx := c.Request().Context()
	lim := formLimits{maxParts: s.cfg.MaxFormParts, maxField: s.cfg.MaxFormField, maxText: int64(s.cmd.Limits().MaxTextBytes)}
	beforeFiles := func(conversation int64) error {
		conv, err := s.cmd.Conversation(ctx, conversation)
		if err != nil {
			return err
		}
		return conv.CheckMember(caller(c).UserID)
	}
	file := func(name string, part io.Reader) error {
		max, sniff, kinds := s.cfg.MaxPicture, sniffPicture, "a JPEG, PNG, GIF or WebP picture"
		if name == "attachment_video" {
			max, sniff, kinds = s.cfg.MaxVideo, sniffVideo, "an MP4, WebM or QuickTime video"
		}
		st, err := s.media.Stage(ctx, part, max)
		if err != nil {
			return err
		}
		ct := sniff(st.Head)
		if ct == "" || st.Size == 0 {
			_ = st.Discard()
			return errUnsupportedAttachment(name, kinds)
		}
		if name == "attachment_picture" {
			if req.picture != nil {
				_ = req.picture.Discard()
			}
			req.picture, req.pictureType = st, ct
		} else {
			if req.video != nil {
				_ = req.video.Discard()
			}
			req.video, req.videoType = st, ct
		}
		return nil
	}
	fields, err := readSendForm(mr, lim, beforeFiles, file)
	if err != nil {
		return err
	}
	if req.conversation, err = formConversation(fields); err != nil {
		if errors.Is(err, errFileBeforeConversation) {
			return domain.FieldError("conversation_id", "This field is required.")
		}
		return err
	}
	req.text = fields["text"]
	if v, ok := fields["reply_to"]; ok {
		if req.replyTo, err = optionalReplyTo(body{"reply_to": []byte(quoteJSON(v))}); err != nil {
			return err
		}
	}
	if req.key == "" {
		req.key = fields["client_id"]
	}
	return nil
}
