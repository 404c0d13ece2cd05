package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOriginsAsBrowsersSendThem: an allowed origin is accepted exactly when a browser's
// Origin header can equal it, and a refused one is told the form that would.
func TestOriginsAsBrowsersSendThem(t *testing.T) {
	for _, o := range []string{"https://app.example.com", "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:3000",
		"https://xn--bcher-kva.example", "chrome-extension://abcdefghijklmnop"} {
		if err := checkOrigin(o); err != nil {
			t.Errorf("%s, as browsers send it: refused (%v)", o, err)
		}
	}
	for o, want := range map[string]string{
		"*":                            "no browser sends * as its Origin",
		"null":                         "every sandboxed frame",
		"app.example.com":              "no browser sends it as its Origin: want scheme://host[:port]",
		"localhost:3000":               "no browser sends it as its Origin: want scheme://host[:port]",
		"https://":                     "no browser sends it as its Origin: want scheme://host[:port]",
		"https://app.example.com/":     "browsers send it as https://app.example.com ",
		"https://app.example.com/app":  "browsers send it as https://app.example.com ",
		"https://app.example.com?x=1":  "browsers send it as https://app.example.com ",
		"https://app.example.com#top":  "browsers send it as https://app.example.com ",
		"HTTPS://App.Example.com":      "browsers send it as https://app.example.com ",
		"https://app.example.com:443":  "browsers send it as https://app.example.com ",
		"https://app.example.com:":     "browsers send it as https://app.example.com ",
		"https://:8080":                "no browser sends it as its Origin: want scheme://host[:port]",
		"https://Bücher.example":       "xn--",
		"http://app.example.com:80":    "browsers send it as http://app.example.com ",
		"https://app.example.com:0":    `port "0"`,
		"https://app.example.com:0443": `port "0443"`,
		"https://me@app.example.com":   "no user",
		"https://bücher.example":       "xn--",
	} {
		err := checkOrigin(o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want it refused saying %q", o, err, want)
		}
	}
}

// TestRefusedOriginsNeverMatchedTheirBrowsers: why the check exists. Each refused value,
// allowed, gives its browser no CORS headers; the form the refusal names does.
func TestRefusedOriginsNeverMatchedTheirBrowsers(t *testing.T) {
	allowOrigin := func(allowed, origin string) string {
		h := &Handler{opts: Options{Settings: Settings{CORSAllowedOrigins: []string{allowed}}}}
		r := httptest.NewRequest(http.MethodGet, "/api/credits", nil)
		r.Header.Set("Origin", origin)
		w := httptest.NewRecorder()
		h.cors(w, r)
		return w.Header().Get("Access-Control-Allow-Origin")
	}
	const browser = "https://app.example.com" // what the browser sends
	for _, allowed := range []string{"*", "https://app.example.com/", "app.example.com", "HTTPS://APP.EXAMPLE.COM", "https://app.example.com:443"} {
		if checkOrigin(allowed) == nil {
			t.Errorf("%q: accepted", allowed)
		}
		if got := allowOrigin(allowed, browser); got != "" {
			t.Errorf("%q allowed: Origin %s got Access-Control-Allow-Origin %q; the refusal is wrong", allowed, browser, got)
		}
	}
	if err := checkOrigin(browser); err != nil || allowOrigin(browser, browser) != browser {
		t.Errorf("%s allowed, as the refusals say: %v, Access-Control-Allow-Origin %q", browser, err, allowOrigin(browser, browser))
	}
}
