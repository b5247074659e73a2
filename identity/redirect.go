package identity

import "strings"

// SafeRedirect keeps post-login redirects on this origin: only an absolute
// path, never "//host" or "/\host" (which browsers treat as another host),
// and no control characters (browsers drop tabs and newlines from URLs, so
// "/\t/evil.example" would become "//evil.example").
func SafeRedirect(rd string) string {
	if !strings.HasPrefix(rd, "/") || strings.HasPrefix(rd, "//") || strings.HasPrefix(rd, `/\`) ||
		strings.ContainsFunc(rd, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return "/"
	}
	return rd
}
