package main

import (
	"os"
	"regexp"
	"testing"
)

// Issue 16: deploy/compose.yaml gave SENSEGATE_STORE_ENCRYPTION_KEYS a
// public default, so a deployment outside the demo profile that forgot
// its own key encrypted its Qlik sessions with a key anyone can read. The
// variable must be required (${VAR:?…}), and no key may be in the file.
func TestComposeRequiresAnEncryptionKey(t *testing.T) {
	b, err := os.ReadFile("../../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^\s*SENSEGATE_STORE_ENCRYPTION_KEYS:\s*(.*)$`).FindSubmatch(b)
	if line == nil {
		t.Fatal("compose.yaml does not set SENSEGATE_STORE_ENCRYPTION_KEYS")
	}
	if !regexp.MustCompile(`^\$\{SENSEGATE_STORE_ENCRYPTION_KEYS:\?[^}]+\}$`).Match(line[1]) {
		t.Errorf("SENSEGATE_STORE_ENCRYPTION_KEYS: %s, want ${SENSEGATE_STORE_ENCRYPTION_KEYS:?message} (required, no default)", line[1])
	}
	// Nothing that looks like a base64 key of 32 bytes anywhere.
	if k := regexp.MustCompile(`[A-Za-z0-9+/]{43}=`).Find(b); k != nil {
		t.Errorf("compose.yaml holds a key: %s", k)
	}
}
