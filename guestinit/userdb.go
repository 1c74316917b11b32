package guestinit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// dbFile is one colon-separated account file (/etc/passwd, /etc/group,
// /etc/shadow) as lines: comments, blank lines and entries the guest init
// does not touch are written back byte for byte.
type dbFile struct {
	lines   []string
	existed bool
	changed bool
}

func parseDB(data []byte, existed bool) *dbFile {
	f := &dbFile{existed: existed}
	s := strings.TrimSuffix(string(data), "\n")
	if s != "" {
		f.lines = strings.Split(s, "\n")
	}
	return f
}

// bytes renders f with a trailing newline after every line (an image's
// file without one gets it, so an appended entry starts on its own line).
func (f *dbFile) bytes() []byte {
	if len(f.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(f.lines, "\n") + "\n")
}

// find returns the index and fields of the first entry whose field col
// equals value, or -1.
func (f *dbFile) find(col int, value string) (int, []string) {
	for i, l := range f.lines {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			continue // NIS compat lines name no local entry
		}
		fields := strings.Split(l, ":")
		if col < len(fields) && fields[col] == value {
			return i, fields
		}
	}
	return -1, nil
}

func (f *dbFile) set(i int, fields []string) {
	f.lines[i] = strings.Join(fields, ":")
	f.changed = true
}

func (f *dbFile) add(fields ...string) {
	f.lines = append(f.lines, strings.Join(fields, ":"))
	f.changed = true
}

// userDB is the guest root's account database.
type userDB struct {
	passwd, group, shadow *dbFile
}

// account is the guest user as the workload sees it.
type account struct {
	Name       string
	UID, GID   int
	Home       string
	Shell      string
	Groups     []int // supplementary gids
	OldUID     int   // the entry's uid before it was renumbered, else UID
	OldGID     int
	HomeExists bool // set by the caller after looking
}

// Passwd columns.
const (
	pwName = iota
	pwPassword
	pwUID
	pwGID
	pwGecos
	pwHome
	pwShell
)

// noLogin names shells that refuse a login: an image user with one gets
// the default shell instead, or the login shell would exit at once.
var noLogin = []string{"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"}

// ensureUser makes name (uid:gid) an account in db and returns it. Never a
// second entry for one uid: an image entry with that uid is reused as it
// is (its name, home and shell: an image built around its own user keeps
// working); else an entry named name at another uid is renumbered to uid
// (its home is chowned by the caller); else a new entry is added with home
// /home/NAME. shellOK reports whether a shell exists in the guest root.
func ensureUser(db *userDB, name string, uid, gid int, shellOK func(string) bool) (account, error) {
	u, g := strconv.Itoa(uid), strconv.Itoa(gid)
	a := account{Name: name, UID: uid, GID: gid, OldUID: uid, OldGID: gid}
	if !db.passwd.existed {
		// An image without /etc/passwd (busybox): root gets its entry too,
		// so whoami and ls -l name it.
		db.passwd.add("root", "x", "0", "0", "root", "/root", "/bin/sh")
	}
	if i, f := db.passwd.find(pwUID, u); i >= 0 {
		f = pad(f, 7)
		a.Name, a.Home, a.Shell = f[pwName], f[pwHome], f[pwShell]
	} else if i, f := db.passwd.find(pwName, name); i >= 0 {
		f = pad(f, 7)
		old, err := strconv.Atoi(f[pwUID])
		if err != nil {
			return a, fmt.Errorf("/etc/passwd: %s has uid %q", name, f[pwUID])
		}
		a.OldUID = old
		if n, err := strconv.Atoi(f[pwGID]); err == nil {
			a.OldGID = n
		}
		f[pwUID], f[pwGID] = u, g
		db.passwd.set(i, f)
		a.Home, a.Shell = f[pwHome], f[pwShell]
	} else {
		a.Home = "/home/" + name
		a.Shell = defaultLoginShell(shellOK)
		db.passwd.add(name, "x", u, g, "", a.Home, a.Shell)
	}
	if a.Home == "" {
		a.Home = "/home/" + a.Name
	}
	if a.Shell == "" || slices.Contains(noLogin, a.Shell) || !shellOK(a.Shell) {
		a.Shell = defaultLoginShell(shellOK)
	}
	ensurePrimaryGroup(db.group, a.Name, gid, a.OldGID)
	ensureShadow(db.shadow, a.Name)
	return a, nil
}

