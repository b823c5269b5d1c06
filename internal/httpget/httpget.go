// Package httpget fetches small documents over HTTP the one way kiln
// does: whole, bounded in size, and only on a 200. Errors never repeat the
// URL, which may hold credentials: callers name it, redacted.
package httpget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrTooLarge is a document longer than the caller's limit.
var ErrTooLarge = errors.New("too large")

// StatusError is an answer other than 200.
type StatusError struct {
	Code   int
	Status string // "404 Not Found"
}

func (e *StatusError) Error() string { return e.Status }

// Get fetches url with client and returns its body, at most limit bytes.
func Get(ctx context.Context, client *http.Client, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	req.Header.Set("User-Agent", "kiln")
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // net/http's *url.Error repeats the URL, user name and all
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Code: resp.StatusCode, Status: resp.Status}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
	}
	return b, nil
}
