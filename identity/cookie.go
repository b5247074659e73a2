package identity

import (
	"encoding/base64"

	"github.com/sensegate/sensegate/seal"
)

// sealString seals plain under r for name (a cookie's name, or "session
// "+id for a stored session), which it is bound to: a value sealed for one
// name does not open as another. The result is unpadded base64url, a
// valid cookie value.
func sealString(r *seal.Ring, name string, plain []byte) string {
	return base64.RawURLEncoding.EncodeToString(r.Seal(nil, plain, []byte(name)))
}

// openString reverses sealString with any key of r; anything else is
// seal.ErrInvalid, whatever the cause, to the caller as to the client.
func openString(r *seal.Ring, name, value string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, seal.ErrInvalid
	}
	return r.Open(raw, []byte(name))
}
