package helper

import (
	"fmt"
	"log/slog"

	"github.com/loftd/loftd/egress/mitm"
	"github.com/loftd/loftd/launch"
)

// interceptor builds the netstack's TLS interception from the plan: the
// workspace's CA (the session made it), the real servers verified against
// the system's roots plus --extra-ca, and each secret's value read from its
// file here, in the netstack, so no value passes through the plan.
func interceptor(in *launch.Intercept, log *slog.Logger) (*mitm.Proxy, error) {
	ca, err := mitm.LoadCA(in.CADir)
	if err != nil {
		return nil, fmt.Errorf("netstack: %w", err)
	}
	extra, _, err := mitm.ExtraCAs(in.ExtraCA)
	if err != nil {
		return nil, fmt.Errorf("netstack: %w", err)
	}
	roots, err := mitm.Roots(extra)
	if err != nil {
		return nil, fmt.Errorf("netstack: %w", err)
	}
	var secrets []mitm.Secret
	for _, s := range in.Secrets {
		value, err := mitm.ReadSecretFile(s.Name, s.File)
		if err != nil {
			return nil, fmt.Errorf("netstack: %w", err)
		}
		sec, err := mitm.SecretWithPlaceholder(s.Name, value, s.Hosts, s.Placeholder)
		if err != nil {
			return nil, fmt.Errorf("netstack: %w", err)
		}
		secrets = append(secrets, sec)
	}
	return mitm.New(mitm.Config{CA: ca, Secrets: secrets, Roots: roots, Log: log})
}
