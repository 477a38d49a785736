package pluginpackage

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// archiveFile is a regular file (or symlink) entry of the plugin zip.
type archiveFile struct {
	name    string
	mode    fs.FileMode
	symlink bool
	zf      *zip.File
}

// archive is an in-memory view of the zip entries, keyed by clean
// slash-separated paths. Entries with unsafe names are kept out of it and
// reported by the vigil-hygiene analyzer.
type archive struct {
	files map[string]*archiveFile
	dirs  map[string]bool
	names []string // sorted file names

	rawNames   []string // names exactly as stored in the zip
	rawEntries []*zip.File
	cache      map[string][]byte
}

func openArchive(zipPath string) (*archive, error) {
	r, err := zip.OpenReader(zipPath)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, err
	}
	// The reader stays open for the life of the process; archives are small
	// and a check is short-lived. Contents are read on demand and cached.
	a := &archive{
		files: map[string]*archiveFile{},
		dirs:  map[string]bool{},
		cache: map[string][]byte{},
	}
	for _, f := range r.File {
		a.rawNames = append(a.rawNames, f.Name)
		a.rawEntries = append(a.rawEntries, f)
		if unsafeEntryName(f.Name) != "" {
			continue
		}
		name := strings.TrimSuffix(path.Clean(f.Name), "/")
		if name == "." || name == "" {
			continue
		}
		if f.FileInfo().IsDir() {
			a.addDir(name)
			continue
		}
		a.addDir(path.Dir(name))
		a.files[name] = &archiveFile{
			name:    name,
			mode:    f.Mode(),
			symlink: f.Mode()&fs.ModeSymlink != 0,
			zf:      f,
		}
	}
	for n := range a.files {
		a.names = append(a.names, n)
	}
	sort.Strings(a.names)
	return a, nil
}

func (a *archive) addDir(d string) {
	for d != "." && d != "" && d != "/" {
		a.dirs[d] = true
		d = path.Dir(d)
	}
}

// unsafeEntryName explains why a zip entry name cannot be extracted safely,
// or returns "" when it can.
func unsafeEntryName(name string) string {
	switch {
	case name == "":
		return "empty entry name"
	case strings.Contains(name, `\`):
		return "contains a backslash"
	case strings.HasPrefix(name, "/"):
		return "is an absolute path"
	case len(name) >= 2 && name[1] == ':':
		return "starts with a drive letter"
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "escapes the extraction directory (..)"
		}
	}
	return ""
}

func (a *archive) isFile(name string) bool {
	_, ok := a.files[name]
	return ok
}

func (a *archive) isDir(name string) bool { return a.dirs[name] }

func (a *archive) exists(name string) bool { return a.isFile(name) || a.isDir(name) }

func (a *archive) empty() bool { return len(a.files) == 0 && len(a.dirs) == 0 }

// read returns the content of a file entry.
func (a *archive) read(name string) ([]byte, error) {
	if b, ok := a.cache[name]; ok {
		return b, nil
	}
	f, ok := a.files[name]
	if !ok {
		return nil, fs.ErrNotExist
	}
	rc, err := f.zf.Open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	a.cache[name] = b
	return b, nil
}

// topLevel returns the sorted names directly at the archive root.
func (a *archive) topLevel() []string {
	seen := map[string]bool{}
	for n := range a.files {
		seen[strings.SplitN(n, "/", 2)[0]] = true
	}
	for d := range a.dirs {
		seen[strings.SplitN(d, "/", 2)[0]] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// under returns the sorted files below dir (recursively); dir "" means all.
func (a *archive) under(dir string) []string {
	var out []string
	prefix := dir + "/"
	for _, n := range a.names {
		if dir == "" || strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// named returns the sorted files below dir whose base name is base.
func (a *archive) named(dir, base string) []string {
	var out []string
	for _, n := range a.under(dir) {
		if path.Base(n) == base {
			out = append(out, n)
		}
	}
	return out
}

// joinPath joins archive path elements, ignoring empty ones.
func joinPath(elem ...string) string {
	var parts []string
	for _, e := range elem {
		if e != "" && e != "." {
			parts = append(parts, e)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return path.Clean(strings.Join(parts, "/"))
}

// relTo returns p relative to dir (both archive paths).
func relTo(dir, p string) string {
	if dir == "" {
		return p
	}
	return strings.TrimPrefix(p, dir+"/")
}

// dirOf is path.Dir for archive paths, with "" for the root.
func dirOf(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}
