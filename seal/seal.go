// Package seal encrypts and authenticates the values sensegate gives
// others to keep: the login cookies and stored sessions of the identity
// providers, and what the Redis stores write. A sealed value is
// nonce || ciphertext || tag of AES-256-GCM with a random 96-bit nonce,
// bound to associated data (a cookie name, a Redis key) so that a value
// moved to another name does not open.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// KeySize is the size in bytes of a key: AES-256.
const KeySize = 32

// ErrInvalid is why a value does not open: too short, tampered with,
// sealed with other associated data, or under a key no longer in the
// ring. The causes are not told apart.
var ErrInvalid = errors.New("seal: value does not open with any key")

// Ring seals under the first of its keys and opens under any of them, so
// that keys rotate: put the new key first and keep the old one second
// until what it sealed has expired. It is safe for concurrent use.
type Ring struct {
	aeads []cipher.AEAD
}

// New returns a Ring of keys, each KeySize bytes; the first seals. Its
// errors name a key by its index, not the setting it came from, so that
// callers prefix that ("store.encryption_keys: …").
func New(keys [][]byte) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one key is required")
	}
	r := &Ring{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("key %d is %d bytes, want %d", i, len(k), KeySize)
		}
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		// Random 96-bit nonces, prepended to the ciphertext: NIST SP
		// 800-38D allows 2^32 seals per key, far beyond what one key
		// seals between rotations.
		a, err := cipher.NewGCMWithRandomNonce(b)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		r.aeads = append(r.aeads, a)
	}
	return r, nil
}

// Seal appends to dst plain encrypted under the first key and
// authenticated together with ad, and returns the extended slice. dst and
// plain must not overlap.
func (r *Ring) Seal(dst, plain, ad []byte) []byte {
	return r.aeads[0].Seal(dst, nil, plain, ad)
}

// Open returns the plaintext of sealed, a value Seal returned for ad,
// trying each key in turn; anything else is ErrInvalid.
func (r *Ring) Open(sealed, ad []byte) ([]byte, error) {
	for _, a := range r.aeads {
		if plain, err := a.Open(nil, nil, sealed, ad); err == nil {
			return plain, nil
		}
	}
	return nil, ErrInvalid
}
