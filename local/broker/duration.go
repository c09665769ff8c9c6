package broker

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
)

var isoDurationRE = regexp.MustCompile(`^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// MaxDeliveryDuration bounds a delivery spec's backoffDelay and timeout,
// and every backoff computed from them: a day. Longer values are refused,
// so that no arithmetic on them overflows.
const MaxDeliveryDuration = 24 * time.Hour

// ParseISODuration parses the ISO-8601 durations Knative's delivery spec
// uses (PT0.2S, PT10S, P1DT2H). Years and months have no fixed length and
// are refused, and so is a duration too long for time.Duration (about 292
// years).
func ParseISODuration(s string) (time.Duration, error) {
	m := isoDurationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || s == "PT" || (len(s) > 0 && s[len(s)-1] == 'T') {
		return 0, fmt.Errorf("%q is not an ISO-8601 duration such as PT0.2S or PT1M (years and months are not supported)", s)
	}
	tooLong := fmt.Errorf("%q is too long a duration", s)
	var d time.Duration
	units := []time.Duration{7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute}
	for i, u := range units {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.ParseInt(m[i+1], 10, 64)
		if err != nil || n > int64(math.MaxInt64/u) {
			return 0, tooLong
		}
		if d += time.Duration(n) * u; d < 0 {
			return 0, tooLong
		}
	}
	if m[5] != "" {
		f, err := strconv.ParseFloat(m[5], 64)
		ns := f * float64(time.Second)
		if err != nil || ns >= math.MaxInt64 {
			return 0, tooLong
		}
		if d += time.Duration(ns); d < 0 {
			return 0, tooLong
		}
	}
	return d, nil
}
