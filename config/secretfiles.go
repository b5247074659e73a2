package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// Secret-bearing keys can also be read from a file, as Kubernetes and
// Docker mount secrets: for each key K below, K_file (or its variable
// SENSEGATE_…_FILE) names a file whose content becomes K's value. A
// trailing newline is trimmed; a list key takes one item a line (commas
// and spaces separate items too, as in the environment). Setting both K
// (in the file or the environment) and K_file is an error, and so is a
// file that cannot be read: the error names K_file and the file. Load
// reads the files; Validate, for a Config filled in code, does not.
//
// The keys:
//
//	identity.cookie_secrets        identity.cookie_secrets_file
//	identity.oidc.client_secret    identity.oidc.client_secret_file
//	identity.oidc.cookie_secrets   identity.oidc.cookie_secrets_file
//	store.redis.password           store.redis.password_file
//	store.encryption_keys          store.encryption_keys_file
//
// A changed secret file is read on the next reload (a change of the
// configuration file, or SIGHUP), not by itself.

// secretFile is a secret-bearing key and its _file key: exactly one of
// str and list is set, pointing into the Config being loaded.
type secretFile struct {
	key  string
	file string
	str  *string
	list *[]string
}

// secretFiles lists c's secret-bearing keys with their _file keys.
func (c *Config) secretFiles() []secretFile {
	return []secretFile{
		{key: "identity.cookie_secrets", file: c.Identity.CookieSecretsFile, list: &c.Identity.CookieSecrets},
		{key: "identity.oidc.client_secret", file: c.Identity.OIDC.ClientSecretFile, str: &c.Identity.OIDC.ClientSecret},
		{key: "identity.oidc.cookie_secrets", file: c.Identity.OIDC.CookieSecretsFile, list: &c.Identity.OIDC.CookieSecrets},
		{key: "store.redis.password", file: c.Store.Redis.PasswordFile, str: &c.Store.Redis.Password},
		{key: "store.encryption_keys", file: c.Store.EncryptionKeysFile, list: &c.Store.RawEncryptionKeys},
	}
}

// readSecretFiles fills every secret-bearing key whose _file key is set
// from that file, and returns a problem for each _file key that is set
// together with its key or whose file cannot be read or is empty.
func (c *Config) readSecretFiles() []problem {
	var probs []problem
	for _, s := range c.secretFiles() {
		if s.file == "" {
			continue
		}
		fileKey := s.key + "_file"
		set := s.str != nil && *s.str != "" || s.list != nil && len(*s.list) > 0
		if set {
			probs = append(probs, problem{key: fileKey, err: fmt.Errorf("is set together with %s", s.key),
				fix: "set one of them: remove " + s.key + " from the file and its SENSEGATE_ variable, or " + fileKey})
			continue
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			if pe, ok := errors.AsType[*os.PathError](err); ok {
				err = pe.Err
			}
			probs = append(probs, problem{key: fileKey, err: fmt.Errorf("cannot read %s: %w", s.file, err),
				fix: "mount the secret there, or correct the path"})
			continue
		}
		v := strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(v) == "" {
			probs = append(probs, problem{key: fileKey, err: fmt.Errorf("%s is empty", s.file),
				fix: "put the value of " + s.key + " in it"})
			continue
		}
		if s.str != nil {
			*s.str = v
		} else {
			*s.list = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
		}
	}
	return probs
}
