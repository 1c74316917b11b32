package libkrun

import (
	"testing"

	"github.com/loftd/loftd/libkrun/krundouble"
)

// The test double (libkrun/krundouble) is libkrun's symbols in C, recording
// every call; these wrap it for this package's tests.

func buildDouble(t testing.TB, hide ...string) string { return krundouble.Build(t, hide...) }
func recordCalls(t testing.TB) string                 { return krundouble.Record(t) }
func calls(t testing.TB, log string) []string         { return krundouble.Calls(t, log) }
func compareCalls(t testing.TB, what string, got, want []string) {
	t.Helper()
	krundouble.Compare(t, what, got, want)
}

// openDouble builds and opens the double, and points its call log at a
// fresh file, whose path it returns.
func openDouble(t *testing.T, hide ...string) (*Lib, string) {
	t.Helper()
	l, err := Open(buildDouble(t, hide...))
	if err != nil {
		t.Fatalf("Open(double) = %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l, recordCalls(t)
}
