//go:build !linux

package history

import "os"

// fdatasync writes a file to the disk (fsync where fdatasync is not offered).
func fdatasync(f *os.File) error { return f.Sync() }