// ensurePrimaryGroup gives gid a group: the image's group with that gid
// as it is, else the group named name renumbered from oldGID, else a new
// group named name.
func ensurePrimaryGroup(group *dbFile, name string, gid, oldGID int) {
	if !group.existed {
		group.add("root", "x", "0", "")
	}
	if i, _ := group.find(2, strconv.Itoa(gid)); i >= 0 {
		return
	}
	if i, f := group.find(0, name); i >= 0 && f[2] == strconv.Itoa(oldGID) {
		f = pad(f, 4)
		f[2] = strconv.Itoa(gid)
		group.set(i, f)
		return
	}
	group.add(uniqueGroupName(group, name), "x", strconv.Itoa(gid), "")
}

// ensureShadow gives name a locked shadow entry when it has none: no
// password login, and nothing sudo could check.
func ensureShadow(shadow *dbFile, name string) {
	if i, _ := shadow.find(0, name); i >= 0 {
		return
	}
	if !shadow.existed {
		if i, _ := shadow.find(0, "root"); i < 0 && name != "root" {
			shadow.add("root", "*", "", "0", "99999", "7", "", "", "")
		}
	}
	shadow.add(name, "!", "", "0", "99999", "7", "", "", "")
}

// supplementaryGroup returns the gid of the group that gives name access
// to a device owned by devGID, adding name to its members. A device owned
// by root's group (devtmpfs without udev) gets the group called want,
// created with a free system gid when missing; the caller then gives the
// device to it (mode 0660).
func supplementaryGroup(group *dbFile, want string, devGID int, name string) int {
	i, f := -1, []string(nil)
	if devGID != 0 {
		i, f = group.find(2, strconv.Itoa(devGID))
		if i < 0 {
			group.add(uniqueGroupName(group, want), "x", strconv.Itoa(devGID), name)
			return devGID
		}
	} else if i, f = group.find(0, want); i < 0 {
		gid := freeSystemGID(group)
		group.add(want, "x", strconv.Itoa(gid), name)
		return gid
	}
	f = pad(f, 4)
	gid, _ := strconv.Atoi(f[2])
	members := strings.FieldsFunc(f[3], func(r rune) bool { return r == ',' })
	if !slices.Contains(members, name) {
		f[3] = strings.Join(append(members, name), ",")
		group.set(i, f)
	}
	return gid
}

// memberGroups returns the gids of the groups that list name as a member
// (what initgroups(3) gives a login), except gid itself.
func memberGroups(group *dbFile, name string, gid int) []int {
	var gids []int
	for _, l := range group.lines {
		f := pad(strings.Split(l, ":"), 4)
		if strings.HasPrefix(l, "#") || !slices.Contains(strings.Split(f[3], ","), name) {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g != gid && !slices.Contains(gids, g) {
			gids = append(gids, g)
		}
	}
	return gids
}

// freeSystemGID is the highest gid below 1000 no group uses (as
// addgroup --system picks them).
func freeSystemGID(group *dbFile) int {
	for gid := 999; gid > 100; gid-- {
		if i, _ := group.find(2, strconv.Itoa(gid)); i < 0 {
			return gid
		}
	}
	return 999
}

// uniqueGroupName is name, or name with a number when a group of that name
// exists already (with another gid).
func uniqueGroupName(group *dbFile, name string) string {
	n := name
	for k := 2; ; k++ {
		if i, _ := group.find(0, n); i < 0 {
			return n
		}
		n = name + strconv.Itoa(k)
	}
}

// defaultLoginShell is bash when the image has it, else sh.
func defaultLoginShell(shellOK func(string) bool) string {
	if shellOK("/bin/bash") {
		return "/bin/bash"
	}
	return "/bin/sh"
}

func pad(f []string, n int) []string {
	for len(f) < n {
		f = append(f, "")
	}
	return f
}
