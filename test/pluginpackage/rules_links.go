package pluginpackage

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// The validator's brokenlinks pattern for a Markdown link or image, [text](target).
var reMarkdownLink = regexp.MustCompile(`\[.+?\]\((.+?)\)`)

// Targets the validator's pattern does not see but a Markdown renderer follows: reference
// definitions ([id]: target) and HTML src/href attributes.
var (
	reLinkDefinition = regexp.MustCompile(`(?m)^ {0,3}\[[^\]\n]+\]:[ \t]*<?([^\s>]+)`)
	reHTMLLink       = regexp.MustCompile(`(?i)<(?:a|img|source|video|audio|iframe)\b[^>]*?\s(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
)

// relativeTarget says whether a link target is relative the way the validator's brokenlinks judges
// it: anything but an http(s) URL, a mailto: link or a #fragment of the same page.
func relativeTarget(target string) bool {
	return !(strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") ||
		strings.HasPrefix(target, "https://") || strings.HasPrefix(target, "http://"))
}

// markdownRelativeLinks returns, in order, the relative targets of [text](target) links and images,
// exactly as the validator's brokenlinks finds them (an optional "title" after the target dropped).
func markdownRelativeLinks(md []byte) []string {
	var out []string
	for _, m := range reMarkdownLink.FindAllSubmatch(md, -1) {
		target := string(m[1])
		if strings.HasPrefix(target, "#") {
			continue
		}
		if f := strings.Fields(target); len(f) > 0 {
			target = f[0]
		}
		if relativeTarget(target) {
			out = append(out, target)
		}
	}
	return out
}

// otherRelativeLinks returns the relative targets of reference definitions and HTML links and images.
func otherRelativeLinks(md []byte) []string {
	var out []string
	for _, m := range reLinkDefinition.FindAllSubmatch(md, -1) {
		if t := string(m[1]); relativeTarget(t) {
			out = append(out, t)
		}
	}
	for _, m := range reHTMLLink.FindAllSubmatch(md, -1) {
		t := string(m[1]) + string(m[2]) + string(m[3]) // one of the three quoting forms matched
		if relativeTarget(t) {
			out = append(out, t)
		}
	}
	return out
}

// brokenlinks, offline part: the top-level README.md has no relative link or image. Grafana's catalog
// and its plugin page render the README away from the package, where a relative target resolves to
// nothing. The validator's broken-link rule (warning) fetches every absolute URL and is not mirrored.
func (c *checker) checkBrokenLinks() {
	if !c.mainOK || c.readme == nil {
		return
	}
	c.ran("brokenlinks")
	for _, t := range markdownRelativeLinks(c.readme) {
		c.add("brokenlinks", "relative-link", SeverityError,
			fmt.Sprintf("README.md: convert relative link to absolute: %s (in %s)", t, c.inRoot("README.md")),
			"README.md contains relative links. These links will not work on the Grafana plugin's catalog. "+
				"Convert them to absolute links (starting with https://).")
	}
}

// vigil-links: no Markdown file in the package links relatively. The validator reads only the
// top-level README.md and only [text](target) links; Grafana also shows the nested plugins' READMEs
// and the CHANGELOG, and renders reference links and HTML.
func (c *checker) checkMarkdownLinks() {
	if !c.rootOK {
		return
	}
	c.ran("vigil-links")
	topReadme := c.inRoot("README.md")
	for _, f := range c.arc.under(c.root) {
		ext := strings.ToLower(path.Ext(f))
		if ext != ".md" && ext != ".markdown" {
			continue
		}
		b, err := c.arc.read(f)
		if err != nil {
			continue
		}
		var targets []string
		if f != topReadme || !c.mainOK || c.readme == nil { // else brokenlinks reports them
			targets = markdownRelativeLinks(b)
		}
		targets = append(targets, otherRelativeLinks(b)...)
		for _, t := range targets {
			c.add("vigil-links", "relative-link", SeverityError,
				fmt.Sprintf("%s: convert relative link to absolute: %s", f, t),
				"Grafana renders this file away from the package: link with an absolute https:// URL.")
		}
	}
}
