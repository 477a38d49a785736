// Package pluginpackage checks a packaged Vigil plugin archive
// (vigil-cdp-app-<version>.zip) against the offline rules that Grafana's
// plugin validator applies before a plugin can be published.
//
// Each diagnostic carries the name of the validator analyzer whose rule it
// mirrors, the rule name and the same severity, so a failure here reads the
// same as a failure from the validator. Rules that exist only for Vigil are
// reported under analyzers whose name starts with "vigil-".
// analyzers.txt lists what is mirrored and what is not.
package pluginpackage

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a diagnostic, using the validator's vocabulary.
type Severity string

const (
	SeverityError          Severity = "error"
	SeverityWarning        Severity = "warning"
	SeverityRecommendation Severity = "recommendation"
)

// Diagnostic is one finding about the archive.
type Diagnostic struct {
	// Analyzer is the validator analyzer the rule mirrors (or a vigil-* name).
	Analyzer string `json:"analyzer"`
	// Rule is the rule name inside the analyzer.
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Title says what is wrong and where.
	Title string `json:"title"`
	// Detail explains how to fix it.
	Detail string `json:"detail,omitempty"`
}

// String renders the diagnostic as "SEVERITY analyzer: title".
func (d Diagnostic) String() string {
	return fmt.Sprintf("%s %s: %s", strings.ToUpper(string(d.Severity)), d.Analyzer, d.Title)
}

// Report is the result of checking one archive.
type Report struct {
	Archive string `json:"archive"`
	// PluginID is the id read from the top-level plugin.json, if any.
	PluginID string `json:"pluginId,omitempty"`
	// Analyzers lists, in order, the analyzers that ran.
	Analyzers []string `json:"analyzers"`
	// Skipped lists analyzers that did not run and why (for example because
	// no source directory was given).
	Skipped     []SkippedAnalyzer `json:"skipped,omitempty"`
	Diagnostics []Diagnostic      `json:"diagnostics"`
}

// SkippedAnalyzer records an analyzer that was not applied.
type SkippedAnalyzer struct {
	Analyzer string `json:"analyzer"`
	Reason   string `json:"reason"`
}

// Errors returns the error-severity diagnostics.
func (r Report) Errors() []Diagnostic { return r.bySeverity(SeverityError) }

// Warnings returns the warning-severity diagnostics.
func (r Report) Warnings() []Diagnostic { return r.bySeverity(SeverityWarning) }

func (r Report) bySeverity(s Severity) []Diagnostic {
	var out []Diagnostic
	for _, d := range r.Diagnostics {
		if d.Severity == s {
			out = append(out, d)
		}
	}
	return out
}

// ByAnalyzer returns the diagnostics reported under the given analyzer.
func (r Report) ByAnalyzer(name string) []Diagnostic {
	var out []Diagnostic
	for _, d := range r.Diagnostics {
		if d.Analyzer == name {
			out = append(out, d)
		}
	}
	return out
}

// Options tunes a check.
type Options struct {
	// SourceDir is the plugin source checkout (the directory holding
	// package.json). When set, the analyzers that the validator runs against
	// -sourceCodeUri are applied too: sourcecode, packagejson, legacybuilder,
	// buildtools, go-manifest and jsMap.
	SourceDir string
	// Checksum is an MD5 or SHA1 hex digest of the archive, as passed to the
	// validator's -checksum flag. URLs are not fetched.
	Checksum string
	// TrackingHosts replaces the built-in list of tracking hosts that the
	// trackingscripts rule looks for in module.js URLs.
	TrackingHosts []string
}

// Check applies every mirrored rule to the archive at zipPath.
func Check(zipPath string) Report {
	return CheckWithOptions(zipPath, Options{})
}

// CheckWithOptions is Check with source directory and checksum settings.
func CheckWithOptions(zipPath string, opts Options) Report {
	c := &checker{
		zipPath: zipPath,
		opts:    opts,
		rep:     Report{Archive: zipPath, Analyzers: []string{}, Diagnostics: []Diagnostic{}},
	}
	c.run()
	return c.rep
}

type checker struct {
	zipPath string
	opts    Options
	rep     Report

	arc      *archive
	root     string // plugin root inside the archive ("" when the archive analyzer failed)
	rootOK   bool
	main     *metadata
	mainOK   bool
	nested   map[string]*metadata // key: plugin.json path relative to root
	nestedOK bool
	modules  map[string][]byte // module.js path (relative to root) -> content
	readme   []byte
}

func (c *checker) add(analyzer, rule string, sev Severity, title, detail string) {
	c.rep.Diagnostics = append(c.rep.Diagnostics, Diagnostic{
		Analyzer: analyzer, Rule: rule, Severity: sev, Title: title, Detail: detail,
	})
}

func (c *checker) ran(name string) { c.rep.Analyzers = append(c.rep.Analyzers, name) }

func (c *checker) skip(name, reason string) {
	c.rep.Skipped = append(c.rep.Skipped, SkippedAnalyzer{Analyzer: name, Reason: reason})
}

func (c *checker) run() {
	arc, err := openArchive(c.zipPath)
	if err != nil {
		c.ran("archive")
		c.add("archive", "archive-unreadable", SeverityError,
			fmt.Sprintf("cannot read plugin archive %s: %v", c.zipPath, err),
			"The validator cannot extract this file. Build the package with `make package`.")
		return
	}
	c.arc = arc

	// Validator analyzers, in dependency order.
	c.checkArchive()
	c.checkMetadata()
	c.checkNestedMetadata()
	c.checkArchiveName()
	c.checkBackendBinary()
	c.checkBackendDebug()
	c.checkBinaryPermissions()
	c.checkChangelog()
	c.checkSponsorshipLink()
	c.checkChecksum()
	c.checkCircularDependencies()
	c.checkDiscoverability()
	c.checkGrafanaDependency()
	c.checkIncludesNested()
	c.checkReadme()
	c.checkJargon()
	c.checkTemplateReadme()
	c.checkBrokenLinks()
	c.checkLicense()
	c.checkLogos()
	c.checkManifest()
	c.checkMetadataPaths()
	c.checkModuleJS()
	c.checkTrackingScripts()
	c.checkPluginName()
	c.checkRestrictiveDep()
	c.checkScreenshots()
	c.checkTypeSuffix()
	c.checkUnsafeSVG()
	c.checkVersion()
	c.checkSource()

	// Vigil-only rules.
	c.checkHygiene()
	c.checkTemplates()
	c.checkVersionConsistency()
	c.checkIncludesExist()
	c.checkBackendArchitectures()
	c.checkMarkdownLinks()
	c.checkNestedGoManifest()
}

// sortedKeys returns the keys of the nested metadata map, main plugin.json first.
func (c *checker) sortedKeys() []string {
	keys := make([]string, 0, len(c.nested))
	for k := range c.nested {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i] == "plugin.json" {
			return keys[j] != "plugin.json"
		}
		if keys[j] == "plugin.json" {
			return false
		}
		return keys[i] < keys[j]
	})
	return keys
}

// inRoot joins a root-relative path onto the plugin root inside the archive.
func (c *checker) inRoot(rel string) string { return joinPath(c.root, rel) }
