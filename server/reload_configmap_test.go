package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/tooling/sensegatetest"
)

// configMapDir lays out dir as the kubelet does for a ConfigMap volume
// mounted as a directory: the files in a timestamped directory, ..data a
// symlink to it, and each key a symlink through ..data. It returns a
// function that publishes new content as the kubelet's atomic writer does:
// a new directory, a ..data_tmp symlink renamed over ..data, the old
// directory removed. The key's own symlink never changes.
func configMapDir(t *testing.T, dir, name, content string) (update func(string)) {
	t.Helper()
	gen := 0
	cur := ""
	publish := func(content string) {
		gen++
		ts := fmt.Sprintf("..2025_01_01_00_00_%02d.%d", gen, gen)
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(ts, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if cur != "" {
			if err := os.RemoveAll(filepath.Join(dir, cur)); err != nil {
				t.Fatal(err)
			}
		}
		cur = ts
	}
	publish(content)
	if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	return publish
}

// The configuration mounted from a ConfigMap as a directory (the chart's
// mount, not subPath): the kubelet's ..data symlink swap is a change.
func TestReloadOnConfigMapSwap(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	orig, err := os.ReadFile(sensegatetest.WriteConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	update := configMapDir(t, dir, "sensegate.yaml", string(orig))
	addr, _ := startReloadable(t, filepath.Join(dir, "sensegate.yaml"), true)
	if got := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice"); got != 200 {
		t.Fatalf("before the swap: %d", got)
	}

	changed := strings.Replace(string(orig), "identity:\n  provider: header\n  header:\n", "identity:\n  provider: header\n  header:\n    name: X-Remote-User\n", 1)
	if changed == string(orig) {
		t.Fatal("the test's config has no header identity to change")
	}
	update(changed)
	eventually(t, "the new header name after the ..data swap", func() bool { return sensegatetest.HubAs(t, addr, "X-Remote-User", "alice") == 200 })
	if got := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice"); got != http.StatusUnauthorized {
		t.Errorf("old header after the swap: %d, want 401", got)
	}
	// The watch survives the swap (and the removal of the old directory).
	update(string(orig))
	eventually(t, "the old header name after a second swap", func() bool { return sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice") == 200 })
}
