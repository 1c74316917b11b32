package confine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loftd/loftd/internal/testenv"
	"golang.org/x/sys/unix"
)

// auditEnv makes this test binary, re-run as a child, load an audit-mode
// filter that lacks getcwd, call it, and print its pid.
const auditEnv = "_LOFTD_TEST_CONFINE_AUDIT"

func TestMain(m *testing.M) {
	if os.Getenv(auditEnv) != "" {
		p := Policy{Name: "audit-test", Syscalls: slices.DeleteFunc(AllowList(GoRuntime, FileIO), func(s string) bool { return s == "getcwd" })}
		if _, err := Apply(Audit, p, nil); err != nil {
			fmt.Println("apply:", err)
			os.Exit(1)
		}
		_, err := unix.Getcwd(make([]byte, 256))
		fmt.Printf("%d %v\n", os.Getpid(), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    Mode
		wantErr bool
	}{{"", Enforce, false}, {"enforce", Enforce, false}, {"audit", Audit, false}, {"off", Off, false}, {"on", "", true}, {"Enforce", "", true}} {
		got, err := ParseMode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAllowList(t *testing.T) {
	got := AllowList(Group{"a", []string{"read", "write"}}, Group{"b", []string{"close", "read"}})
	if want := []string{"close", "read", "write"}; !slices.Equal(got, want) {
		t.Errorf("AllowList = %v, want %v", got, want)
	}
}

// TestFilterAssembles: every group's names are known system calls on
// this architecture and the programs assemble in every mode.
func TestFilterAssembles(t *testing.T) {
	all := AllowList(GoRuntime, FileIO, Children, Sockets, KrunVMM, KrunNet)
	for _, m := range []Mode{Enforce, Audit} {
		f, err := Filter(m, Policy{Name: "t", Syscalls: all, NoNewNamespaces: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Policy.Assemble(); err != nil {
			t.Errorf("Filter(%s) does not assemble: %v", m, err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	text := "Name:\tqemu-system-x86\nUid:\t1879113728\t1879113728\t1879113728\t1879113728\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t2\n"
	got, err := ParseStatus(text)
	if want := (ProcStatus{UID: 1879113728, NoNewPrivs: true, Seccomp: 2, Filters: 2}); err != nil || got != want {
		t.Errorf("ParseStatus = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseStatus("Name:\tx\n"); err == nil {
		t.Errorf("ParseStatus without the fields: no error")
	}
}

func TestReadDenials(t *testing.T) {
	log := `[ 10.1] audit: type=1326 audit(1765000000.100:7): auid=4294967295 uid=0 gid=0 ses=4294967295 subj=unconfined pid=4242 comm="loftd" exe="/usr/bin/loftd" sig=0 arch=c000003e syscall=79 compat=0 ip=0x4a1b2c code=0x7ffc0000
[ 10.2] audit: type=1326 audit(1765000000.101:8): auid=4294967295 uid=0 gid=0 ses=4294967295 subj=unconfined pid=4242 comm="loftd" exe="/usr/bin/loftd" sig=0 arch=c000003e syscall=79 compat=0 ip=0x4a1b2c code=0x7ffc0000
[ 10.3] audit: type=1326 audit(1765000000.102:9): auid=4294967295 uid=0 gid=0 ses=4294967295 subj=unconfined pid=99 comm="other" exe="/bin/x" sig=0 arch=c000003e syscall=0 compat=0 ip=0x1 code=0x7ffc0000
type=1326 audit(1765000000.103:10): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=4242 comm="loftd" exe="/usr/bin/loftd" sig=0 arch=c000003e syscall=9999 compat=0 ip=0x1 code=0x7ffc0000
unrelated line`
	ds, err := ReadDenials(strings.NewReader(log), "loftd")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Missing(ds), []string{"#9999", "getcwd"}; !slices.Equal(got, want) {
		t.Errorf("Missing(ReadDenials(comm loftd)) = %v, want %v", got, want)
	}
	if ds[0].PID != 4242 {
		t.Errorf("pid %d, want 4242", ds[0].PID)
	}
}

// TestAuditLogsToKernel: in audit mode a call outside the allow-list
// works and the kernel logs it, where ReadDenials (and so `loftd internal
// seccomp-audit`) finds it by pid.
func TestAuditLogsToKernel(t *testing.T) {
	testenv.RequireRoot(t) // /dev/kmsg
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), auditEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	pidText, errText, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if errText != "<nil>" {
		t.Fatalf("getcwd in audit mode: %s, want it allowed", errText)
	}
	pid, _ := strconv.Atoi(pidText)
	var ds []Denial
	for range 50 { // the kernel log is written asynchronously (kauditd)
		if ds, err = ReadKmsg(); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(ds, func(d Denial) bool { return d.PID == pid && d.Syscall == "getcwd" }) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("no seccomp record of getcwd by pid %d in /dev/kmsg (%d records)", pid, len(ds))
}

// TestApplyOffIsNoop: mode off touches nothing.
func TestApplyOffIsNoop(t *testing.T) {
	a, err := Apply(Off, Policy{Name: "t"}, nil)
	if err != nil || a.Seccomp || a.Landlock || a.NoNewPrivs {
		t.Errorf("Apply(off) = %+v, %v; want nothing applied", a, err)
	}
	if errors.Is(err, unix.EPERM) {
		t.Fail()
	}
}
