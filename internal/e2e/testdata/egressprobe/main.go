// egressprobe is the guest's half of the egress tests: each command prints
// one line saying what happened, which the host's test reads.
//
//	egressprobe get URL [SNI]   HTTP(S) GET (SNI overrides the URL's host in
//	                            the ClientHello; the guest has no test CA,
//	                            so certificates are not verified)
//	egressprobe dial ADDR       TCP connect, then one HTTP request
//	egressprobe dns SERVER NAME one A query over UDP to SERVER:53
//	egressprobe resolve NAME    the system resolver (loftd's)
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Println("usage: egressprobe get URL [SNI] | dial ADDR | dns SERVER NAME | resolve NAME")
		os.Exit(2)
	}
	var line string
	switch os.Args[1] {
	case "get":
		sni := ""
		if len(os.Args) > 3 {
			sni = os.Args[3]
		}
		line = get(os.Args[2], sni)
	case "dial":
		line = dial(os.Args[2])
	case "dns":
		line = query(os.Args[2], os.Args[3])
	case "resolve":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
		if err != nil {
			line = "resolve error: " + err.Error()
		} else {
			line = "resolved " + strings.Join(addrs, " ")
		}
	default:
		line = "unknown command " + os.Args[1]
	}
	fmt.Printf("%s %s: %s\n", os.Args[1], strings.Join(os.Args[2:], " "), line)
}

func get(url, sni string) string {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni}, DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "error " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Sprintf("status %d body %s", resp.StatusCode, strings.ReplaceAll(string(body), "\n", " "))
}

func dial(addr string) string {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "error " + err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\n\r\n")
	b, err := io.ReadAll(io.LimitReader(conn, 200))
	if len(b) == 0 {
		return fmt.Sprintf("connected, no answer (%v)", err)
	}
	return "answered " + strings.SplitN(string(b), "\r\n", 2)[0]
}

func query(server, name string) string {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	_ = b.StartQuestions()
	_ = b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, _ := b.Finish()
	conn, err := net.Dial("udp", net.JoinHostPort(server, "53"))
	if err != nil {
		return "error " + err.Error()
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		return "error " + err.Error()
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer"
	}
	if err != nil {
		return "error " + err.Error()
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf[:n])
	if err != nil {
		return "error " + err.Error()
	}
	return "answer rcode " + h.RCode.String()
}
