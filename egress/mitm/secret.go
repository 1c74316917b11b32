package mitm

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/loftd/loftd/egress"
)

// Secret is one secret the guest sees only as a placeholder. Its value is
// put into HTTP request headers by the host, on TLS connections to its
// hosts only.
type Secret struct {
	// Name is the guest environment variable that holds the placeholder.
	Name string
	// Value is the real secret (never logged, never sent to the guest).
	Value []byte
	// Placeholder is what the guest sees: random per run.
	Placeholder string
	// Hosts are the names the value may go to: exact names, or *.NAME for
	// every name below NAME (not NAME itself), lower case, no trailing dot.
	Hosts []string
}

// String never shows the value.
func (s Secret) String() string {
	return fmt.Sprintf("secret %s (to %s)", s.Name, strings.Join(s.Hosts, ", "))
}

// envName is what a guest environment variable name may be.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// NewSecret checks a secret's parts and gives it a fresh placeholder.
// value is the file's content: one trailing newline (echo TOKEN > FILE) is
// dropped; a value with any other control byte could split an HTTP header
// and is refused. hosts are names or *.NAME; at least one.
func NewSecret(name string, value []byte, hosts []string) (Secret, error) {
	p, err := newPlaceholder()
	if err != nil {
		return Secret{}, err
	}
	return SecretWithPlaceholder(name, value, hosts, p)
}

// placeholderRE is what newPlaceholder makes.
var placeholderRE = regexp.MustCompile(`^loftd-placeholder-[0-9a-f]{32}$`)

// SecretWithPlaceholder is NewSecret with the placeholder the parent chose
// (the netstack reads it from the plan, the value from the secret's file).
func SecretWithPlaceholder(name string, value []byte, hosts []string, placeholder string) (Secret, error) {
	if !placeholderRE.MatchString(placeholder) {
		return Secret{}, fmt.Errorf("secret %s: placeholder %q is not one loftd made", name, placeholder)
	}
	if !envName.MatchString(name) {
		return Secret{}, fmt.Errorf("secret %q: not an environment variable name (letters, digits, _; not starting with a digit)", name)
	}
	value = bytes.TrimSuffix(bytes.TrimSuffix(value, []byte("\n")), []byte("\r"))
	if len(value) == 0 {
		return Secret{}, fmt.Errorf("secret %s: the value is empty", name)
	}
	for _, b := range value {
		if b < 0x20 && b != '\t' || b == 0x7f {
			return Secret{}, fmt.Errorf("secret %s: the value has a control byte (0x%02x); a header value cannot carry it", name, b)
		}
	}
	if len(hosts) == 0 {
		return Secret{}, fmt.Errorf("secret %s: no host to send it to; name at least one (--secret %s=@FILE:api.example.com, or hosts = [...] in [secrets.%s])", name, name, name)
	}
	s := Secret{Name: name, Value: value}
	for _, h := range hosts {
		wild := strings.HasPrefix(h, "*.")
		n, ok := egress.CanonicalName(strings.TrimPrefix(h, "*."))
		if !ok || strings.Contains(n, "*") {
			return Secret{}, fmt.Errorf("secret %s: host %q is not a host name; want api.example.com or *.example.com", name, h)
		}
		if wild {
			n = "*." + n
		}
		s.Hosts = append(s.Hosts, n)
	}
	s.Placeholder = placeholder
	return s, nil
}

// ReadSecretFile reads a secret's value from path (the FILE of NAME=@FILE).
func ReadSecretFile(name, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return b, nil
}

// newPlaceholder is 128 random bits in a form every header and shell
// accepts, with a prefix that says what it is to whoever finds it.
func newPlaceholder() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("secret placeholder: %w", err)
	}
	return "loftd-placeholder-" + hex.EncodeToString(b[:]), nil
}

// AllowedTo reports whether the secret may go to server name.
func (s Secret) AllowedTo(name string) bool {
	n, ok := egress.CanonicalName(name)
	if !ok || strings.Contains(n, "*") {
		return false
	}
	for _, h := range s.Hosts {
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(n, "."+suffix) {
				return true
			}
		} else if n == h {
			return true
		}
	}
	return false
}
