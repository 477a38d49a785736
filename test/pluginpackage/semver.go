package pluginpackage

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// A plugin version: numeric segments, optional pre-release and build metadata.
var reVersion = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*(-?[0-9A-Za-z][0-9A-Za-z.\-~]*)?(\+[0-9A-Za-z.\-~]+)?$`)

func validVersion(v string) bool { return reVersion.MatchString(v) }

var (
	reOpSpace = regexp.MustCompile(`(>=|<=|!=|=>|=<|~>|>|<|=|~|\^)\s+`)
	reTerm    = regexp.MustCompile(`^(!=|>=|<=|=>|=<|~>|>|<|=|~|\^)?v?(x|X|\*|[0-9]+)(\.(x|X|\*|[0-9]+)){0,2}(-[0-9A-Za-z.\-]+)?(\+[0-9A-Za-z.\-]+)?$`)
	reHyphen  = regexp.MustCompile(`^\s*(\S+)\s+-\s+(\S+)\s*$`)
	reBareVer = regexp.MustCompile(`^v?(x|X|\*|[0-9]+)(\.(x|X|\*|[0-9]+)){0,2}(-[0-9A-Za-z.\-]+)?(\+[0-9A-Za-z.\-]+)?$`)
)

// validConstraint accepts the version constraint grammar Grafana uses for
// grafanaDependency: comparisons (>=, <, ~, ^, ...), wildcards (11.x),
// hyphen ranges (10.4 - 11.2), AND with commas or spaces, OR with ||.
func validConstraint(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty constraint")
	}
	for _, alt := range strings.Split(s, "||") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			return errors.New("empty alternative around ||")
		}
		if m := reHyphen.FindStringSubmatch(alt); m != nil {
			if !reBareVer.MatchString(m[1]) || !reBareVer.MatchString(m[2]) {
				return fmt.Errorf("bad range %q", alt)
			}
			continue
		}
		alt = reOpSpace.ReplaceAllString(alt, "$1")
		terms := strings.FieldsFunc(alt, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(terms) == 0 {
			return fmt.Errorf("empty term in %q", alt)
		}
		for _, t := range terms {
			if !reTerm.MatchString(t) {
				return fmt.Errorf("bad term %q", t)
			}
		}
	}
	return nil
}
