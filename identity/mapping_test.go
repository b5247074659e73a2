package identity

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMapping(t *testing.T) {
	tests := []struct {
		name      string
		cfg       MappingConfig
		claims    map[string]any
		want      User
		wantClaim string // a ClaimError naming this claim
	}{
		{"preferred_username and groups", MappingConfig{Directory: "ACME"},
			map[string]any{"preferred_username": "alice", "groups": []any{"Sales", "EMEA"}},
			User{Directory: "ACME", ID: "alice", Attributes: []Attribute{{Key: "Group", Value: "Sales"}, {Key: "Group", Value: "EMEA"}}}, ""},
		{"email with domain stripped", MappingConfig{Directory: "ACME", UserIDClaim: "email", UserIDPattern: `^([^@]+)@acme\.com$`},
			map[string]any{"email": "bob@acme.com"}, User{Directory: "ACME", ID: "bob"}, ""},
		{"pattern does not match", MappingConfig{Directory: "ACME", UserIDClaim: "email", UserIDPattern: `^([^@]+)@acme\.com$`},
			map[string]any{"email": "bob@evil.com"}, User{}, "email"},
		{"directory from claim", MappingConfig{Directory: "ACME", DirectoryClaim: "tenant"},
			map[string]any{"preferred_username": "carol", "tenant": "CORP"}, User{Directory: "CORP", ID: "carol"}, ""},
		{"directory claim absent: fixed one", MappingConfig{Directory: "ACME", DirectoryClaim: "tenant"},
			map[string]any{"preferred_username": "carol"}, User{Directory: "ACME", ID: "carol"}, ""},
		{"named attributes, groups off", MappingConfig{Directory: "ACME", GroupsClaim: "-", Attributes: map[string]string{"email": "email", "Dept": "department"}},
			map[string]any{"preferred_username": "dave", "groups": []any{"x"}, "email": "d@acme.com", "department": []any{"R&D", "Ops"}},
			User{Directory: "ACME", ID: "dave", Attributes: []Attribute{{Key: "Dept", Value: "R&D"}, {Key: "Dept", Value: "Ops"}, {Key: "email", Value: "d@acme.com"}}}, ""},
		{"missing user claim", MappingConfig{Directory: "ACME"}, map[string]any{"sub": "x"}, User{}, "preferred_username"},
		{"backslash in user", MappingConfig{Directory: "ACME"}, map[string]any{"preferred_username": `ACME\eve`}, User{}, "preferred_username"},
		{"blank user", MappingConfig{Directory: "ACME"}, map[string]any{"preferred_username": "  "}, User{}, "preferred_username"},
		{"backslash in directory claim", MappingConfig{Directory: "ACME", DirectoryClaim: "tenant"}, map[string]any{"preferred_username": "f", "tenant": `A\B`}, User{}, "tenant"},
		{"user claim not a string", MappingConfig{Directory: "ACME"}, map[string]any{"preferred_username": 42.0}, User{}, "preferred_username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMapping(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.User(tt.claims)
			var ce *ClaimError
			if tt.wantClaim != "" {
				if !errors.As(err, &ce) || ce.Claim != tt.wantClaim {
					t.Fatalf("User = %v, %v; want a ClaimError naming %q", got, err, tt.wantClaim)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("User mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewMappingErrors(t *testing.T) {
	for _, c := range []MappingConfig{
		{Directory: "ACME", UserIDPattern: "("},
		{},
		{Directory: "ACME", Attributes: map[string]string{"": "email"}},
	} {
		if _, err := NewMapping(c); err == nil {
			t.Errorf("NewMapping(%+v) = nil error", c)
		}
	}
}
