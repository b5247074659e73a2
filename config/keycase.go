package config

import (
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// viper lower-cases every key it reads, map keys included: a ticket
// attribute configured as EmployeeNumber reached Qlik as employeenumber,
// where section access and security rules compare attribute names with
// case. The names of identity.mapping.attributes are read again from the
// file, with their case.

// attributesPath is where the ticket attribute map sits in the file.
var attributesPath = []string{"identity", "mapping", "attributes"}

// restoreAttributeCase gives the keys of c.Identity.Mapping.Attributes the
// case they have in the YAML file at path. Names that differ only in case
// are a problem: viper has kept only one of them.
func restoreAttributeCase(path string, c *Config) []problem {
	if len(c.Identity.Mapping.Attributes) == 0 {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil // viper has read it: nothing to restore from
	}
	var doc map[string]any
	if yaml.Unmarshal(raw, &doc) != nil {
		return nil
	}
	node := any(doc)
	for _, k := range attributesPath {
		m, ok := node.(map[string]any)
		if !ok {
			return nil
		}
		node = nil
		for mk, mv := range m {
			// viper matches keys without case: so does this.
			if strings.EqualFold(mk, k) {
				node = mv
			}
		}
	}
	attrs, ok := node.(map[string]any)
	if !ok {
		return nil
	}
	original := map[string]string{} // lower case → as written
	var probs []problem
	for name := range attrs {
		l := strings.ToLower(name)
		if prev, dup := original[l]; dup {
			a, b := min(prev, name), max(prev, name)
			probs = append(probs, problem{key: "identity.mapping.attributes",
				err: fmt.Errorf("%q and %q differ only in case", a, b),
				fix: "keep one of them"})
			continue
		}
		original[l] = name
	}
	fixed := make(map[string]string, len(c.Identity.Mapping.Attributes))
	for k, v := range c.Identity.Mapping.Attributes {
		if o, ok := original[strings.ToLower(k)]; ok {
			k = o
		}
		fixed[k] = v
	}
	c.Identity.Mapping.Attributes = fixed
	return probs
}
