package pluginpackage

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

// changelog: CHANGELOG.md exists and is not empty.
func (c *checker) checkChangelog() {
	if !c.rootOK {
		return
	}
	c.ran("changelog")
	p := c.inRoot("CHANGELOG.md")
	b, err := c.arc.read(p)
	if err != nil {
		c.add("changelog", "missing-changelog", SeverityWarning, fmt.Sprintf("missing CHANGELOG.md: %s not found", p), "")
		return
	}
	if len(bytes.TrimSpace(b)) == 0 {
		c.add("changelog", "missing-changelog", SeverityWarning, fmt.Sprintf("CHANGELOG.md is empty: %s", p), "")
	}
}

var reHTMLComment = regexp.MustCompile(`<!--(.*?)-->`)

// readme: README.md exists, is not empty and has no HTML comments.
func (c *checker) checkReadme() {
	if !c.rootOK {
		return
	}
	c.ran("readme")
	p := c.inRoot("README.md")
	b, err := c.arc.read(p)
	if err != nil {
		c.add("readme", "missing-readme", SeverityError, fmt.Sprintf("missing README.md: %s not found", p),
			"The README is shown in the plugin catalog.")
		return
	}
	if len(bytes.TrimSpace(b)) == 0 {
		c.add("readme", "missing-readme", SeverityError, fmt.Sprintf("README.md is empty: %s", p),
			"The README is shown in the plugin catalog.")
		return
	}
	if m := reHTMLComment.Find(b); m != nil {
		c.add("readme", "readme-comment", SeverityWarning,
			fmt.Sprintf("README.md contains comment(s): %s has %q", p, truncate(string(m), 60)), "")
	}
	c.readme = b
}

// jargon: README.md avoids developer jargon.
func (c *checker) checkJargon() {
	if c.readme == nil {
		return
	}
	c.ran("jargon")
	var found []string
	for _, w := range []string{"yarn", "nodejs"} {
		if bytes.Contains(c.readme, []byte(w)) {
			found = append(found, w)
		}
	}
	if len(found) > 0 {
		c.add("jargon", "developer-jargon", SeverityWarning,
			fmt.Sprintf("README.md contains developer jargon: (%s) in %s", strings.Join(found, ", "), c.inRoot("README.md")),
			"Move developer documentation to a separate file (for example CONTRIBUTING.md).")
	}
}

var reTemplateReadme = regexp.MustCompile(`(?i)Grafana (Panel|Data Source|Datasource|App|Data Source Backend) Plugin Template`)

// templatereadme: README.md is not the create-plugin template.
func (c *checker) checkTemplateReadme() {
	if c.readme == nil {
		return
	}
	c.ran("templatereadme")
	if m := reTemplateReadme.Find(c.readme); m != nil {
		c.add("templatereadme", "template-readme", SeverityError,
			fmt.Sprintf("README.md: uses README from template (%q in %s)", string(m), c.inRoot("README.md")),
			"Describe Vigil in the README.")
	}
}

// checksum: the archive matches the MD5/SHA1 given in Options.Checksum.
func (c *checker) checkChecksum() {
	sum := strings.TrimSpace(c.opts.Checksum)
	if sum == "" {
		return
	}
	c.ran("checksum")
	if strings.HasPrefix(sum, "http://") || strings.HasPrefix(sum, "https://") {
		c.add("checksum", "checksum-format-error", SeverityError,
			fmt.Sprintf("checksum URL %s cannot be fetched offline", sum), "Pass the hex digest itself.")
		return
	}
	sum = strings.ToLower(strings.Fields(sum)[0])
	b, err := os.ReadFile(c.zipPath)
	if err != nil {
		c.add("checksum", "checksum-invalid", SeverityError, fmt.Sprintf("cannot read %s: %v", c.zipPath, err), "")
		return
	}
	var got string
	switch len(sum) {
	case 32:
		h := md5.Sum(b)
		got = hex.EncodeToString(h[:])
	case 40:
		h := sha1.Sum(b)
		got = hex.EncodeToString(h[:])
	default:
		c.add("checksum", "checksum-format-error", SeverityError,
			fmt.Sprintf("invalid checksum format: %s", sum), "Only MD5 and SHA1 checksums are supported.")
		return
	}
	if got != sum {
		c.add("checksum", "checksum-invalid", SeverityError,
			fmt.Sprintf("the provided checksum %s does not match %s (%s)", sum, c.zipPath, got), "")
	}
}

