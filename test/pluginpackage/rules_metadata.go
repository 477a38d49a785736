package pluginpackage

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// metadata holds the plugin.json fields the rules look at.
type metadata struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Executable string `json:"executable"`
	Backend    bool   `json:"backend"`
	Alerting   bool   `json:"alerting"`
	Info       struct {
		Version     string   `json:"version"`
		Description string   `json:"description"`
		Keywords    []string `json:"keywords"`
		Logos       struct {
			Small string `json:"small"`
			Large string `json:"large"`
		} `json:"logos"`
		Screenshots []struct {
			Name string `json:"name"`
			Path string `json:"path"`
		} `json:"screenshots"`
		Links []struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"links"`
	} `json:"info"`
	Includes []struct {
		Type string `json:"type"`
		Name string `json:"name"`
		Path string `json:"path"`
	} `json:"includes"`
	Dependencies struct {
		GrafanaDependency string `json:"grafanaDependency"`
		Plugins           []struct {
			ID string `json:"id"`
		} `json:"plugins"`
	} `json:"dependencies"`
}

const docPackage = "See https://grafana.com/developers/plugin-tools/publish-a-plugin/package-a-plugin."

// archive: the zip holds exactly one folder; a dist/ folder inside it is refused.
func (c *checker) checkArchive() {
	c.ran("archive")
	if c.arc.empty() {
		c.add("archive", "empty-archive", SeverityError, "archive is empty", "")
		return
	}
	top := c.arc.topLevel()
	if len(top) != 1 {
		c.add("archive", "more-than-one-dir", SeverityError,
			fmt.Sprintf("archive has %d top-level entries (%s); expected one folder named after the plugin id", len(top), strings.Join(top, ", ")),
			docPackage)
		return
	}
	if !c.arc.isDir(top[0]) {
		c.add("archive", "no-root-dir", SeverityError,
			fmt.Sprintf("archive root holds the file %s instead of a folder", top[0]),
			"Put every file under a single folder named after the plugin id. "+docPackage)
		return
	}
	c.root, c.rootOK = top[0], true
	if c.arc.isDir(joinPath(top[0], "dist")) {
		c.add("archive", "dist", SeverityError,
			fmt.Sprintf("archive contains %s/dist; dist should be renamed to the plugin id and moved to the root", top[0]),
			docPackage)
		c.root = joinPath(top[0], "dist")
	}
}

// metadata: the top-level plugin.json exists.
func (c *checker) checkMetadata() {
	if !c.rootOK {
		return
	}
	c.ran("metadata")
	p := c.inRoot("plugin.json")
	b, err := c.arc.read(p)
	if err != nil {
		c.add("metadata", "missing-metadata", SeverityError,
			fmt.Sprintf("missing plugin.json: %s not found in archive", p),
			"A plugin.json file describes the plugin. "+docPackage)
		return
	}
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return // reported by nestedmetadata
	}
	c.main, c.mainOK = &m, true
	c.rep.PluginID = m.ID
}

// nestedmetadata: every plugin.json in the archive parses.
func (c *checker) checkNestedMetadata() {
	if !c.rootOK {
		return
	}
	c.ran("nestedmetadata")
	files := c.arc.named(c.root, "plugin.json")
	if len(files) == 0 {
		c.add("nestedmetadata", "missing-metadata", SeverityError,
			fmt.Sprintf("missing plugin.json: no plugin.json anywhere under %s/", c.root),
			"A plugin.json file is required to describe the plugin.")
	}
	nested := map[string]*metadata{}
	for _, f := range files {
		b, err := c.arc.read(f)
		if err != nil {
			c.add("nestedmetadata", "error-reading-metadata", SeverityError,
				fmt.Sprintf("cannot read %s: %v", f, err), "")
			return
		}
		var m metadata
		if err := json.Unmarshal(b, &m); err != nil {
			c.add("nestedmetadata", "invalid-metadata", SeverityError,
				fmt.Sprintf("invalid plugin.json: %s does not parse: %v", f, err),
				"See https://grafana.com/developers/plugin-tools/reference/plugin-json.")
			return
		}
		nested[relTo(c.root, f)] = &m
	}
	c.nested, c.nestedOK = nested, true
}

// archivename: the root folder is named after the plugin id.
func (c *checker) checkArchiveName() {
	if !c.rootOK || !c.mainOK {
		return
	}
	c.ran("archivename")
	base := path.Base(c.root)
	if base == "dist" {
		c.add("archivename", "no-ident-root-dir", SeverityError,
			fmt.Sprintf("archive root folder is named dist; it should be named %s", c.main.ID), docPackage)
	}
	if c.main.ID != "" && base != c.main.ID {
		c.add("archivename", "no-ident-root-dir", SeverityError,
			fmt.Sprintf("archive root folder is %s; it should be named after the plugin id %s", base, c.main.ID), docPackage)
	}
}

// includesnested: nested plugins are declared in the app's includes with the right type.
func (c *checker) checkIncludesNested() {
	if !c.nestedOK {
		return
	}
	c.ran("includesnested")
	if len(c.nested) <= 1 {
		return
	}
	top, ok := c.nested["plugin.json"]
	if !ok {
		return
	}
	if top.Type != "app" {
		c.add("includesnested", "nested-plugin-id-in-non-app", SeverityError,
			fmt.Sprintf("nested plugins found but the top-level plugin.json has type %q; only app plugins may nest plugins", top.Type), "")
		return
	}
	for _, key := range c.sortedKeys() {
		if key == "plugin.json" {
			continue
		}
		found := false
		for _, inc := range top.Includes {
			if inc.Path != key {
				continue
			}
			found = true
			switch {
			case inc.Type == "":
				c.add("includesnested", "nested-plugin-missing-type", SeverityError,
					fmt.Sprintf("nested plugin %s is included in plugin.json without a type", key), "")
			case inc.Type != c.nested[key].Type:
				c.add("includesnested", "nested-plugin-type-missmatch", SeverityError,
					fmt.Sprintf("nested plugin %s is included as type %s but its plugin.json says %s", key, inc.Type, c.nested[key].Type), "")
			}
		}
		if !found {
			c.add("includesnested", "nested-plugins-not-declared", SeverityError,
				fmt.Sprintf("nested plugin %s is not declared in the includes of plugin.json", key),
				"Add {\"type\": ..., \"path\": \""+key+"\"} to includes.")
		}
	}
}

// circulardependencies: no plugin depends on itself or on a nested plugin that depends back.
// Dependencies on plugins outside the archive need grafana.com and are not followed.
func (c *checker) checkCircularDependencies() {
	if !c.nestedOK {
		return
	}
	c.ran("circulardependencies")
	byID := map[string]*metadata{}
	for _, k := range c.sortedKeys() {
		byID[c.nested[k].ID] = c.nested[k]
	}
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		for _, dep := range m.Dependencies.Plugins {
			if dep.ID == m.ID {
				c.add("circulardependencies", "circular-dependency", SeverityError,
					fmt.Sprintf("circular dependency detected: %s -> %s (%s depends on itself)", m.ID, m.ID, k), "")
				continue
			}
			other, ok := byID[dep.ID]
			if !ok {
				continue
			}
			for _, back := range other.Dependencies.Plugins {
				if back.ID == m.ID {
					c.add("circulardependencies", "circular-dependency", SeverityError,
						fmt.Sprintf("circular dependency detected: %s -> %s", m.ID, dep.ID), "")
				}
			}
		}
	}
}

// logos: every plugin.json names a small and a large logo.
func (c *checker) checkLogos() {
	if !c.nestedOK {
		return
	}
	c.ran("logos")
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		if strings.TrimSpace(m.Info.Logos.Small) == "" {
			c.add("logos", "logos", SeverityError, fmt.Sprintf("plugin.json: empty small logo path in %s", c.inRoot(k)), "")
		}
		if strings.TrimSpace(m.Info.Logos.Large) == "" {
			c.add("logos", "logos", SeverityError, fmt.Sprintf("plugin.json: empty large logo path in %s", c.inRoot(k)), "")
		}
	}
}

// metadatapaths: logo and screenshot paths are relative and exist.
func (c *checker) checkMetadataPaths() {
	if !c.nestedOK {
		return
	}
	c.ran("metadatapaths")
	type ref struct{ kind, p, pluginJSON string }
	var refs []ref
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		for _, s := range m.Info.Screenshots {
			refs = append(refs, ref{"screenshot", s.Path, k})
		}
		refs = append(refs, ref{"small logo", m.Info.Logos.Small, k}, ref{"large logo", m.Info.Logos.Large, k})
	}
	for _, r := range refs {
		where := c.inRoot(r.pluginJSON)
		u, err := url.Parse(r.p)
		if err != nil {
			c.add("metadatapaths", "invalid-path", SeverityError,
				fmt.Sprintf("plugin.json: invalid %s path %q in %s", r.kind, r.p, where), "")
			continue
		}
		if u.IsAbs() {
			c.add("metadatapaths", "path-relative-to-metadata", SeverityError,
				fmt.Sprintf("plugin.json: %s path %q in %s should be relative to plugin.json", r.kind, r.p, where),
				"Do not use absolute paths or URLs in plugin.json.")
			continue
		}
		if strings.HasPrefix(r.p, ".") || strings.HasPrefix(r.p, "/") {
			c.add("metadatapaths", "invalid-relative-path", SeverityError,
				fmt.Sprintf("plugin.json: %s path %q in %s should not start with '.' or '/'", r.kind, r.p, where),
				"Write img/logo.svg, not ./img/logo.svg.")
			continue
		}
		full := joinPath(c.root, dirOf(r.pluginJSON), r.p)
		if !c.arc.exists(full) {
			c.add("metadatapaths", "path-not-exists", SeverityError,
				fmt.Sprintf("plugin.json: %s path doesn't exist: %s (referenced from %s)", r.kind, full, where),
				"Only reference files that are included in the archive.")
		}
	}
}

// discoverability: description and keywords are set on the top-level plugin.json.
func (c *checker) checkDiscoverability() {
	if !c.mainOK {
		return
	}
	c.ran("discoverability")
	if c.main.Info.Description == "" {
		c.add("discoverability", "empty-description", SeverityWarning,
			fmt.Sprintf("plugin.json: description is empty in %s", c.inRoot("plugin.json")), "")
	}
	if len(c.main.Info.Keywords) == 0 {
		c.add("discoverability", "empty-keywords", SeverityWarning,
			fmt.Sprintf("plugin.json: keywords are empty in %s", c.inRoot("plugin.json")), "")
	}
}

// grafanadependency: dependencies.grafanaDependency is a valid version constraint.
func (c *checker) checkGrafanaDependency() {
	if !c.mainOK {
		return
	}
	c.ran("grafanadependency")
	dep := c.main.Dependencies.GrafanaDependency
	if err := validConstraint(dep); err != nil {
		c.add("grafanadependency", "invalid-grafana-dependency", SeverityError,
			fmt.Sprintf("plugin.json: dependencies.grafanaDependency has an invalid or empty version constraint %q (%v)", dep, err),
			"See https://grafana.com/developers/plugin-tools/reference/plugin-json#dependencies.")
	}
}

var (
	reMinorX  = regexp.MustCompile(`^[0-9]+\.[0-9]+\.x$`)
	reExactly = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
)

// restrictivedep: grafanaDependency does not pin a single release or minor.
func (c *checker) checkRestrictiveDep() {
	if !c.mainOK {
		return
	}
	c.ran("restrictivedep")
	dep := c.main.Dependencies.GrafanaDependency
	switch {
	case dep == "":
	case reMinorX.MatchString(dep):
		c.add("restrictivedep", "depends-on-patch-releases", SeverityWarning,
			fmt.Sprintf("plugin.json: grafanaDependency %q only targets patch releases of Grafana %s", dep, strings.TrimSuffix(dep, ".x")),
			"Use a range such as \">=11.0.0\".")
	case reExactly.MatchString(dep):
		c.add("restrictivedep", "depends-on-single-release", SeverityWarning,
			fmt.Sprintf("plugin.json: grafanaDependency %q only targets a single Grafana release", dep),
			"Use a range such as \">=11.0.0\".")
	}
}

// pluginname: name is human friendly; id has at least three dash-separated parts.
func (c *checker) checkPluginName() {
	if !c.mainOK {
		return
	}
	c.ran("pluginname")
	if c.main.ID != "" && c.main.Name != "" && c.main.ID == c.main.Name {
		c.add("pluginname", "human-friendly-name", SeverityError,
			fmt.Sprintf("plugin.json: plugin name %q equals the plugin id; use a human-friendly name", c.main.Name), "")
	}
	if len(strings.Split(c.main.ID, "-")) < 3 {
		c.add("pluginname", "invalid-id-format", SeverityWarning,
			fmt.Sprintf("plugin.json: plugin id %q should follow the format org-name-type", c.main.ID), "")
	}
}

// typesuffix: the top-level id ends with its type.
func (c *checker) checkTypeSuffix() {
	if !c.mainOK {
		return
	}
	c.ran("typesuffix")
	if c.main.Type == "" {
		return
	}
	parts := strings.Split(c.main.ID, "-")
	if parts[len(parts)-1] != c.main.Type {
		c.add("typesuffix", "plugin-type-suffix", SeverityError,
			fmt.Sprintf("plugin.json: plugin id %q should end with its type %q", c.main.ID, c.main.Type), "")
	}
}

// version: info.version parses as a version.
func (c *checker) checkVersion() {
	if !c.mainOK {
		return
	}
	c.ran("version")
	v := c.main.Info.Version
	if !validVersion(v) {
		c.add("version", "wrong-plugin-version", SeverityError,
			fmt.Sprintf("plugin version %q in %s is invalid", v, c.inRoot("plugin.json")),
			"Use a semver version (https://semver.org).")
	}
}

// sponsorshiplink: a sponsor link in info.links is recommended.
func (c *checker) checkSponsorshipLink() {
	if !c.mainOK {
		return
	}
	c.ran("sponsorshiplink")
	for _, l := range c.main.Info.Links {
		if strings.Contains(strings.ToLower(l.Name), "sponsor") {
			return
		}
	}
	c.add("sponsorshiplink", "sponsorshiplink", SeverityRecommendation,
		"plugin.json: no sponsorship link in info.links",
		"A link named \"sponsor\" is shown on the plugin details page.")
}
