package operator_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitread/usercredits-operator/internal/operator/options"
)

// writeServingCert writes a self-signed certificate for 127.0.0.1 with serial to dir as
// tls.crt and tls.key, the way cert-manager fills a Secret volume, and returns it.
func writeServingCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "usercredits-api"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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
	// Written next to the target and renamed, as kubelet updates a Secret volume atomically.
	for name, block := range map[string]*pem.Block{"tls.crt": {Type: "CERTIFICATE", Bytes: der}, "tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// servedSerial is the serial of the certificate the API at host presents.
func servedSerial(t *testing.T, host string) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only reading the serial
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestAPIOverTLS: with --api-cert-dir the API is HTTPS only, and a renewed certificate is
// served without a restart.
func TestAPIOverTLS(t *testing.T) {
	dir := t.TempDir()
	first := writeServingCert(t, dir, 1)
	base := extraReplica(t, func(o *options.Options) { o.API.CertDir = dir })
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("replica base %q", base)
	}
	host := strings.TrimPrefix(base, "https://")
	pool := x509.NewCertPool()
	pool.AddCert(first)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("GET", base+"/api/credits", nil)
	req.Header.Set("Authorization", "Bearer "+tokenFor(t, "user_TLS1"))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS GET: %d", resp.StatusCode)
	}

	// Plain HTTP gets no API answer.
	plain, err := http.Get("http://" + host + "/api/credits")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP: %d, want refused", plain.StatusCode)
		}
	}

	// Renewal: new files in the directory are served without a restart.
	writeServingCert(t, dir, 2)
	start := time.Now()
	for servedSerial(t, host) != 2 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the renewed certificate was not served within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("renewed certificate served %v after it was written", time.Since(start).Round(time.Millisecond))
}
