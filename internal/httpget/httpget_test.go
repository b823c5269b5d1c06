package httpget

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.UserAgent() != "kiln" {
			http.Error(w, "who?", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("0123456789"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if b, err := Get(ctx, srv.Client(), srv.URL+"/ok", 10); err != nil || string(b) != "0123456789" {
		t.Errorf("a body at the limit: %q, %v", b, err)
	}
	if _, err := Get(ctx, srv.Client(), srv.URL+"/ok", 9); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a body past the limit: %v", err)
	}
	var se *StatusError
	if _, err := Get(ctx, srv.Client(), srv.URL+"/missing", 10); !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("a 404: %v", err)
	}
	// The URL, credentials and all, is not in the error.
	_, err := Get(ctx, srv.Client(), "http://user:s3cret@127.0.0.1:1/x", 10)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a refused connection: %v", err)
	}
}