// modulejs: at least one module.js is shipped.
func (c *checker) checkModuleJS() {
	if !c.rootOK {
		return
	}
	c.ran("modulejs")
	files := c.arc.named(c.root, "module.js")
	if len(files) == 0 {
		c.add("modulejs", "missing-modulejs", SeverityError,
			fmt.Sprintf("missing module.js: no module.js under %s/", c.root),
			"Grafana loads the plugin from module.js; run the frontend build before packaging.")
		return
	}
	c.modules = map[string][]byte{}
	for _, f := range files {
		if b, err := c.arc.read(f); err == nil {
			c.modules[f] = b
		}
	}
}

var reURL = regexp.MustCompile(`https?://[^\s]+`)

// trackingscripts: module.js files do not reference known tracking hosts.
func (c *checker) checkTrackingScripts() {
	if len(c.modules) == 0 {
		return
	}
	c.ran("trackingscripts")
	hosts := c.opts.TrackingHosts
	if len(hosts) == 0 {
		hosts = defaultTrackingHosts
	}
	files := make([]string, 0, len(c.modules))
	for f := range c.modules {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		for _, u := range reURL.FindAll(c.modules[f], -1) {
			for _, h := range hosts {
				if strings.Contains(string(u), h) {
					c.add("trackingscripts", "tracking-scripts", SeverityError,
						fmt.Sprintf("module.js: should not include tracking scripts: %s references %s", f, truncate(string(u), 120)),
						"Tracking scripts (for example Google Analytics) are not allowed in Grafana plugins.")
				}
			}
		}
	}
}

// unsafesvg: SVG files contain no scripting elements or event handler attributes.
func (c *checker) checkUnsafeSVG() {
	if !c.rootOK {
		return
	}
	c.ran("unsafesvg")
	for _, f := range c.arc.under(c.root) {
		if path.Ext(f) != ".svg" {
			continue
		}
		b, err := c.arc.read(f)
		if err != nil {
			continue
		}
		if err := svgUnsafe(b); err != nil {
			c.add("unsafesvg", "unsafe-svg-file", SeverityError,
				fmt.Sprintf("SVG file %s is unsafe: %v", f, err), "")
		}
	}
}

// Elements that can run script or smuggle HTML into an SVG.
var svgBannedElements = map[string]bool{
	"script": true, "iframe": true, "audio": true, "template": true,
	"noscript": true, "noembed": true, "noframes": true, "plaintext": true, "xmp": true,
	"math": true, "mi": true, "mn": true, "mo": true, "ms": true, "mtext": true,
	"annotation-xml": true, "colgroup": true, "thead": true,
}

func svgUnsafe(b []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if svgBannedElements[t.Name.Local] {
				return fmt.Errorf("element <%s> is not allowed", t.Name.Local)
			}
			for _, a := range t.Attr {
				key := a.Name.Local
				if a.Name.Space != "" {
					key = a.Name.Space + ":" + key
				}
				if strings.HasPrefix(strings.ToLower(key), "on") {
					return fmt.Errorf("attribute %s on <%s> is not allowed", key, t.Name.Local)
				}
			}
		case xml.EndElement:
			if svgBannedElements[t.Name.Local] {
				return fmt.Errorf("element </%s> is not allowed", t.Name.Local)
			}
		}
	}
}

var screenshotTypes = []string{"image/jpeg", "image/png", "image/gif", "image/svg+xml"}

// screenshots: the top-level plugin.json lists screenshots of an accepted image type.
func (c *checker) checkScreenshots() {
	if !c.mainOK || !c.rootOK {
		return
	}
	c.ran("screenshots")
	shots := c.main.Info.Screenshots
	if len(shots) == 0 {
		c.add("screenshots", "screenshots", SeverityWarning,
			fmt.Sprintf("plugin.json: should include screenshots for the plugin catalog (%s has none)", c.inRoot("plugin.json")), "")
		return
	}
	for _, s := range shots {
		if strings.TrimSpace(s.Path) == "" {
			c.add("screenshots", "screenshots", SeverityWarning,
				fmt.Sprintf("plugin.json: invalid empty screenshot path for %q", s.Name), "")
			continue
		}
		p := c.inRoot(s.Path)
		if err := c.screenshotType(p); err != nil {
			c.add("screenshots", "screenshots-image-type", SeverityError, err.Error(),
				"Accepted image types: "+strings.Join(screenshotTypes, ", ")+".")
		}
	}
}

