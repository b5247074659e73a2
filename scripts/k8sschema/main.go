// Command k8sschema writes kubeconform's strict JSON schemas offline, from
// the Kubernetes OpenAPI v2 document (api/openapi-spec/swagger.json of the
// k8s.io/kubernetes module, fetched through the Go module proxy) and from
// CustomResourceDefinition YAML files (e.g. prometheus-operator's
// ServiceMonitor), as the upstream openapi2jsonschema --strict would:
// one standalone file per kind, named as kubeconform's -schema-location
// template {{ .ResourceKind }}{{ .KindSuffix }}.json expects, objects with
// properties closed (additionalProperties: false), int-or-string as a
// string or an integer, and null accepted where a type is.
//
//	go run ./scripts/k8sschema -swagger swagger.json -out DIR [CRD.yaml ...]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	swagger := flag.String("swagger", "", "Kubernetes swagger.json (OpenAPI v2)")
	out := flag.String("out", "", "directory to write the schemas to")
	flag.Parse()
	if *swagger == "" || *out == "" {
		log.Fatal("usage: k8sschema -swagger swagger.json -out DIR [CRD.yaml ...]")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	n, err := fromSwagger(*swagger, *out)
	if err != nil {
		log.Fatal(err)
	}
	for _, crd := range flag.Args() {
		m, err := fromCRD(crd, *out)
		if err != nil {
			log.Fatal(err)
		}
		n += m
	}
	fmt.Printf("k8sschema: %d schemas in %s\n", n, *out)
}

// fileName is kubeconform's name for the schema of kind in apiVersion.
func fileName(kind, group, version string) string {
	suffix := "-" + version
	if group != "" {
		suffix = "-" + strings.ToLower(strings.Split(group, ".")[0]) + "-" + version
	}
	return strings.ToLower(kind) + suffix + ".json"
}

func fromSwagger(path, out string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for name, def := range doc.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			gvk, _ := g.(map[string]any)
			group, _ := gvk["group"].(string)
			version, _ := gvk["version"].(string)
			kind, _ := gvk["kind"].(string)
			// Standalone: the definitions it reaches ride along.
			defs := map[string]any{}
			collect(name, doc.Definitions, defs)
			schema := map[string]any{"$ref": "#/definitions/" + name, "definitions": defs}
			if err := write(filepath.Join(out, fileName(kind, group, version)), schema); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// collect adds name's converted definition and those it refers to.
func collect(name string, all map[string]map[string]any, into map[string]any) {
	if _, ok := into[name]; ok {
		return
	}
	def, ok := all[name]
	if !ok {
		return
	}
	c := convert(def)
	into[name] = c
	var refs func(any)
	refs = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				collect(strings.TrimPrefix(r, "#/definitions/"), all, into)
			}
			for _, e := range v {
				refs(e)
			}
		case []any:
			for _, e := range v {
				refs(e)
			}
		}
	}
	refs(c)
}

// convert makes an OpenAPI schema a strict JSON schema (a converted copy).
func convert(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if k == "x-kubernetes-group-version-kind" || strings.HasPrefix(k, "x-kubernetes-list") || k == "x-kubernetes-patch-merge-key" || k == "x-kubernetes-patch-strategy" || k == "x-kubernetes-map-type" {
				continue
			}
			out[k] = convert(e)
		}
		if out["format"] == "int-or-string" || out["x-kubernetes-int-or-string"] == true {
			delete(out, "type")
			delete(out, "format")
			out["oneOf"] = []any{map[string]any{"type": []any{"string", "null"}}, map[string]any{"type": "integer"}}
		}
		if t, ok := out["type"].(string); ok {
			out["type"] = []any{t, "null"}
		}
		if _, ok := out["properties"]; ok {
			if _, set := out["additionalProperties"]; !set && out["x-kubernetes-preserve-unknown-fields"] != true {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = convert(e)
		}
		return out
	}
	return v
}

// fromCRD writes the schema of each version of the CRDs in path.
func fromCRD(path, out string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	n := 0
	for {
		var crd struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Group string `yaml:"group"`
				Names struct {
					Kind string `yaml:"kind"`
				} `yaml:"names"`
				Versions []struct {
					Name   string `yaml:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					} `yaml:"schema"`
				} `yaml:"versions"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&crd); err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, fmt.Errorf("%s: %w", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			s := convert(v.Schema.OpenAPIV3Schema).(map[string]any)
			if err := write(filepath.Join(out, fileName(crd.Spec.Names.Kind, crd.Spec.Group, v.Name)), s); err != nil {
				return n, err
			}
			n++
		}
	}
}

func write(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, b, 0o644)
}
