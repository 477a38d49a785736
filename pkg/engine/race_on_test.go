//go:build race

package engine

// raceDetector: the race detector makes every poll several times slower.
const raceDetector = true
