package launch

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestInterceptJSON pins the interception part of the plan (every field
// set): the netstack reads it in another process, and a secret's value is
// never one of its fields.
func TestInterceptJSON(t *testing.T) {
	in := &Intercept{CADir: "/s/workspaces/proj-1a2b", ExtraCA: []string{"/etc/corp.pem"},
		Secrets: []Secret{{Name: "GH", File: "/home/u/.gh-token", Placeholder: "loftd-placeholder-00112233445566778899aabbccddeeff",
			Hosts: []string{"api.github.com", "*.github.com"}}}}
	const want = `{"ca_dir":"/s/workspaces/proj-1a2b","extra_ca":["/etc/corp.pem"],"secrets":[{"name":"GH","file":"/home/u/.gh-token","placeholder":"loftd-placeholder-00112233445566778899aabbccddeeff","hosts":["api.github.com","*.github.com"]}]}`
	got, err := json.Marshal(in)
	if err != nil || string(got) != want {
		t.Fatalf("json.Marshal(Intercept) =\n%s, %v\nwant\n%s", got, err, want)
	}
	var back Intercept
	if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(&back, in) {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}
