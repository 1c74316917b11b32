package launch

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestEgressNetworkJSON pins the egress network's part of the plan (every
// field of Egress but the interception, which TestInterceptJSON pins): the
// netstack reads it in another process.
func TestEgressNetworkJSON(t *testing.T) {
	in := &Network{Mode: NetworkEgress,
		Publish: []Publish{{HostIP: "127.0.0.1", HostFirst: 8080, HostLast: 8080, GuestFirst: 80, GuestLast: 80, Proto: TCP}},
		Egress:  &Egress{Allow: []string{"10.1.0.0/16", "example.com", "*.example.org"}, AllowHost: true, Exe: "/usr/local/bin/loftd"}}
	const want = `{"mode":"egress","publish":[{"host_ip":"127.0.0.1","host_first":8080,"host_last":8080,"guest_first":80,"guest_last":80,"proto":"tcp"}],"egress":{"allow":["10.1.0.0/16","example.com","*.example.org"],"allow_host":true,"exe":"/usr/local/bin/loftd"}}`
	got, err := json.Marshal(in)
	if err != nil || string(got) != want {
		t.Fatalf("json.Marshal(Network) =\n%s, %v\nwant\n%s", got, err, want)
	}
	var back Network
	if err := json.Unmarshal(got, &back); err != nil || !reflect.DeepEqual(&back, in) {
		t.Errorf("round trip = %+v, %v", back, err)
	}
}