func (c *checker) screenshotType(p string) error {
	b, err := c.arc.read(p)
	if err != nil {
		return fmt.Errorf("invalid screenshot path: %s is not in the archive", p)
	}
	head := b
	if len(head) > 512 {
		head = head[:512]
	}
	mt := http.DetectContentType(head)
	if (strings.Contains(mt, "text/plain") || strings.Contains(mt, "text/xml")) && bytes.Contains(head, []byte("<svg")) {
		mt = "image/svg+xml"
	}
	ok := false
	for _, t := range screenshotTypes {
		ok = ok || t == mt
	}
	if !ok {
		return fmt.Errorf("invalid screenshot image %s: content is %s", p, mt)
	}
	ext := path.Ext(p)
	if want := mime.TypeByExtension(ext); want != mt {
		return fmt.Errorf("screenshot image has extension mismatch: %s has extension %q but content is %s", p, ext, mt)
	}
	return nil
}

// manifest: a signed MANIFEST.txt covers every file with the right digest.
// An unsigned package is a warning (expected before the first review).
func (c *checker) checkManifest() {
	if !c.rootOK {
		return
	}
	c.ran("manifest")
	p := c.inRoot("MANIFEST.txt")
	b, err := c.arc.read(p)
	if err != nil {
		c.add("manifest", "unsigned-plugin", SeverityWarning,
			fmt.Sprintf("unsigned plugin: %s not found", p),
			"Expected for a new plugin before review; sign with `npx @grafana/sign-plugin` once approved.")
		return
	}
	if len(b) == 0 {
		c.add("manifest", "empty-manifest", SeverityError, fmt.Sprintf("empty manifest: %s", p), "")
		return
	}
	var mf struct {
		Files         map[string]string `json:"files"`
		RootUrls      []string          `json:"rootUrls"`
		SignatureType string            `json:"signatureType"`
	}
	body, ok := clearsignedBody(b)
	if !ok || json.Unmarshal(body, &mf) != nil {
		c.add("manifest", "wrong-manifest", SeverityError, fmt.Sprintf("could not parse %s", p), "")
		return
	}
	if len(mf.Files) == 0 {
		c.add("manifest", "undeclared-files", SeverityError, fmt.Sprintf("no files declared in %s", p), "")
		return
	}
	if mf.SignatureType != "private" && mf.SignatureType != "private-glob" && len(mf.RootUrls) > 0 {
		c.add("manifest", "invalid-signature", SeverityError,
			fmt.Sprintf("MANIFEST.txt: %s signature contains rootUrls", mf.SignatureType), "")
		return
	}
	seen := map[string]bool{}
	for _, f := range c.arc.under(c.root) {
		if path.Base(f) == "MANIFEST.txt" {
			continue
		}
		rel := relTo(c.root, f)
		seen[rel] = true
		want, ok := mf.Files[rel]
		if !ok {
			c.add("manifest", "undeclared-files", SeverityError, fmt.Sprintf("undeclared files in MANIFEST: %s", f), "")
			continue
		}
		data, err := c.arc.read(f)
		if err != nil {
			continue
		}
		h := sha256.Sum256(data)
		if hex.EncodeToString(h[:]) != strings.ToLower(want) {
			c.add("manifest", "invalid-sha-sum", SeverityError, fmt.Sprintf("invalid file checksum for %s", f), "")
			continue
		}
		perm := extractedPerm(c.arc.files[f].mode)
		if perm&0o400 == 0 || perm&0o040 == 0 || perm&0o004 == 0 {
			c.add("manifest", "wrong-permissions", SeverityError,
				fmt.Sprintf("file %s has wrong permissions (%04o) and can't be read", f, perm), "")
		}
	}
	declared := make([]string, 0, len(mf.Files))
	for k := range mf.Files {
		declared = append(declared, k)
	}
	sort.Strings(declared)
	for _, k := range declared {
		if !seen[k] {
			c.add("manifest", "undeclared-files", SeverityError,
				fmt.Sprintf("declared files in MANIFEST not present: %s", c.inRoot(k)), "")
		}
	}
}

// clearsignedBody extracts the signed text of an OpenPGP clear-signed message
// (the signature itself is not verified, as in the validator).
func clearsignedBody(b []byte) ([]byte, bool) {
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	const begin = "-----BEGIN PGP SIGNED MESSAGE-----\n"
	const sig = "\n-----BEGIN PGP SIGNATURE-----"
	i := strings.Index(text, begin)
	if i < 0 {
		return nil, false
	}
	rest := text[i+len(begin):]
	blank := strings.Index(rest, "\n\n")
	if blank < 0 {
		return nil, false
	}
	rest = rest[blank+2:]
	j := strings.Index(rest, sig)
	if j < 0 {
		return nil, false
	}
	lines := strings.Split(rest[:j], "\n")
	for n, l := range lines {
		lines[n] = strings.TrimPrefix(l, "- ")
	}
	return []byte(strings.Join(lines, "\n")), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
