// tlsprobe is the guest's half of the secrets tests: an HTTPS client that
// verifies servers against the guest's own trust store (Go's defaults:
// SSL_CERT_FILE, else the system's CA bundles), as curl would, and prints
// one line the host's test reads.
//
//	tlsprobe get URL ['Header: value']...
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 3 || os.Args[1] != "get" {
		fmt.Println("usage: tlsprobe get URL ['Header: value']...")
		os.Exit(2)
	}
	url := os.Args[2]
	fmt.Printf("get %s: %s\n", url, get(url, os.Args[3:]))
}

func get(url string, headers []string) string {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return "error " + err.Error()
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return "error " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	return fmt.Sprintf("status %d body %s", resp.StatusCode, strings.ReplaceAll(strings.TrimSpace(string(body)), "\n", " "))
}
