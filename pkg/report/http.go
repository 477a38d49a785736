package report

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Refusals a receiver maps errors to (see Status).
var (
	// ErrRefused: no push agent of that name, or a bad signature.
	ErrRefused = errors.New("report refused")
	// ErrStale: not newer than the last report accepted.
	ErrStale = errors.New("stale report")
	// ErrUnavailable: the report cannot be kept now (a monitor that does
	// not own the agent cannot reach the shared history); the agent resends.
	ErrUnavailable = errors.New("report not kept now")
)

// Status is the HTTP status and error code of a report's outcome: 200, 400
// malformed_report, 401 report_refused, 409 stale_report, 413
// report_too_large, 503 report_not_kept, or 500.
func Status(err error) (int, string) {
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "report_too_large"
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest, "malformed_report"
	case errors.Is(err, ErrRefused):
		return http.StatusUnauthorized, "report_refused"
	case errors.Is(err, ErrStale):
		return http.StatusConflict, "stale_report"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, "report_not_kept"
	}
	return http.StatusInternalServerError, "internal"
}

var errTooLarge = fmt.Errorf("%w: larger than %d bytes", ErrMalformed, MaxBytes)

// ReadBody reads a report's body, at most MaxBytes.
func ReadBody(r io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(raw) > MaxBytes {
		return nil, errTooLarge
	}
	return raw, nil
}
