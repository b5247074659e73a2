package identity

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
)

// cookieKeySize is the AES-256 key size in bytes.
const cookieKeySize = 32

// errCookieInvalid is why a sealed value does not open: not base64url, too
// short, tampered with, sealed for another name, or under a key no longer
// configured. The causes are not told apart, to the caller or the client.
var errCookieInvalid = errors.New("cookie value is invalid")

// cookieCipher seals values (cookie values, stored sessions) with
// AES-256-GCM: confidential and authenticated, with the name as
// associated data so that a value sealed for one cookie does not open as
// another. The first key seals; every key opens, so keys rotate by
// putting the new key first and keeping the old one second until the
// values it sealed have expired. Safe for concurrent use.
type cookieCipher struct {
	aeads []cipher.AEAD
}

// newCookieCipher returns a cookieCipher for keys, each 32 bytes.
func newCookieCipher(keys [][]byte) (*cookieCipher, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one key is required")
	}
	c := &cookieCipher{}
	for i, k := range keys {
		if len(k) != cookieKeySize {
			return nil, fmt.Errorf("key %d is %d bytes, want %d", i, len(k), cookieKeySize)
		}
		b, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		// Random 96-bit nonces, prepended to the ciphertext: NIST SP
		// 800-38D allows 2^32 seals per key, far beyond the logins one key
		// sees between rotations.
		a, err := cipher.NewGCMWithRandomNonce(b)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		c.aeads = append(c.aeads, a)
	}
	return c, nil
}

// seal encrypts plain for name under the first key and returns it as
// unpadded base64url (nonce, ciphertext, tag), a valid cookie value.
func (c *cookieCipher) seal(name string, plain []byte) string {
	return base64.RawURLEncoding.EncodeToString(c.aeads[0].Seal(nil, nil, plain, []byte(name)))
}

// open reverses seal with any key; anything else is errCookieInvalid.
func (c *cookieCipher) open(name, value string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, errCookieInvalid
	}
	for _, a := range c.aeads {
		if len(raw) < a.Overhead() {
			return nil, errCookieInvalid
		}
		if plain, err := a.Open(nil, nil, raw, []byte(name)); err == nil {
			return plain, nil
		}
	}
	return nil, errCookieInvalid
}
