package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// chatctl users forget forgets a user beside a running chatd: the audit
// shows placeholders, the user cannot log in, and the read model still
// matches a rebuild.
func TestUsersForget(t *testing.T) {
	m, db := server(t)
	base := m.URL()
	post(t, base+"/auth/register/", "", map[string]string{"username": "ann", "password": "password-ann"})
	post(t, base+"/auth/register/", "", map[string]string{"username": "bob", "password": "password-bob"})
	ann := post(t, base+"/auth/login/", "", map[string]string{"username": "ann", "password": "password-ann"})["access"].(string)
	post(t, base+"/create-chatroom/", ann, map[string]any{"type": "group", "name": "ann's", "members": []int{2}})
	post(t, base+"/send-message/", ann, map[string]any{"conversation_id": 1, "text": "ann's words"})

	out, errOut, code := chatctl(t, db, "users", "forget", "1")
	if code != 0 || !strings.Contains(out, "user 1 forgotten") {
		t.Fatalf("forget exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = chatctl(t, db, "audit", "stream", "conversation-1")
	if code != 0 || strings.Contains(out, "ann's") || !strings.Contains(out, "[deleted]") {
		t.Fatalf("audit after forgetting, exit %d:\n%s%s", code, out, errOut)
	}
	b, _ := json.Marshal(map[string]string{"username": "ann", "password": "password-ann"})
	resp, err := http.Post(base+"/auth/login/", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("login of a forgotten user = %d; want 401", resp.StatusCode)
	}
	if out, errOut, code := chatctl(t, db, "users", "forget", "1"); code != 0 {
		t.Errorf("forgetting again: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, code := chatctl(t, db, "users", "forget", "99"); code != 1 {
		t.Errorf("forgetting no user: exit %d; want 1", code)
	}
	for _, args := range [][]string{{"users"}, {"users", "forget"}, {"users", "forget", "x"}, {"users", "frob"}} {
		if _, _, code := chatctl(t, db, args...); code != 2 {
			t.Errorf("chatctl %v exit %d; want 2", args, code)
		}
	}
}
