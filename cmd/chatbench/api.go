package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// api is a client of the server's REST and WebSocket contract
// (shared/API.md). It keeps connections alive and is safe for concurrent
// use.
type api struct {
	base  string // http://127.0.0.1:PORT
	hc    *http.Client
	ws    *websocket.Dialer
	sends *sendConns
}

func newAPI(base string) *api {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2048,
		MaxIdleConnsPerHost: 2048,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &api{
		base:  base,
		sends: newSendConns(strings.TrimPrefix(base, "http://")),
		hc:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
		ws: &websocket.Dialer{
			HandshakeTimeout: 15 * time.Second,
			ReadBufferSize:   2048,
			WriteBufferSize:  512,
		},
	}
}

// user is a registered, logged-in user.
type user struct {
	id    int64
	name  string
	token string
}

// httpError is an unexpected response.
type httpError struct {
	method, path string
	status       int
	body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.status, e.body)
}

// do sends a request and expects status want. A non-nil out receives the
// JSON response; otherwise the body is discarded (the connection is reused
// either way). The path is reported in errors with ids replaced by N, so
// that errors of one kind count together.
func (a *api) do(ctx context.Context, method, path, token string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if h, ok := ctx.Value(headerKey{}).([2]string); ok {
		req.Header.Set(h[0], h[1])
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, genericPath(path), stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		_, _ = io.Copy(io.Discard, resp.Body)
		return &httpError{method: method, path: genericPath(path), status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, genericPath(path), err)
		}
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// stripURL drops the request URL from a transport error: it is already
// named by the caller, and varies.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// genericPath replaces the numbers in a path with N.
func genericPath(p string) string {
	p, _, _ = strings.Cut(p, "?")
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			parts[i] = "N"
		}
	}
	return strings.Join(parts, "/")
}

func (a *api) register(ctx context.Context, name, password string) (int64, error) {
	var out struct {
		ID int64 `json:"id"`
	}
	err := a.do(ctx, http.MethodPost, "/auth/register/", "",
		map[string]string{"username": name, "password": password}, http.StatusCreated, &out)
	return out.ID, err
}

func (a *api) login(ctx context.Context, name, password string) (string, error) {
	var out struct {
		Access string `json:"access"`
	}
	err := a.do(ctx, http.MethodPost, "/auth/login/", "",
		map[string]string{"username": name, "password": password}, http.StatusOK, &out)
	if err == nil && out.Access == "" {
		err = fmt.Errorf("login %s: no access token in the response", name)
	}
	return out.Access, err
}

// createGroup creates a group room owned by owner with the other members.
func (a *api) createGroup(ctx context.Context, owner *user, name string, others []int64) (int64, error) {
	var out struct {
		ID      int64   `json:"id"`
		Members []int64 `json:"members"`
	}
	err := a.do(ctx, http.MethodPost, "/create-chatroom/", owner.token,
		map[string]any{"type": "group", "name": name, "members": others}, http.StatusCreated, &out)
	if err == nil && len(out.Members) != len(others)+1 {
		err = fmt.Errorf("create-chatroom: room %d has %d members, want %d", out.ID, len(out.Members), len(others)+1)
	}
	return out.ID, err
}

type sendBody struct {
	ConversationID int64  `json:"conversation_id"`
	Text           string `json:"text"`
}

// send posts a text message and discards the response.
func (a *api) send(ctx context.Context, u *user, room int64, text string) error {
	h, _ := ctx.Value(headerKey{}).([2]string)
	req, err := sendRequest(a.sends.addr, u.token, room, text, h)
	if err != nil {
		return err
	}
	status, body, err := a.sends.post(ctx, req, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("POST /send-message/: %w", err)
	}
	if status != http.StatusCreated {
		return &httpError{method: http.MethodPost, path: "/send-message/", status: status, body: body}
	}
	return nil
}

// message is the part of a message object the benchmark reads.
type message struct {
	ID           int64  `json:"id"`
	Conversation int64  `json:"conversation"`
	Text         string `json:"text"`
	Position     string `json:"position"`
}

// listRoom gets the newest page of a room's messages and discards it.
func (a *api) listRoom(ctx context.Context, u *user, room int64) error {
	return a.do(ctx, http.MethodGet, "/list-conversation-messages/"+strconv.FormatInt(room, 10)+"/", u.token, nil, http.StatusOK, nil)
}

// get gets path as u and discards the answer.
func (a *api) get(ctx context.Context, u *user, path string) error {
	return a.do(ctx, http.MethodGet, path, u.token, nil, http.StatusOK, nil)
}

// listRoomMessages gets and decodes the newest page of a room's messages.
func (a *api) listRoomMessages(ctx context.Context, u *user, room int64) ([]message, error) {
	var out []message
	err := a.do(ctx, http.MethodGet, "/list-conversation-messages/"+strconv.FormatInt(room, 10)+"/", u.token, nil, http.StatusOK, &out)
	return out, err
}

// listRoomAsOf gets and decodes a room's newest page as it stood at asOf.
func (a *api) listRoomAsOf(ctx context.Context, u *user, room int64, asOf string) ([]message, error) {
	var out []message
	err := a.do(ctx, http.MethodGet, "/list-conversation-messages/"+strconv.FormatInt(room, 10)+"/?as_of="+url.QueryEscape(asOf), u.token, nil, http.StatusOK, &out)
	return out, err
}

// healthy reports whether GET /healthz answers 200.
func (a *api) healthy(ctx context.Context) bool {
	return a.do(ctx, http.MethodGet, "/healthz", "", nil, http.StatusOK, nil) == nil
}

// dialRoom opens a WebSocket on a room, authenticated with ?token=.
func (a *api) dialRoom(ctx context.Context, u *user, room int64) (*websocket.Conn, error) {
	u2 := "ws" + strings.TrimPrefix(a.base, "http") + "/ws/chat/" + strconv.FormatInt(room, 10) +
		"/?token=" + url.QueryEscape(u.token)
	conn, resp, err := a.ws.DialContext(ctx, u2, nil)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
			resp.Body.Close()
			return nil, fmt.Errorf("websocket /ws/chat/N/: %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("websocket /ws/chat/N/: %w", err)
	}
	return conn, nil
}
