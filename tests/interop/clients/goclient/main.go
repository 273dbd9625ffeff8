// An interop client on Go's own HTTP/2: net/http over TLS (ALPN h2, the
// transport's default settings) and golang.org/x/net/http2 for h2c prior
// knowledge. One subcommand per check; each prints one JSON object.
//
//	goclient [-h2c] [-ca FILE] get URL
//	goclient ... concurrent URL N       N requests at once on one connection
//	goclient ... download URL           sha256 and size of the body
//	goclient ... upload URL FILE        POST the file, print the response body
//	goclient ... trailers URL FILE      POST the file, digest of the echo + trailers
//	goclient ... cancel URL NEXT        read 1 MiB of URL, cancel, then GET NEXT
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
)

type result map[string]interface{}

func client(h2c bool, ca string) *http.Client {
	if h2c {
		return &http.Client{Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLS: func(network, addr string, _ *tls.Config) (net.Conn, error) {
				return net.Dial(network, addr)
			},
		}}
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca)
	check(err)
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// traced counts the new connections a request made.
func traced(req *http.Request, dials *int64) *http.Request {
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if !info.Reused {
			atomic.AddInt64(dials, 1)
		}
	}}
	return req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
}

func digest(r io.Reader) (string, int64) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	check(err)
	return hex.EncodeToString(h.Sum(nil)), n
}

func main() {
	h2c := flag.Bool("h2c", false, "cleartext HTTP/2 with prior knowledge")
	ca := flag.String("ca", "", "CA certificate (PEM) for TLS")
	flag.Parse()
	args := flag.Args()
	c := client(*h2c, *ca)
	out := result{}
	var dials int64
	switch args[0] {
	case "get", "download":
		req, err := http.NewRequest("GET", args[1], nil)
		check(err)
		resp, err := c.Do(traced(req, &dials))
		check(err)
		sum, n := digest(resp.Body)
		resp.Body.Close()
		out["status"], out["proto"], out["sha256"], out["bytes"] = resp.StatusCode, resp.Proto, sum, n
	case "concurrent":
		var n int
		fmt.Sscan(args[2], &n)
		var wg sync.WaitGroup
		var ok int64
		// One request first, so the others find the connection (and its
		// SETTINGS) instead of each dialling its own.
		for i := 0; i <= n; i++ {
			run := func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", args[1], nil)
				resp, err := c.Do(traced(req, &dials))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && resp.ProtoMajor == 2 {
					atomic.AddInt64(&ok, 1)
				}
			}
			wg.Add(1)
			if i == 0 {
				run()
			} else {
				go run()
			}
		}
		wg.Wait()
		out["ok"] = ok - 1
	case "upload", "trailers":
		data, err := os.ReadFile(args[2])
		check(err)
		// A reader of unknown length: the body streams as DATA frames
		// without a content-length, as a proxy or a generator would send it.
		req, err := http.NewRequest("POST", args[1], io.MultiReader(bytes.NewReader(data)))
		check(err)
		resp, err := c.Do(traced(req, &dials))
		check(err)
		if args[0] == "upload" {
			body, err := io.ReadAll(resp.Body)
			check(err)
			out["body"] = string(body)
		} else {
			sum, n := digest(resp.Body)
			out["sha256"], out["bytes"] = sum, n
			trailers := map[string]string{}
			for k := range resp.Trailer {
				trailers[k] = resp.Trailer.Get(k)
			}
			out["trailers"] = trailers
		}
		resp.Body.Close()
		out["status"], out["proto"] = resp.StatusCode, resp.Proto
	case "cancel":
		ctx, cancel := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, "GET", args[1], nil)
		check(err)
		resp, err := c.Do(traced(req, &dials))
		check(err)
		got, err := io.CopyN(io.Discard, resp.Body, 1<<20)
		check(err)
		cancel() // RST_STREAM(CANCEL) on a stream still sending
		resp.Body.Close()
		next, err := http.NewRequest("GET", args[2], nil)
		check(err)
		resp, err = c.Do(traced(next, &dials))
		check(err)
		sum, n := digest(resp.Body)
		resp.Body.Close()
		out["cancelled_after"], out["status"], out["sha256"], out["bytes"] = got, resp.StatusCode, sum, n
	default:
		check(fmt.Errorf("unknown command %q", args[0]))
	}
	out["connections"] = dials
	check(json.NewEncoder(os.Stdout).Encode(out))
}
