package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// secretFilesYAML is minimalYAML with the redis store and the OIDC
// provider, whose secrets are left to the test.
func secretFilesYAML(c certFiles, extra string) string {
	return strings.Replace(minimalYAML(c), "identity:\n", `server:
  public_url: https://mashups.example.com
identity:
  provider: oidc
  oidc:
    issuer: https://login.example.com
    client_id: sensegate
`, 1) + `store:
  type: redis
  redis:
    addr: redis.example.com:6379
` + extra
}

// Every secret-bearing key read from a file, named in the file or in the
// environment, as Kubernetes and Docker mount secrets (trailing newline
// and all).
func TestLoadSecretFiles(t *testing.T) {
	clearEnv(t)
	c := writeCerts(t)
	dir := t.TempDir()
	key1 := strings.Repeat("A", 43) + "="
	key2 := strings.Repeat("_", 43)
	clientSecret := writeFile(t, dir, "client_secret", "s3cret client\n")
	cookieSecrets := writeFile(t, dir, "cookie_secrets", key2+"\n"+key1+"\n")
	password := writeFile(t, dir, "password", "redis pass\r\n")
	encryptionKeys := writeFile(t, dir, "encryption_keys", key1+", "+key2)
	t.Setenv("SENSEGATE_STORE_REDIS_PASSWORD_FILE", password)
	t.Setenv("SENSEGATE_IDENTITY_OIDC_COOKIE_SECRETS_FILE", cookieSecrets)
	got, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", strings.Replace(
		secretFilesYAML(c, fmt.Sprintf("  encryption_keys_file: %q\n", encryptionKeys)),
		"    client_id: sensegate\n", fmt.Sprintf("    client_id: sensegate\n    client_secret_file: %q\n", clientSecret), 1)))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"identity.oidc.client_secret", got.Identity.OIDC.ClientSecret, "s3cret client"},
		{"identity.oidc.cookie_secrets", got.Identity.OIDC.CookieSecrets, []string{key2, key1}},
		{"store.redis.password", got.Store.Redis.Password, "redis pass"},
		{"store.encryption_keys", got.Store.RawEncryptionKeys, []string{key1, key2}},
		{"identity.oidc.client_secret_file", got.Identity.OIDC.ClientSecretFile, clientSecret},
		{"store.redis.password_file", got.Store.Redis.PasswordFile, password},
	} {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", tc.key, diff)
		}
	}
	if len(got.Store.EncryptionKeys()) != 2 || len(got.Identity.CookieKeys()) != 2 {
		t.Errorf("decoded keys: %d encryption, %d cookie; want 2 and 2", len(got.Store.EncryptionKeys()), len(got.Identity.CookieKeys()))
	}
}

func TestLoadSecretFileErrors(t *testing.T) {
	c := writeCerts(t)
	key := strings.Repeat("A", 43) + "="
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "keys", key+"\n")
	empty := writeFile(t, dir, "empty", "\n")
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name  string
		extra string
		env   map[string]string
		want  []string // the error's lines
	}{
		{
			name:  "both in the file",
			extra: fmt.Sprintf("  encryption_keys: [%q]\n  encryption_keys_file: %q\n", key, keyFile),
			want:  []string{"store.encryption_keys_file: is set together with store.encryption_keys (set one of them: remove store.encryption_keys from the file and its SENSEGATE_ variable, or store.encryption_keys_file)"},
		},
		{
			name:  "the value in the environment, the file in the file",
			extra: fmt.Sprintf("  encryption_keys_file: %q\n", keyFile),
			env:   map[string]string{"SENSEGATE_STORE_REDIS_PASSWORD": "pw", "SENSEGATE_STORE_REDIS_PASSWORD_FILE": keyFile},
			want:  []string{"store.redis.password_file: is set together with store.redis.password (set one of them: remove store.redis.password from the file and its SENSEGATE_ variable, or store.redis.password_file)"},
		},
		{
			name:  "missing file, and no second complaint about the required key",
			extra: fmt.Sprintf("  encryption_keys_file: %q\n", missing),
			want:  []string{"store.encryption_keys_file: cannot read " + missing + ": no such file or directory (mount the secret there, or correct the path)"},
		},
		{
			name:  "a directory",
			extra: fmt.Sprintf("  encryption_keys_file: %q\n", dir),
			want:  []string{"store.encryption_keys_file: cannot read " + dir + ": is a directory (mount the secret there, or correct the path)"},
		},
		{
			name:  "empty file",
			extra: fmt.Sprintf("  encryption_keys_file: %q\n", empty),
			env:   map[string]string{"SENSEGATE_IDENTITY_OIDC_CLIENT_SECRET_FILE": missing},
			want: []string{
				"identity.oidc.client_secret_file: cannot read " + missing + ": no such file or directory (mount the secret there, or correct the path)",
				"store.encryption_keys_file: " + empty + " is empty (put the value of store.encryption_keys in it)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("SENSEGATE_IDENTITY_OIDC_COOKIE_SECRETS", key)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", secretFilesYAML(c, tc.extra)))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			got := errLines(err)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Load error lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// The Helm chart mounts every secret-bearing key as its _file key: its
// list (sensegate.secretFileKeys) names exactly the keys sensegate reads
// from files, so that a new one cannot be forgotten there.
func TestChartMountsEverySecretKey(t *testing.T) {
	b, err := os.ReadFile("../deploy/helm/sensegate/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	tpl := string(b)
	start := strings.Index(tpl, `define "sensegate.secretFileKeys"`)
	if start < 0 {
		t.Fatal(`_helpers.tpl has no "sensegate.secretFileKeys"`)
	}
	body := tpl[start:]
	body = body[strings.Index(body, "\n")+1 : strings.Index(body, "{{- end }}")]
	var chart []string
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		_, key, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("secretFileKeys line %q is not name: key", line)
		}
		chart = append(chart, strings.TrimSpace(key))
	}
	var ours []string
	for _, sf := range (&Config{}).secretFiles() {
		ours = append(ours, sf.key)
	}
	slices.Sort(chart)
	slices.Sort(ours)
	if !slices.Equal(chart, ours) {
		t.Errorf("the chart mounts %v, sensegate reads %v from files", chart, ours)
	}
}
