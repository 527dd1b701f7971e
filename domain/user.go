package domain

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// User is the state of a user-<id> stream.
type User struct {
	ID       int64
	Username string
}

// Exists reports whether the user has registered.
func (u *User) Exists() bool { return u.ID != 0 }

// Apply evolves the user by one event.
func (u *User) Apply(e Event) {
	if r, ok := e.(UserRegistered); ok {
		u.ID, u.Username = r.UserID, r.Username
	}
}

// ValidateCredentials checks a new username and password, field by field.
// It returns nil or an invalid-kind *Error with every problem found.
func ValidateCredentials(username, password string) error {
	fields := map[string][]string{}
	switch {
	case username == "":
		fields["username"] = []string{"This field may not be blank."}
	case utf8.RuneCountInString(username) > 150:
		fields["username"] = []string{"Ensure this field has no more than 150 characters."}
	case strings.IndexFunc(username, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("@.+-_", r)
	}) >= 0:
		fields["username"] = []string{"Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."}
	}
	switch {
	case password == "":
		fields["password"] = []string{"This field may not be blank."}
	case utf8.RuneCountInString(password) < 8:
		fields["password"] = []string{"This password is too short. It must contain at least 8 characters."}
	case strings.IndexFunc(password, func(r rune) bool { return !unicode.IsDigit(r) }) < 0:
		fields["password"] = []string{"This password is entirely numeric."}
	case len(password) > 1024:
		fields["password"] = []string{"Ensure this field has no more than 1024 characters."}
	}
	if len(fields) > 0 {
		return &Error{Kind: KindInvalid, Fields: fields}
	}
	return nil
}

// CleanUsername is the form a username is registered, stored and shown in:
// its NFKC normalisation, as Django does, so that compatibility variants
// (fullwidth "ａｌｉｃｅ", ligatures, superscripts) become the plain
// characters they stand for. Case is kept as typed.
func CleanUsername(username string) string { return norm.NFKC.String(username) }

// NormalizeUsername is the key usernames are unique in, and found by at
// login: NFKC, then Unicode case folding (not lower-casing: "Straße" and
// "STRASSE" are one name), then NFKC again, since folding can leave a
// string that is no longer normalised. "Alice", "alice" and "ａｌｉｃｅ"
// share a key.
func NormalizeUsername(username string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(username)))
}

// Register decides the events that register a user whose username
// reservation has succeeded and whose credential is stored.
func Register(id int64, username string) []Event {
	return []Event{UserRegistered{UserID: id, Username: username, PasswordSet: true}}
}
