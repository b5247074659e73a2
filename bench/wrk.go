package bench

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// WrkResult is what wrk --latency printed.
type WrkResult struct {
	RequestsPerSec float64
	// P50 and P99 are latency percentiles in milliseconds.
	P50, P99 float64
	// Requests is the number of requests completed.
	Requests int64
	// Errors counts non-2xx/3xx responses and socket errors (connect,
	// read, write, timeout).
	Errors int64
}

// ParseWrk reads the output of `wrk --latency`.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRate, haveP50, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: Requests/sec %q: %w", f[1], err)
			}
			r.RequestsPerSec, haveRate = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			ms, err := wrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50, haveP50 = ms, true
			} else {
				r.P99, haveP99 = ms, true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: request count %q: %w", f[0], err)
			}
			r.Requests = n
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.ParseInt(f[4], 10, 64)
			r.Errors += n
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				r.Errors += n
			}
		}
	}
	if !haveRate || !haveP50 || !haveP99 {
		return r, fmt.Errorf("wrk: no Requests/sec or latency distribution in its output (was --latency given?):\n%s", out)
	}
	return r, nil
}

// wrkDuration converts wrk's "812.00us", "1.23ms", "2.01s" or "1.02m" to
// milliseconds.
func wrkDuration(s string) (float64, error) {
	units := []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				break
			}
			return f * u.ms, nil
		}
	}
	return 0, fmt.Errorf("wrk: latency %q: unknown format", s)
}
