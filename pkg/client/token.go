package client

import (
	"context"
	"os"
	"strings"
)

// TokenSource supplies the bearer token of a request. The client asks it for every request,
// retries included, and never caches what it returns: a source that rotates its token
// (kubelet's projected volume, a refreshed login) needs nothing from the client.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenFunc makes a function a TokenSource.
type TokenFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// StaticToken always supplies token: for a laptop, with the dev token `make run` prints or
// one from `kubectl create token <sa> -n <ns> --audience credits.gitread.dev`.
func StaticToken(token string) TokenSource {
	token = strings.TrimSpace(token)
	return TokenFunc(func(context.Context) (string, error) { return token, nil })
}

// FileToken reads the token from path for every request (surrounding whitespace trimmed):
// the projected ServiceAccount token that kubelet rewrites as it rotates it. It is the
// default source, at DefaultTokenFile.
func FileToken(path string) TokenSource {
	return TokenFunc(func(context.Context) (string, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(data)), nil
	})
}
