package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Load reads the YAML file at path, applies the SENSEGATE_* environment
// overrides and the defaults, and validates the result. It returns an error
// naming the file when it cannot be read or parsed; otherwise every problem
// found, one per line as by errors.Join, each starting with the key it is
// about. Unknown keys are problems: a misspelt key fails rather than being
// ignored.
func Load(path string) (*Config, error) {
	c, probs, err := read(path)
	if err != nil {
		return nil, err
	}
	probs = append(probs, c.readSecretFiles()...) // secretfiles.go
	// A key that failed to decode holds no meaningful value: don't also
	// report what validation thinks of it.
	failed := probs[:len(probs):len(probs)]
	for _, p := range c.validate() {
		if !within(p.key, failed) && !within(p.key+"_file", failed) { // nor of a key whose _file failed
			probs = append(probs, p)
		}
	}
	if err := joinProblems(probs); err != nil {
		return nil, err
	}
	return c, nil
}

// read reads and decodes the file at path with the environment overrides
// and the defaults, without validating. It returns an error if the file
// cannot be read or parsed, and otherwise the decoding problems, if any,
// with what could be decoded.
func read(path string) (*Config, []problem, error) {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("yaml")
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// AutomaticEnv only answers for keys viper knows of, so every key gets
	// a default: that makes SENSEGATE_QLIK_URL work without qlik.url in
	// the file.
	for _, k := range schemaKeys {
		if k.leaf && !strings.Contains(k.path, "[]") {
			v.SetDefault(k.path, k.value)
		}
	}
	if err := v.ReadInConfig(); err != nil {
		if pe, ok := errors.AsType[viper.ConfigParseError](err); ok {
			return nil, nil, fmt.Errorf("config: parse %s: %w", path, pe.Unwrap())
		}
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	c := new(Config)
	probs := decodeProblems(v.UnmarshalExact(c, viper.DecodeHook(decodeHook())))
	return c, append(probs, restoreAttributeCase(path, c)...), nil
}

// within reports whether key is one of probs' keys or below one of them.
func within(key string, probs []problem) bool {
	for _, p := range probs {
		if key == p.key || strings.HasPrefix(key, p.key+".") || strings.HasPrefix(key, p.key+"[") {
			return true
		}
	}
	return false
}

// decodeHook converts the strings of YAML and of the environment: durations
// ("30s") and lists ("a, b" or "a b").
func decodeHook() mapstructure.DecodeHookFunc {
	return mapstructure.ComposeDecodeHookFunc(durationHook, wholeHook, listHook)
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	stringsType   = reflect.TypeFor[[]string]()
	errUnknownKey = errors.New("unknown key")
)

// invalidKeysMsg starts mapstructure's ErrorUnused message, "has invalid
// keys: a, b"; TestLoadUnknownKeys notices if it changes.
const invalidKeysMsg = "has invalid keys: "

func durationHook(_, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (write e.g. 30s, 15m or 1h30m)", d)
		}
		return dur, nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		// A bare YAML number would be nanoseconds: surely not what was meant.
		return nil, fmt.Errorf("%v has no unit (write e.g. %vs)", d, d)
	}
	return data, nil
}

// wholeHook refuses a fractional number for an integer, which weak
// decoding would truncate.
func wholeHook(_, to reflect.Type, data any) (any, error) {
	if f, ok := data.(float64); ok && to.Kind() == reflect.Int && f != math.Trunc(f) {
		return nil, fmt.Errorf("%v is not a whole number (write e.g. %d)", f, int(f))
	}
	return data, nil
}

func listHook(from, to reflect.Type, data any) (any, error) {
	if to != stringsType || from.Kind() != reflect.String {
		return data, nil
	}
	return strings.FieldsFunc(reflect.ValueOf(data).String(), func(r rune) bool {
		return r == ',' || unicode.IsSpace(r)
	}), nil
}

// decodeProblems turns the error of UnmarshalExact into one problem per key.
func decodeProblems(err error) []problem {
	var probs []problem
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		case *mapstructure.DecodeError:
			inner := e.Unwrap()
			if _, ok := errors.AsType[*mapstructure.DecodeError](inner); ok {
				walk(inner)
				return
			}
			if keys, ok := strings.CutPrefix(inner.Error(), invalidKeysMsg); ok {
				for k := range strings.SplitSeq(keys, ", ") {
					probs = append(probs, unknownKey(joinKey(e.Name(), k)))
				}
				return
			}
			probs = append(probs, typeProblem(e.Name(), inner))
		default:
			if _, ok := errors.AsType[*mapstructure.DecodeError](err); ok {
				walk(errors.Unwrap(err)) // "decoding failed due to the following error(s)"
				return
			}
			probs = append(probs, problem{err: err})
		}
	}
	walk(err)
	return probs
}

