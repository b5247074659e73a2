package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// The documents whose relative links must resolve: the README, the
// security policy, the deploy notes and everything in docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../../README.md", "../../SECURITY.md", "../../deploy/README.md"}
	more, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(more) == 0 {
		t.Fatalf("no docs/*.md found (%v)", err)
	}
	return append(files, more...)
}

var (
	// mdLink is an inline Markdown link or image: [text](target) or
	// [text](target "title").
	mdLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// codeSpan is an inline code span, whose text is not a link.
	codeSpan = regexp.MustCompile("`[^`]*`")
	// mdMention is a Markdown file named in a code span, e.g. `docs/x.md`.
	mdMention = regexp.MustCompile("`([A-Za-z0-9_./-]+\\.md)`")
)

// prose returns the lines of a Markdown file outside fenced code blocks.
func prose(text string) []string {
	var out []string
	fenced := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, l)
		}
	}
	return out
}

// anchors returns the heading anchors of a Markdown file as GitHub makes
// them: lower case, punctuation other than '-' and '_' dropped, spaces as
// '-', a "-N" suffix for repeats.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	for _, l := range prose(text) {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if out[a] {
			for n := 1; ; n++ {
				if c := a + "-" + strconv.Itoa(n); !out[c] {
					a = c
					break
				}
			}
		}
		out[a] = true
	}
	return out
}

// TestDocLinks checks that every relative link in the README and the docs
// names a file of the repository (and, for a link into a Markdown file
// with a #fragment, one of its headings), and that every Markdown file the
// README names in a code span exists: the README names no document the
// repository lacks.
func TestDocLinks(t *testing.T) {
	for _, file := range docFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(file)
		for i, l := range prose(string(b)) {
			for _, m := range mdLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(l, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, frag, _ := strings.Cut(target, "#")
				resolved := file
				if path != "" {
					resolved = filepath.Join(dir, filepath.FromSlash(path))
				}
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s: link %q (prose line %d): %v", file, target, i+1, err)
					continue
				}
				if frag != "" && strings.HasSuffix(resolved, ".md") {
					tb, err := os.ReadFile(resolved)
					if err != nil {
						t.Errorf("%s: link %q: %v", file, target, err)
						continue
					}
					if !anchors(string(tb))[frag] {
						t.Errorf("%s: link %q: %s has no heading with anchor #%s", file, target, resolved, frag)
					}
				}
			}
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mdMention.FindAllStringSubmatch(string(readme), -1) {
		if _, err := os.Stat(filepath.Join("../..", filepath.FromSlash(m[1]))); err != nil {
			t.Errorf("README.md names %s, which the repository lacks", m[1])
		}
	}
}
