package session

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// KeySize is the size in bytes of the AES-256 keys that encrypt what the
// Redis stores write.
const KeySize = 32

// errNotOpened is why a sealed value does not decrypt under any key.
var errNotOpened = errors.New("session: value does not decrypt with any key")

// sealer encrypts with AES-256-GCM under the first of its keys and
// decrypts under any of them, so that keys can be rotated: add the new key
// first, keep the old one second until what it sealed has expired. It is
// safe for concurrent use.
type sealer struct{ aeads []cipher.AEAD }

func newSealer(keys [][]byte) (*sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("session: no encryption key")
	}
	s := &sealer{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("session: encryption key %d is %d bytes, want %d", i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("session: encryption key %d: %w", i, err)
		}
		// A random 96-bit nonce per value, prepended to it: fine for far
		// more values than one key will ever seal here.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("session: encryption key %d: %w", i, err)
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

// seal appends to dst plain encrypted and authenticated together with ad,
// the associated data (the Redis key, so that a value copied under another
// key does not open).
func (s *sealer) seal(dst, plain, ad []byte) []byte {
	return s.aeads[0].Seal(dst, nil, plain, ad)
}

// open returns the plaintext of sealed, trying each key in turn.
func (s *sealer) open(sealed, ad []byte) ([]byte, error) {
	for _, a := range s.aeads {
		if plain, err := a.Open(nil, nil, sealed, ad); err == nil {
			return plain, nil
		}
	}
	return nil, errNotOpened
}
