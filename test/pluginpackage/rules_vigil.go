package pluginpackage

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// vigil-hygiene: nothing in the zip may escape the extraction folder, be a
// symlink, be stored twice, or be version-control data.
func (c *checker) checkHygiene() {
	c.ran("vigil-hygiene")
	seen := map[string]bool{}
	vcsReported := map[string]bool{}
	for i, name := range c.arc.rawNames {
		if why := unsafeEntryName(name); why != "" {
			c.add("vigil-hygiene", "unsafe-path", SeverityError,
				fmt.Sprintf("zip entry %q %s", name, why),
				"The validator refuses to extract archives with such entries.")
			continue
		}
		if c.arc.rawEntries[i].Mode()&fs.ModeSymlink != 0 {
			c.add("vigil-hygiene", "symlink", SeverityError,
				fmt.Sprintf("zip entry %s is a symlink", name),
				"Package real files; symlinks are extracted as plain files holding the link target.")
		}
		clean := strings.TrimSuffix(path.Clean(name), "/")
		if seen[clean] && !c.arc.rawEntries[i].FileInfo().IsDir() {
			c.add("vigil-hygiene", "duplicate-entry", SeverityError,
				fmt.Sprintf("zip entry %s is stored more than once", clean), "")
		}
		seen[clean] = true
		parts := strings.Split(clean, "/")
		for j, part := range parts {
			if part == ".git" || part == ".svn" || part == ".hg" {
				dir := strings.Join(parts[:j+1], "/")
				if !vcsReported[dir] {
					vcsReported[dir] = true
					c.add("vigil-hygiene", "vcs-data", SeverityError,
						fmt.Sprintf("archive contains version-control data %s", dir), "")
				}
				break
			}
		}
	}
}

// Placeholders the frontend build must replace.
var reTemplate = regexp.MustCompile(`%(VERSION|TODAY|PLUGIN_ID|PLUGIN_NAME)%`)

var templateExts = map[string]bool{".json": true, ".md": true, ".txt": true, ".yaml": true, ".yml": true, ".html": true}

// vigil-templates: build placeholders such as %VERSION% and %TODAY% were replaced.
func (c *checker) checkTemplates() {
	if !c.rootOK {
		return
	}
	c.ran("vigil-templates")
	for _, f := range c.arc.under(c.root) {
		if !templateExts[strings.ToLower(path.Ext(f))] {
			continue
		}
		b, err := c.arc.read(f)
		if err != nil {
			continue
		}
		found := map[string]bool{}
		var list []string
		for _, m := range reTemplate.FindAll(b, -1) {
			if !found[string(m)] {
				found[string(m)] = true
				list = append(list, string(m))
			}
		}
		if len(list) > 0 {
			line := 1 + bytes.Count(b[:reTemplate.FindIndex(b)[0]], []byte("\n"))
			c.add("vigil-templates", "unreplaced-template", SeverityError,
				fmt.Sprintf("%s:%d still contains build placeholder(s) %s", f, line, strings.Join(list, ", ")),
				"The frontend build replaces these; package the build output, not src/.")
		}
	}
}

var reZipVersion = regexp.MustCompile(`^(.+?)-(v?[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+\-]*)\.zip$`)

// vigil-version: nested plugin.json versions and the zip file name agree with
// the top-level plugin.json version.
func (c *checker) checkVersionConsistency() {
	if !c.mainOK {
		return
	}
	c.ran("vigil-version")
	want := c.main.Info.Version
	if c.nestedOK {
		for _, k := range c.sortedKeys() {
			if k == "plugin.json" {
				continue
			}
			if got := c.nested[k].Info.Version; got != want {
				c.add("vigil-version", "version-mismatch", SeverityError,
					fmt.Sprintf("%s has info.version %q but %s has %q", c.inRoot(k), got, c.inRoot("plugin.json"), want), "")
			}
		}
	}
	base := filepath.Base(c.zipPath)
	if m := reZipVersion.FindStringSubmatch(base); m != nil && m[1] == c.main.ID && m[2] != want {
		c.add("vigil-version", "archive-name-version", SeverityError,
			fmt.Sprintf("archive file %s is named for version %s but plugin.json says %q", base, m[2], want), "")
	}
}

// vigil-includes: includes that point at files (nested plugins, dashboards) exist.
func (c *checker) checkIncludesExist() {
	if !c.nestedOK {
		return
	}
	c.ran("vigil-includes")
	for _, k := range c.sortedKeys() {
		for _, inc := range c.nested[k].Includes {
			if inc.Path == "" || inc.Type == "page" || !strings.HasSuffix(inc.Path, ".json") {
				continue
			}
			full := joinPath(c.root, dirOf(k), strings.TrimPrefix(inc.Path, "./"))
			if strings.HasPrefix(inc.Path, "/") || !c.arc.isFile(full) {
				c.add("vigil-includes", "include-path-missing", SeverityError,
					fmt.Sprintf("%s includes %s %q but %s is not in the archive", c.inRoot(k), inc.Type, inc.Path, full), "")
			}
		}
	}
}

// vigil-go-manifest: every nested backend plugin ships the go_plugin_build_manifest that the plugin
// SDK's build package (Magefile.go) writes beside its executables; with -source it must list the
// source's Go files with their sha256, as go-manifest requires of a backend app. The validator
// looks only at the top-level folder, which for an app with a nested backend datasource has none.
func (c *checker) checkNestedGoManifest() {
	if !c.rootOK || !c.nestedOK {
		return
	}
	c.ran("vigil-go-manifest")
	for _, k := range c.sortedKeys() {
		m := c.nested[k]
		if k == "plugin.json" || !m.Backend || m.Executable == "" {
			continue
		}
		mp := c.inRoot(joinPath(dirOf(k), "go_plugin_build_manifest"))
		if _, err := c.parseGoManifest(mp); err != nil {
			c.add("vigil-go-manifest", "no-go-manifest", SeverityError,
				fmt.Sprintf("could not find or parse Go manifest %s for executable %q declared in %s: %v",
					mp, m.Executable, c.inRoot(k), err),
				"Build the backend with `make backend` (Magefile.go and the plugin SDK's build package write it).")
			continue
		}
		if c.opts.SourceDir != "" {
			c.verifyGoManifest("vigil-go-manifest", mp, c.opts.SourceDir)
		}
	}
}
