package shred

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// KeySize is the size of a user key: AES-256.
const KeySize = 32

// sealPrefix versions the sealed form: "v1:" is AES-256-GCM with a 12-byte
// random nonce, base64 (standard, padded) of nonce then ciphertext.
const sealPrefix = "v1:"

// A sealed value is the JSON object {"sealed":"v1:..."}: an object, never
// a string, so that a legacy plaintext value (a string, an attachment
// object with a key, null) is never taken for one: only an object whose one
// member is "sealed" is.

// ErrCorrupt is returned when a sealed value does not open with its
// owner's key: the log or the key table was altered.
var ErrCorrupt = errors.New("sealed value does not open with its owner's key")

// NewKey returns a fresh random user key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new user key: %w", err)
	}
	return k, nil
}

// additional binds a ciphertext to its owner, event type and member: a
// sealed value copied into another user's event, another event type or
// another member does not open.
func additional(owner int64, eventType, field string) []byte {
	return []byte("evchat/shred/v1|" + strconv.FormatInt(owner, 10) + "|" + eventType + "|" + field)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts the JSON value plain and returns its sealed JSON form.
func seal(aead cipher.AEAD, ad, plain []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	box := aead.Seal(nonce, nonce, plain, ad)
	// {"sealed":"v1:<base64>"}, written by hand: base64 needs no escaping.
	const head, tail = `{"sealed":"` + sealPrefix, `"}`
	out := make([]byte, 0, len(head)+base64.StdEncoding.EncodedLen(len(box))+len(tail))
	out = append(out, head...)
	out = base64.StdEncoding.AppendEncode(out, box)
	return append(out, tail...), nil
}

// sealedBox returns the box of a sealed JSON value, and false for anything
// else (plaintext). It reads the one shape sealed values have, whitespace
// aside (jsonb re-spaces it): an object whose only member is "sealed", a
// string without escapes (base64 needs none). Anything else, a second
// member or an escape included, is plaintext. It is on every read's path:
// no reflection, no allocation but the result.
func sealedBox(v []byte) ([]byte, bool) {
	v = bytes.TrimSpace(v)
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		return nil, false
	}
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(v[1:len(v)-1]), []byte(`"sealed"`))
	if !ok {
		return nil, false
	}
	rest = bytes.TrimSpace(rest)
	if len(rest) == 0 || rest[0] != ':' {
		return nil, false
	}
	rest = bytes.TrimSpace(rest[1:])
	if len(rest) < 2 || rest[0] != '"' || rest[len(rest)-1] != '"' {
		return nil, false
	}
	box := rest[1 : len(rest)-1]
	if bytes.IndexByte(box, '"') >= 0 || bytes.IndexByte(box, '\\') >= 0 {
		return nil, false
	}
	return box, true
}

// open decrypts a sealed box into its JSON value, in a buffer of its own
// (decoded, then decrypted in place).
func open(aead cipher.AEAD, ad, box []byte) ([]byte, error) {
	enc, ok := bytes.CutPrefix(box, []byte(sealPrefix))
	if !ok {
		return nil, fmt.Errorf("%w: unknown seal version", ErrCorrupt)
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	n, err := base64.StdEncoding.Decode(raw, enc)
	if err != nil || n < aead.NonceSize() {
		return nil, fmt.Errorf("%w: malformed", ErrCorrupt)
	}
	nonce, sealed := raw[:aead.NonceSize()], raw[aead.NonceSize():n]
	plain, err := aead.Open(sealed[:0], nonce, sealed, ad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return plain, nil
}
