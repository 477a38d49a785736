// Package textlimit cuts text that comes from an agent (a peer the monitor
// does not control) to a bound, the one way every package does it: the
// engine for what it stores, the agent client for an agent's message quoted
// in an error, the CLI for what it prints. A cut string ends with a marker
// saying how long it was, and never ends inside a character.
package textlimit

import (
	"fmt"
	"unicode/utf8"
)

// Clip returns s cut so that its JSON encoding (without the quotes) takes
// at most max bytes, ending with "…(truncated, N bytes)" (N: the length of
// s) when it was cut. It never splits a character.
func Clip(s string, max int) string {
	if JSONLen(s) <= max {
		return s
	}
	marker := fmt.Sprintf("…(truncated, %d bytes)", len(s))
	room := max - len(marker)
	n, used := 0, 0
	for n < len(s) {
		r, size := utf8.DecodeRuneInString(s[n:])
		c := runeJSONLen(r, size)
		if used+c > room {
			break
		}
		used += c
		n += size
	}
	return s[:n] + marker
}

// JSONLen is the length of s encoded by encoding/json, without the quotes.
func JSONLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeJSONLen(r, size)
		i += size
	}
	return n
}

// runeJSONLen is what encoding/json writes for one rune of a string
// (HTML-safe escaping, invalid bytes replaced by \ufffd).
func runeJSONLen(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	}
	return size
}
