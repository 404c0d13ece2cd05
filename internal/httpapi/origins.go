package httpapi

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// A browser's Origin header is its page's scheme, host and port, serialized one way
// (RFC 6454 §6.2): scheme "://" host [":" port], lowercase, the port left out when it is
// the scheme's default, no path, no trailing slash. cors compares the header with each
// allowed origin byte for byte, so an allowed origin written any other way ("*", a URL
// copied from the address bar, a bare host name) never equals one, and every browser call
// it was meant for is refused by CORS, silently. Such values are refused at start instead.

// defaultPorts are the ports browsers leave out of an Origin.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// checkOrigin reports why origin can never equal a browser's Origin header, with the form
// that would when there is one, or why it must not be allowed ("null").
func checkOrigin(origin string) error {
	if origin == "*" {
		return errors.New("no browser sends * as its Origin (it is not an origin): list each origin browsers call the API from, such as https://app.example.com")
	}
	if strings.EqualFold(origin, "null") {
		// The one value here a browser does send, refused for another reason.
		return errors.New("null is the Origin of every sandboxed frame and file: page, from any site: allowing it allows them all; list real origins")
	}
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Hostname() == "" || u.Opaque != "" {
		return errors.New("no browser sends it as its Origin: want scheme://host[:port], such as https://app.example.com")
	}
	if u.User != nil {
		return errors.New("no browser sends it as its Origin (an origin has no user or password): want scheme://host[:port]")
	}
	for _, c := range u.Hostname() {
		if c > 0x7f {
			return errors.New("no browser sends it as its Origin: browsers send internationalized host names in their ASCII (xn--) form")
		}
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("no browser sends it as its Origin: port %q is not a port", port)
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 address
	}
	want := u.Scheme + "://" + host
	if port != "" && port != defaultPorts[u.Scheme] {
		want += ":" + port
	}
	if want != origin {
		return fmt.Errorf("no browser sends it as its Origin; browsers send it as %s (lowercase, no default port, no path or trailing slash, no query)", want)
	}
	return nil
}

// checkOrigins reports each of origins that is refused, naming the flag.
func checkOrigins(origins []string) error {
	var errs []error
	for _, o := range origins {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("--cors-allowed-origins %q: %w", o, err))
		}
	}
	return errors.Join(errs...)
}
