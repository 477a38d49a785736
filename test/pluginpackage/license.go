package pluginpackage

import (
	"fmt"
	"regexp"
	"strings"
)

// licenseKinds recognises the license families the validator accepts
// (0BSD, BSD-*, MIT*, Apache-2.0, LGPL-3*, GPL-3.0*, AGPL-3.0*) from phrases
// that appear in their standard texts. Both phrases of an entry must appear.
var licenseKinds = []struct {
	name    string
	phrases []string
}{
	{"AGPL-3.0", []string{"gnu affero general public license", "version 3"}},
	{"LGPL-3.0", []string{"gnu lesser general public license", "version 3"}},
	{"GPL-3.0", []string{"gnu general public license", "version 3"}},
	{"Apache-2.0", []string{"apache license", "version 2.0"}},
	{"MIT", []string{"permission is hereby granted, free of charge", "the software is provided \"as is\""}},
	{"0BSD", []string{"permission to use, copy, modify, and/or distribute this software for any purpose with or without fee is hereby granted", "the software is provided \"as is\""}},
	{"BSD", []string{"redistribution and use in source and binary forms", "are permitted provided that the following conditions are met"}},
}

var reSpaces = regexp.MustCompile(`\s+`)

// detectLicense returns the accepted license family the text matches, or "".
func detectLicense(text string) string {
	norm := strings.ToLower(reSpaces.ReplaceAllString(text, " "))
	for _, k := range licenseKinds {
		all := true
		for _, p := range k.phrases {
			if !strings.Contains(norm, p) {
				all = false
				break
			}
		}
		if all {
			return k.name
		}
	}
	return ""
}

// license: LICENSE exists, is an accepted open source license and is filled in.
func (c *checker) checkLicense() {
	if !c.rootOK {
		return
	}
	c.ran("license")
	p := c.inRoot("LICENSE")
	b, err := c.arc.read(p)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		c.add("license", "license-not-provided", SeverityError,
			fmt.Sprintf("LICENSE file not found: %s is missing or empty", p),
			"Include the LICENSE file in the package.")
		return
	}
	if detectLicense(string(b)) == "" {
		c.add("license", "license-not-valid", SeverityError,
			fmt.Sprintf("valid license not found: %s is not recognised as BSD, MIT, Apache-2.0, LGPL-3.0, GPL-3.0 or AGPL-3.0", p),
			"See https://grafana.com/licensing/.")
		return
	}
	s := string(b)
	if strings.Contains(s, "{name of copyright owner}") || strings.Contains(s, "{yyyy}") {
		c.add("license", "license-with-generic-text", SeverityWarning,
			fmt.Sprintf("license file %s contains generic template text ({name of copyright owner} or {yyyy})", p), "")
	}
}

// defaultTrackingHosts are well-known analytics and tracking hosts. The
// validator uses a much larger block list; pass Options.TrackingHosts (or
// -tracking-list on the command line) to check against it.
var defaultTrackingHosts = []string{
	"google-analytics.com",
	"googletagmanager.com",
	"googleadservices.com",
	"doubleclick.net",
	"googlesyndication.com",
	"hotjar.com",
	"hotjar.io",
	"mixpanel.com",
	"cdn.segment.com",
	"api.segment.io",
	"amplitude.com",
	"fullstory.com",
	"heapanalytics.com",
	"clarity.ms",
	"connect.facebook.net",
	"static.ads-twitter.com",
	"snap.licdn.com",
	"matomo.cloud",
	"quantserve.com",
	"scorecardresearch.com",
	"newrelic.com",
	"nr-data.net",
	"mouseflow.com",
	"crazyegg.com",
	"luckyorange.com",
	"logrocket.com",
	"pendo.io",
	"posthog.com",
}
