package auth

import (
	"crypto/sha256"
	"encoding/base64"

	"golang.org/x/crypto/bcrypt"
)

// Bcrypt hashes and checks passwords with bcrypt.
type Bcrypt struct {
	cost int
	// dummy is compared against when a username does not exist, so a login
	// takes the same time either way: it has the same cost as real hashes.
	dummy []byte
}

// NewBcrypt returns a hasher of the given cost (bcrypt.MinCost to
// bcrypt.MaxCost).
func NewBcrypt(cost int) Bcrypt {
	dummy, _ := bcrypt.GenerateFromPassword([]byte("not-a-real-password"), cost)
	return Bcrypt{cost: cost, dummy: dummy}
}

// bcryptInput is what bcrypt hashes for a password. bcrypt reads at most 72
// bytes (and GenerateFromPassword refuses more), so a longer password is
// pre-hashed, base64-encoded to keep NUL bytes out. No stored hash has a
// longer input, so shorter passwords keep their hashes.
func bcryptInput(password string) []byte {
	if len(password) <= 72 {
		return []byte(password)
	}
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

// Hash returns the hash to store for password.
func (h Bcrypt) Hash(password string) (string, error) {
	b, err := bcrypt.GenerateFromPassword(bcryptInput(password), h.cost)
	return string(b), err
}

// Compare checks password against hash; with a nil hash (no such user) it
// does the same work against the dummy hash and fails.
func (h Bcrypt) Compare(hash []byte, password string) error {
	if hash == nil {
		_ = bcrypt.CompareHashAndPassword(h.dummy, bcryptInput(password))
		return bcrypt.ErrMismatchedHashAndPassword
	}
	return bcrypt.CompareHashAndPassword(hash, bcryptInput(password))
}
