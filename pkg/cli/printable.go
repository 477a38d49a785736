package cli

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// printable is the one rule for text that reaches a terminal or a monitoring
// system (every human and Nagios writer of this package uses it, through
// nagiosText for Nagios): agent-supplied strings (process names, host names,
// reasons, error texts) must not move the cursor, clear the screen, retitle
// the terminal, reorder the text or start a new line. Control characters (C0,
// DEL, C1, so ESC too), Unicode bidi controls and line/paragraph separators
// are shown escaped as Go does ("\n", "\t", "\x1b", "\u202e"), and bytes that
// are not UTF-8 as "\xff". Everything else, backslashes included, is kept.
// JSON output needs none of this: it is escaped by encoding/json.
func printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case escaped(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// nagiosText is printable text for a plugin's output, where "|" starts the
// performance data (on the first line and on any line of the long output):
// it becomes "¦".
func nagiosText(s string) string {
	return strings.ReplaceAll(printable(s), "|", "¦")
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			if c < 0x80 {
				return true
			}
			// Non-ASCII: look closer (most of it is fine).
			for _, r := range s[i:] {
				if r == utf8.RuneError || r < 0x20 || r == 0x7f || escaped(r) {
					return true
				}
			}
			return false
		}
	}
	return false
}

// escaped: C1 controls, bidi embedding, override and isolate controls and
// marks, and the Unicode line and paragraph separators.
func escaped(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}
