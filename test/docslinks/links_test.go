// Package docslinks checks every relative link and anchor in the README and docs/: a link to a
// file that does not exist, or to a heading that is not there, fails the test with the file and
// line of the link.
package docslinks

import (
	"bufio"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"unicode"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// markdownFiles are the pages a reader follows links in.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{"README.md", "CONTRIBUTING.md", "CHANGELOG.md", "src/README.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	var out []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			out = append(out, f)
		}
	}
	return out
}

var (
	linkRe    = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refDefRe  = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s+(\S+)`)
	headingRe = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	anchorRe  = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	codeRe    = regexp.MustCompile("`[^`]*`")
)

type link struct {
	line   int
	target string
}

// page is one Markdown file: its links and the anchors its headings make.
type page struct {
	links   []link
	anchors map[string]bool
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped except '-' and '_',
// spaces to '-'.
func slug(heading string) string {
	heading = codeRe.ReplaceAllStringFunc(heading, func(s string) string { return strings.Trim(s, "`") })
	// Links in a heading keep their text only.
	heading = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func readPage(t *testing.T, file string) page {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := page{anchors: map[string]bool{}}
	seen := map[string]int{}
	fence := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			switch {
			case fence == "":
				fence = trimmed[:3]
			case strings.HasPrefix(trimmed, fence):
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		for _, m := range anchorRe.FindAllStringSubmatch(line, -1) {
			p.anchors[m[1]] = true
		}
		if m := headingRe.FindStringSubmatch(line); m != nil {
			s := slug(m[2])
			if k := seen[s]; k > 0 {
				p.anchors[fmt.Sprintf("%s-%d", s, k)] = true
			} else {
				p.anchors[s] = true
			}
			seen[s]++
		}
		text := codeRe.ReplaceAllString(line, "")
		for _, m := range linkRe.FindAllStringSubmatch(text, -1) {
			p.links = append(p.links, link{n, m[1]})
		}
		if m := refDefRe.FindStringSubmatch(text); m != nil {
			p.links = append(p.links, link{n, m[1]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRelativeLinksAndAnchorsResolve(t *testing.T) {
	root := repoRoot(t)
	pages := map[string]page{}
	load := func(rel string) page {
		if p, ok := pages[rel]; ok {
			return p
		}
		p := readPage(t, filepath.Join(root, rel))
		pages[rel] = p
		return p
	}
	checked := 0
	for _, rel := range markdownFiles(t, root) {
		for _, l := range load(rel).links {
			u, err := url.Parse(l.target)
			if err != nil {
				t.Errorf("%s:%d: link %q cannot be parsed: %v", rel, l.line, l.target, err)
				continue
			}
			if u.Scheme != "" || strings.HasPrefix(l.target, "//") {
				continue // absolute: not checked offline
			}
			checked++
			target := rel
			if u.Path != "" {
				target = filepath.Clean(filepath.Join(filepath.Dir(rel), u.Path))
				if strings.HasPrefix(target, "..") {
					t.Errorf("%s:%d: link %q leaves the repository", rel, l.line, l.target)
					continue
				}
				st, err := os.Stat(filepath.Join(root, target))
				if err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", rel, l.line, l.target, target)
					continue
				}
				if st.IsDir() || !strings.HasSuffix(target, ".md") {
					if u.Fragment != "" {
						t.Errorf("%s:%d: link %q: an anchor into %s, which is not a Markdown page", rel, l.line, l.target, target)
					}
					continue
				}
			}
			if u.Fragment == "" {
				continue
			}
			if !load(target).anchors[u.Fragment] {
				t.Errorf("%s:%d: link %q: %s has no heading or anchor #%s", rel, l.line, l.target, target, u.Fragment)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d relative links found; the link pattern is broken", checked)
	}
	t.Logf("%d relative links checked in %d pages", checked, len(pages))
}

func TestSlugFollowsGitHub(t *testing.T) {
	for heading, want := range map[string]string{
		"Choosing tokens":       "choosing-tokens",
		"`vigil watch`":         "vigil-watch",
		"JSON lines (`--json`)": "json-lines---json",
		"A version is a content that was really written": "a-version-is-a-content-that-was-really-written",
		"Who holds what":             "who-holds-what",
		"Save & test":                "save--test",
		"The read token is empty":    "the-read-token-is-empty",
		"[Links](x.md) in a heading": "links-in-a-heading",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}
