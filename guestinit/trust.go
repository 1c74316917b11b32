package guestinit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loftd/loftd/contract"
)

// caBundles are the CA bundle files images read (Go's crypto/x509 list,
// which is OpenSSL's, GnuTLS's and curl's defaults on each distribution).
// Several are links to one file; each real file is appended to once.
var caBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/tls/cacert.pem",                           // OpenELEC
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // Fedora, RHEL 7+
	"/etc/ssl/cert.pem",                                 // Alpine, LibreSSL
}

// anchors are where a distribution's own tool (update-ca-certificates,
// update-ca-trust) reads local CAs, so that a tool run later in the guest
// (installing ca-certificates rebuilds the bundle) keeps them.
var anchors = []string{
	"/usr/local/share/ca-certificates/loftd.crt", // Debian, Ubuntu, Alpine (".crt" only)
	"/etc/pki/ca-trust/source/anchors/loftd.pem", // Fedora, RHEL
}

// trustStep adds the host's CA certificates (contract.TrustPath: loftd's
// interception CA and --extra-ca) to the image's trust store.
func (e *enter) trustStep() Step {
	return Step{Desc: "add " + contract.TrustPath + " to the CA bundles", Do: e.addTrust}
}

// addTrust appends the certificates to every CA bundle the image has and
// drops them where its update tool looks. Node.js reads no system bundle,
// so NODE_EXTRA_CA_CERTS names them; an image without any bundle gets
// SSL_CERT_FILE (OpenSSL, Go), CURL_CA_BUNDLE and REQUESTS_CA_BUNDLE
// (Python requests) pointing at them. A variable the host passed wins.
func (e *enter) addTrust() error {
	certs, err := os.ReadFile(e.devPath(contract.TrustPath))
	if err != nil {
		return fmt.Errorf("read %s: %w", contract.TrustPath, err)
	}
	if !bytes.HasSuffix(certs, []byte("\n")) {
		certs = append(certs, '\n')
	}
	added := 0
	done := map[string]bool{}
	for _, b := range caBundles {
		real, ok := e.bundleFile(b)
		if !ok || done[real] {
			continue
		}
		done[real] = true
		if err := appendOnce(real, certs); err != nil {
			return fmt.Errorf("add the host's CAs to %s: %w", b, err)
		}
		added++
	}
	for _, a := range anchors {
		dir := e.devPath(filepath.Dir(a))
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if err := os.WriteFile(e.devPath(a), certs, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", a, err)
		}
	}
	e.setenvDefault("NODE_EXTRA_CA_CERTS", contract.TrustPath)
	if added == 0 {
		for _, name := range []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"} {
			e.setenvDefault(name, contract.TrustPath)
		}
	}
	return nil
}

// bundleFile is the regular file the bundle path b names, links
// followed, if it exists inside the image's /etc or /usr. A link that
// leads elsewhere (into /workspace, a host share) is not written through.
func (e *enter) bundleFile(b string) (string, bool) {
	real, err := filepath.EvalSymlinks(e.devPath(b))
	if err != nil {
		return "", false
	}
	rel, err := filepath.Rel(e.sys.SysRoot, real)
	if err != nil || !(strings.HasPrefix(rel, "etc/") || strings.HasPrefix(rel, "usr/")) {
		return "", false
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return real, true
}

// appendOnce appends certs to the bundle at path unless it already holds
// them (a guest booted again on the same root), after a newline if the
// bundle does not end with one.
func appendOnce(path string, certs []byte) error {
	have, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if bytes.Contains(have, certs) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if len(have) > 0 && have[len(have)-1] != '\n' {
		certs = append([]byte("\n"), certs...)
	}
	_, werr := f.Write(certs)
	return errors.Join(werr, f.Close())
}

// setenvDefault sets name=value in the workload's environment unless it
// is set already.
func (e *enter) setenvDefault(name, value string) {
	env := e.sys.Environ()
	for _, kv := range env {
		if strings.HasPrefix(kv, name+"=") {
			return
		}
	}
	e.sys.SetEnv(append(env, name+"="+value))
}
