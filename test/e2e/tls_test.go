package e2e

// --api-cert-dir through the built binary: HTTPS only, from the directory's files, and a
// renewed pair served without a restart.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/test/framework"
)

// writeServingCert writes a self-signed certificate for 127.0.0.1 with serial to dir as
// tls.crt and tls.key, each written beside its target and renamed into place, as kubelet
// updates a Secret volume atomically, and returns it.
func writeServingCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "usercredits-api"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name  string
		block *pem.Block
	}{{"tls.key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}}, {"tls.crt", &pem.Block{Type: "CERTIFICATE", Bytes: der}}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(f.block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// servedSerial is the serial of the certificate a new connection to addr is served.
func servedSerial(addr string) (int64, error) {
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reading the serial
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// trusting is a transport that trusts only cert, on new connections only.
func trusting(cert *x509.Certificate) *http.Transport {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}
}

// TestAPICertDir: with --api-cert-dir the API is HTTPS only, with the directory's
// certificate, and a replaced pair is served to new connections within seconds.
func TestAPICertDir(t *testing.T) {
	dir := t.TempDir()
	first := writeServingCert(t, dir, 1001)
	m := launch(t, []string{"--api-cert-dir=" + dir})
	user := "user_E2ETLS1"
	token := userToken(t, user)
	api := "https://" + m.apiAddr + "/api/credits"

	// Verified against the certificate in the directory, not merely encrypted.
	resp, body := httpResponse(t, trusting(first), "GET", api, token, "")
	if resp == nil || resp.StatusCode != 200 || body != `{"credits":0}` {
		t.Fatalf("HTTPS GET verified against %s/tls.crt: %v %s", dir, resp, body)
	}
	if serial, err := servedSerial(m.apiAddr); err != nil || serial != 1001 {
		t.Fatalf("served serial %d (%v), want 1001", serial, err)
	}
	if status, body := httpDo(t, "GET", m.url("/api/credits"), token, ""); status == 200 || strings.Contains(body, "credits") {
		t.Errorf("plain HTTP on the API port: %d %s, want no credits answer", status, body)
	}

	replaced := time.Now()
	second := writeServingCert(t, dir, 1002)
	framework.Eventually(t, 10*time.Second, func() error {
		if serial, err := servedSerial(m.apiAddr); err != nil || serial != 1002 {
			return fmt.Errorf("new connections get serial %d (%v), want 1002", serial, err)
		}
		return nil
	})
	t.Logf("the replaced certificate was served %v after the files changed", time.Since(replaced).Round(10*time.Millisecond))
	resp, body = httpResponse(t, trusting(second), "GET", api, token, "")
	if resp == nil || resp.StatusCode != 200 || body != `{"credits":0}` {
		t.Fatalf("HTTPS GET verified against the replaced certificate: %v %s", resp, body)
	}
}
