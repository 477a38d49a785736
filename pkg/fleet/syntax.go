package fleet

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// yamlMessage splits a YAML library error into the line it names (0 when
// none) and the problem.
var yamlMessage = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntaxError reports a YAML syntax error at the line and column where the
// problem is. The YAML library names the line where the enclosing block or
// flow begins (counted from 0 for some errors), often lines before the
// mistake; the problem is where the shortest beginning of the file that
// fails with the same message ends.
func syntaxError(raw []byte, err error) error {
	m := yamlMessage.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	problem := m[2]
	reported, _ := strconv.Atoi(m[1])
	line, column := locate(raw, problem, reported)
	if line == 0 {
		return fmt.Errorf("not valid YAML: %s", problem)
	}
	return fmt.Errorf("not valid YAML: line %d, column %d: %s", line, column, problem)
}

// locate finds the line and column (both from 1, the column in characters)
// of the shortest beginning of raw that fails with problem; 0, 0 when none
// does. The library's own line is never after the problem (it names where the
// enclosing block begins, at most one too few), so the search starts there.
// A beginning that fails stays failing as lines are added (short of a
// multi-line quoted or flow value left open by the cut), so the line is found
// by bisection: a dozen parses for a file of thousands of lines.
func locate(raw []byte, problem string, reported int) (line, column int) {
	fails := func(prefix []byte) bool {
		var n yaml.Node
		err := yaml.Unmarshal(prefix, &n)
		if err == nil {
			return false
		}
		m := yamlMessage.FindStringSubmatch(err.Error())
		return m != nil && m[2] == problem
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	// ends[k] is where line k+1 ends.
	ends := make([]int, len(lines))
	for i, l := range lines {
		ends[i] = len(l)
		if i > 0 {
			ends[i] += ends[i-1]
		}
	}
	start := min(max(reported-1, 1), len(lines))
	if start == 0 {
		return 0, 0
	}
	i := sort.Search(len(lines)-start+1, func(i int) bool { return fails(raw[:ends[start-1+i]]) })
	if i > len(lines)-start {
		return 0, 0
	}
	line = start + i
	// The line: now the column, one character at a time.
	offset := ends[line-1] - len(lines[line-1])
	text := lines[line-1]
	for j := 0; j < len(text); {
		_, size := utf8.DecodeRune(text[j:])
		j += size
		column++
		if fails(raw[:offset+j]) {
			return line, column
		}
	}
	return line, column
}
