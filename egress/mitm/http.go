package mitm

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
)

// rewrite puts the secrets' values into req's headers where the request
// goes to one of their hosts, and returns the first secret whose
// placeholder would go where it may not (in a header, the request line or
// Host). Bodies are relayed as they are: a placeholder there stays a
// placeholder.
func (p *Proxy) rewrite(req *http.Request, name string) *Secret {
	for i := range p.cfg.Secrets {
		s := &p.cfg.Secrets[i]
		ok := s.AllowedTo(name)
		if strings.Contains(req.RequestURI, s.Placeholder) || strings.Contains(req.Host, s.Placeholder) {
			// The request line is not a header: never rewritten.
			return s
		}
		for key, vals := range req.Header {
			if strings.Contains(key, s.Placeholder) {
				return s
			}
			for j, v := range vals {
				nv, found := replaceIn(key, v, s)
				if !found {
					continue
				}
				if !ok {
					return s
				}
				vals[j] = nv
			}
		}
	}
	return nil
}

// replaceIn replaces s's placeholder in one header value, also inside the
// base64 of Basic credentials (git and most HTTP clients put a token there
// as user:TOKEN), and reports whether the placeholder was there.
func replaceIn(key, v string, s *Secret) (string, bool) {
	if strings.Contains(v, s.Placeholder) {
		return strings.ReplaceAll(v, s.Placeholder, string(s.Value)), true
	}
	if k := http.CanonicalHeaderKey(key); k != "Authorization" && k != "Proxy-Authorization" {
		return v, false
	}
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return v, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil || !strings.Contains(string(raw), s.Placeholder) {
		return v, false
	}
	plain := strings.ReplaceAll(string(raw), s.Placeholder, string(s.Value))
	return scheme + " " + base64.StdEncoding.EncodeToString([]byte(plain)), true
}

// writeRequest writes req as HTTP/1.1 with its own framing: the header
// block is flushed before the body is read, so a client waiting for
// "100 Continue" (curl, for bodies over 1 MiB) gets it from the server
// instead of a deadlock; a chunked body is chunked again, trailers included.
// (http.Request.Write would add a User-Agent and hold the headers back.)
func writeRequest(w io.Writer, req *http.Request) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s %s %s\r\n", req.Method, req.RequestURI, req.Proto)
	if req.Host != "" {
		fmt.Fprintf(bw, "Host: %s\r\n", req.Host)
	}
	hadLength := req.Header.Get("Content-Length") != ""
	req.Header.Del("Content-Length")
	req.Header.Del("Transfer-Encoding")
	keys := make([]string, 0, len(req.Header))
	for k := range req.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range req.Header[k] {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	chunked := slices.Contains(req.TransferEncoding, "chunked")
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0 || hadLength:
		fmt.Fprintf(bw, "Content-Length: %d\r\n", max(req.ContentLength, 0))
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return err
	}
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	defer req.Body.Close()
	if !chunked {
		_, err := io.Copy(w, req.Body)
		return err
	}
	cw := httputil.NewChunkedWriter(w)
	if _, err := io.Copy(cw, req.Body); err != nil {
		return err
	}
	if err := cw.Close(); err != nil { // the last chunk, "0\r\n"
		return err
	}
	for k, vs := range req.Trailer {
		for _, v := range vs {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	bw.WriteString("\r\n")
	return bw.Flush()
}