// typeProblem rewrites a value of the wrong type as what the operator
// wrote and what to write instead; other errors are returned as they are.
func typeProblem(key string, err error) problem {
	var (
		t     reflect.Type
		value any
	)
	if e, ok := errors.AsType[*mapstructure.ParseError](err); ok {
		t, value = e.Expected.Type(), e.Value
	} else if e, ok := errors.AsType[*mapstructure.UnconvertibleTypeError](err); ok {
		t, value = e.Expected.Type(), e.Value
	} else {
		switch k := lookupKey(key); {
		case k == nil || k.leaf:
			return problem{key: key, err: err}
		case k.list:
			return problem{key: key, err: errors.New("is not a list"), fix: "write one item per line, each starting with -"}
		default:
			return problem{key: key, err: errors.New("is not a mapping of keys"), fix: "write the keys of " + key + " indented below it"}
		}
	}
	var want string
	switch t.Kind() {
	case reflect.Bool:
		want = "true or false"
	case reflect.Int, reflect.Int64:
		want = "a whole number"
	case reflect.String:
		want = "a string"
	case reflect.Slice:
		want = "a list"
	case reflect.Struct:
		want = "a mapping of keys"
	default:
		return problem{key: key, err: err}
	}
	var got string
	switch reflect.ValueOf(value).Kind() {
	case reflect.String:
		got = fmt.Sprintf("%q", value)
	case reflect.Map:
		got = "a mapping"
	case reflect.Slice:
		got = "a list"
	default:
		got = fmt.Sprint(value)
	}
	return problem{key: key, err: fmt.Errorf("%s is not %s", got, want), fix: "write " + want}
}

// lookupKey returns the schema's key, nil if it has none.
func lookupKey(key string) *schemaKey {
	norm := indexRE.ReplaceAllString(key, "[]")
	for i := range schemaKeys {
		if schemaKeys[i].path == norm {
			return &schemaKeys[i]
		}
	}
	return nil
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// schemaKey is a key of the schema: a section, a list of sections or a
// leaf with its default. The items of routes are "routes[]", their keys
// "routes[].path".
type schemaKey struct {
	path  string
	leaf  bool
	list  bool
	value any
}

// schemaKeys lists every key, read from the mapstructure tags of Config
// and the values of Default, so that no key can lack a default.
var schemaKeys = collectKeys("", reflect.ValueOf(*Default()), nil)

func collectKeys(prefix string, v reflect.Value, keys []schemaKey) []schemaKey {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if !f.IsExported() || tag == "" {
			continue
		}
		path := joinKey(prefix, tag)
		switch {
		case f.Type.Kind() == reflect.Struct:
			keys = append(keys, schemaKey{path: path})
			keys = collectKeys(path, v.Field(i), keys)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			keys = append(keys, schemaKey{path: path, list: true}, schemaKey{path: path + "[]"})
			keys = collectKeys(path+"[]", reflect.New(f.Type.Elem()).Elem(), keys)
		default:
			keys = append(keys, schemaKey{path: path, leaf: true, value: v.Field(i).Interface()})
		}
	}
	return keys
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// unknownKey is the problem of key, which the schema lacks, with the
// nearest known key as the fix.
func unknownKey(key string) problem {
	fix := "remove it, or correct its name"
	if s := suggest(key); s != "" {
		fix = "did you mean " + s + "?"
	}
	return problem{key: key, err: errUnknownKey, fix: fix}
}

// suggest returns the known key that key is most likely a misspelling or a
// misplacement of, or "".
func suggest(key string) string {
	parent, name := splitKey(key)
	norm := indexRE.ReplaceAllString(parent, "[]")
	best, bestDist := "", 0
	var elsewhere []string
	for _, k := range schemaKeys {
		kParent, kName := splitKey(k.path)
		switch {
		case kParent == norm:
			// A typo of a sibling.
			d := levenshtein(name, kName)
			if d <= max(1, len(kName)/4) && (best == "" || d < bestDist) {
				best, bestDist = joinKey(parent, kName), d
			}
		case kName == name && !strings.Contains(k.path, "[]"):
			elsewhere = append(elsewhere, k.path)
		}
	}
	if best == "" && len(elsewhere) == 1 {
		// The right name in the wrong section.
		best = elsewhere[0]
	}
	return best
}

func splitKey(key string) (parent, name string) {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// levenshtein returns the edit distance of a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
