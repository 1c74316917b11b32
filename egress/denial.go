package egress

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Denial is one refused connection or name. It is an error, so the TLS
// interceptor can return it.
type Denial struct {
	Proto Proto `json:"proto"`
	// Name is the name asked for or announced (SNI, Host), "" if none.
	Name string `json:"name,omitempty"`
	// Addr is the destination address, "" for a refused name.
	Addr   string `json:"addr,omitempty"`
	Port   uint16 `json:"port,omitempty"`
	Reason Reason `json:"reason"`
}

func (d *Denial) Error() string { return "egress denied: " + d.target() + ": " + string(d.Reason) }

// target is what was refused: name (addr) port/proto.
func (d *Denial) target() string {
	var s string
	switch {
	case d.Name != "" && d.Addr != "":
		s = d.Name + " (" + d.Addr + ")"
	case d.Name != "":
		s = d.Name
	default:
		s = d.Addr
	}
	if d.Port != 0 {
		s += " port " + strconv.Itoa(int(d.Port))
	}
	return s + "/" + string(d.Proto)
}

// Log counts denials by what was refused and why. Safe for concurrent
// use.
type Log struct {
	mu     sync.Mutex
	counts map[Denial]int
	order  []Denial
	// OnDenial, when set, sees each denial as it is added (the netstack
	// writes it to the task's denial file and, under --debug, logs it).
	OnDenial func(Denial)
	// Truncated: the denial file stopped at its bound (a Truncated
	// line), so the counts are lower bounds.
	Truncated bool
}

// Truncated is the line that ends a denial file at its bound.
const truncatedLine = `{"truncated":true}`

// WriteTruncated ends a denial file that reached its bound.
func WriteTruncated(w io.Writer) error {
	_, err := io.WriteString(w, truncatedLine+"\n")
	return err
}

// Add records d.
func (l *Log) Add(d Denial) {
	l.mu.Lock()
	if l.counts == nil {
		l.counts = map[Denial]int{}
	}
	if l.counts[d] == 0 {
		l.order = append(l.order, d)
	}
	l.counts[d]++
	cb := l.OnDenial
	l.mu.Unlock()
	if cb != nil {
		cb(d)
	}
}

// Total is the number of denials.
func (l *Log) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.counts {
		n += c
	}
	return n
}

// Summary is the one line printed on stderr at the end of a run that
// had denials ("" when there were none): the count and the first few
// distinct targets, most frequent first.
func (l *Log) Summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.order) == 0 {
		return ""
	}
	ds := slices.Clone(l.order)
	slices.SortStableFunc(ds, func(a, b Denial) int { return l.counts[b] - l.counts[a] })
	total := 0
	for _, c := range l.counts {
		total += c
	}
	const shown = 5
	var parts []string
	for _, d := range ds[:min(len(ds), shown)] {
		p := d.target() + ": " + string(d.Reason)
		if c := l.counts[d]; c > 1 {
			p += fmt.Sprintf(" (%d×)", c)
		}
		parts = append(parts, p)
	}
	if len(ds) > shown {
		parts = append(parts, fmt.Sprintf("and %d more", len(ds)-shown))
	}
	noun := "connections or names"
	if total == 1 {
		noun = "connection or name"
	}
	count := fmt.Sprint(total)
	if l.Truncated {
		count = "at least " + count
	}
	return fmt.Sprintf("loftd: egress policy blocked %s %s: %s (--debug lists each)", count, noun, strings.Join(parts, "; "))
}

// WriteJSON appends d to w as one JSON line (the denial file the netstack
// child writes and the session reads).
func WriteJSON(w io.Writer, d Denial) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadJSON adds every denial line of r to l. A torn last line (the
// writer was killed) is skipped.
func (l *Log) ReadJSON(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		if string(sc.Bytes()) == truncatedLine {
			l.mu.Lock()
			l.Truncated = true
			l.mu.Unlock()
			continue
		}
		var d Denial
		if json.Unmarshal(sc.Bytes(), &d) != nil {
			continue
		}
		l.Add(d)
	}
	return sc.Err()
}
