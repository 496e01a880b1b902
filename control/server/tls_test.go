package server

import (
	"context"
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
	"testing"
	"time"

	"connectrpc.com/connect"

	vbsv1 "github.com/vbs-storage/vbs/proto/gen/vbs/v1"
	"github.com/vbs-storage/vbs/proto/gen/vbs/v1/vbsv1connect"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns
// the cert and key paths and a pool that trusts it.
func writeCert(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vbs-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cp, kp := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	if err := os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return cp, kp, pool
}

// TestRunTLS serves the API over TLS and calls it with gRPC (HTTP/2 via
// ALPN) against a client that trusts only the test certificate.
func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := writeCert(t, t.TempDir())
	ready := make(chan Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			DataDir: dir, NodeName: "n1", APIListen: "127.0.0.1:0", ISCSIListen: "127.0.0.1:0",
			RaftListen: "127.0.0.1:0", SerfListen: "127.0.0.1:0", ElectionTimeout: 100 * time.Millisecond,
			TLSCert: cert, TLSKey: key, Ready: func(a Addrs) { ready <- a },
		}, nil)
	}()
	var addrs Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not started")
	}
	token, err := ReadToken(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	hc := &http.Client{Transport: tr}
	nc := vbsv1connect.NewNodeServiceClient(hc, "https://"+addrs.API, connect.WithGRPC())
	deadline := time.Now().Add(30 * time.Second)
	for {
		req := connect.NewRequest(&vbsv1.ListNodesRequest{})
		req.Header().Set("Authorization", "Bearer "+token)
		resp, err := nc.ListNodes(ctx, req)
		if err == nil && len(resp.Msg.Nodes) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ListNodes over gRPC/TLS: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the first reconcile pass records the node
	}
	// Cleartext is refused on a TLS port.
	if resp, err := http.Get("http://" + addrs.API + PathHealthz); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("cleartext request served on the TLS port")
		}
	}
	tr.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}
