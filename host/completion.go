package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"

	"github.com/loftd/loftd/host/session"
	"github.com/loftd/loftd/internal/parts"
	"github.com/spf13/pflag"
)

// Shell completion is two parts: `loftd completion SHELL` prints a small
// script per shell, and the script asks the hidden `loftd __complete
// WORDS…` for the candidates of the last word. The candidates come from
// the commands' own flag sets (each command is run with flag capture on,
// which stops it right after it has declared its flags), so completion
// cannot drift from the flags.

// subcommands are the commands that dispatch on their first argument.
// TestCompletionSubcommands checks each is real.
var subcommands = map[string][]string{"image": {"build", "import"}}

// errFlagsCaptured stops a command once parse has handed over its flags.
var errFlagsCaptured = errors.New("flags captured for completion")

func runCompletion(e *env, args []string) error {
	fs := e.newFlagSet("completion", e.Prog+" completion bash|zsh|fish")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return session.Usagef("completion: want one shell (bash, zsh or fish), got %q", fs.Args())
	}
	script, ok := completionScripts[fs.Arg(0)]
	if !ok {
		return session.Usagef("completion: unknown shell %q (want bash, zsh or fish)", fs.Arg(0))
	}
	fn := strings.NewReplacer("-", "_", ".", "_").Replace(e.Prog)
	_, err := io.WriteString(e.Stdout, strings.NewReplacer("@PROG@", e.Prog, "@FUNC@", fn).Replace(script))
	return err
}

// runComplete prints, one a line, the candidates for the last of args
// (the word under the cursor, "" for a new one); the words before it are
// the command line after the program name.
func runComplete(e *env, args []string) error {
	for _, c := range complete(e, args) {
		fmt.Fprintln(e.Stdout, c)
	}
	return nil
}

func complete(e *env, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, prev := words[len(words)-1], words[:len(words)-1]
	run := func(e *env, args []string) error { _, err := e.session(args); return err }
	var args, rest []string
	switch {
	case len(prev) == 0 && !strings.HasPrefix(cur, "-"):
		var names []string
		for _, c := range commands() {
			if !c.hidden {
				names = append(names, c.name)
			}
		}
		return withPrefix(names, cur)
	case len(prev) > 0 && !strings.HasPrefix(prev[0], "-"):
		cmd, ok := e.lookup(prev[0])
		if !ok || cmd.hidden {
			return nil
		}
		run, rest = cmd.run, prev[1:]
		if subs := subcommands[cmd.name]; subs != nil {
			if len(prev) == 1 {
				return withPrefix(subs, cur)
			}
			args, rest = prev[1:2], prev[2:]
		}
	default:
		rest = prev
	}
	if slices.Contains(rest, "--") {
		return nil // the guest's command line: the shell's own completion
	}
	fs := flagsOf(e, run, args)
	if fs == nil {
		return nil
	}
	if len(rest) > 0 {
		if f := valueFlag(fs, rest[len(rest)-1]); f != nil {
			return flagValues(e, f, cur, "")
		}
	}
	if !strings.HasPrefix(cur, "-") {
		return nil
	}
	if name, _, ok := strings.Cut(cur, "="); ok && strings.HasPrefix(name, "--") {
		if f := fs.Lookup(name[2:]); f != nil {
			return flagValues(e, f, cur, name+"=")
		}
		return nil
	}
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		names = append(names, "--"+f.Name)
		if f.Shorthand != "" {
			names = append(names, "-"+f.Shorthand)
		}
	})
	return withPrefix(append(names, "--help"), cur)
}

// flagsOf runs a command with flag capture on: it returns the flag set the
// command declared, before the command did anything else.
func flagsOf(e *env, run func(*env, []string) error, args []string) *pflag.FlagSet {
	var got *pflag.FlagSet
	c := *e
	c.Stdout, c.Stderr = io.Discard, io.Discard
	c.captureFlags = func(fs *pflag.FlagSet) { got = fs }
	_ = run(&c, args)
	return got
}

// valueFlag is the flag word names when the next word is its value
// ("--image" or "-p", not "--image=x" nor a boolean).
func valueFlag(fs *pflag.FlagSet, word string) *pflag.Flag {
	var f *pflag.Flag
	switch {
	case strings.HasPrefix(word, "--") && !strings.Contains(word, "="):
		f = fs.Lookup(word[2:])
	case len(word) == 2 && word[0] == '-':
		f = fs.ShorthandLookup(word[1:])
	}
	if f == nil || f.Value.Type() == "bool" || f.NoOptDefVal != "" {
		return nil
	}
	return f
}

// flagValues completes a flag's value; only --image knows its values (the
// image store's references). The others get the shell's file completion.
func flagValues(e *env, f *pflag.Flag, cur, prefix string) []string {
	if f.Name != "image" {
		return nil
	}
	var out []string
	for _, ref := range imageRefs(e) {
		out = append(out, prefix+ref)
	}
	return withPrefix(out, cur)
}

// imageRefs lists the references `loftd images` prints. It runs loftd
// itself: images may re-execute into the keep-id namespace, which this
// process must not do in the middle of a completion.
func imageRefs(e *env) []string {
	out, err := listImages()
	if err != nil {
		return nil
	}
	var refs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for first := true; sc.Scan(); first = false {
		fields := strings.Fields(sc.Text())
		if first || len(fields) == 0 {
			continue // the REFERENCE header
		}
		for _, r := range strings.Split(fields[0], ",") {
			if r != "" && r != "<none>" {
				refs = append(refs, r)
			}
		}
	}
	return refs
}

// listImages is `loftd images`' output (tests swap it).
var listImages = func() ([]byte, error) {
	exe, err := parts.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(exe, "images").Output()
}

func withPrefix(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}

// completionScripts call `@PROG@ __complete` with the words up to the
// cursor. @PROG@ is the program, @FUNC@ the program as a function name.
var completionScripts = map[string]string{
	"bash": `# bash completion for @PROG@ (generated by '@PROG@ completion bash').
# The candidates come from '@PROG@ __complete WORDS…', so they follow this
# build's flags.
_@FUNC@_complete() {
    local line=${COMP_LINE:0:COMP_POINT} cur i
    local -a words
    read -ra words <<<"$line"
    [[ $line == *[[:space:]] || ${#words[@]} -eq 0 ]] && words+=("")
    cur=${words[${#words[@]}-1]}
    local IFS=$'\n'
    COMPREPLY=($("${words[0]:-@PROG@}" __complete "${words[@]:1}" 2>/dev/null))
    # bash splits words at = and : (COMP_WORDBREAKS) and replaces only the
    # part after the last one: drop what comes before it.
    local pre=${cur%"${cur##*[=:]}"}
    if [[ -n $pre ]]; then
        for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]#"$pre"}; done
    fi
}
complete -o default -F _@FUNC@_complete @PROG@
`,
	"zsh": `#compdef @PROG@
# zsh completion for @PROG@ (generated by '@PROG@ completion zsh').
# The candidates come from '@PROG@ __complete WORDS…', so they follow this
# build's flags.
_@FUNC@() {
    local -a cands
    cands=("${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    cands=(${cands:#})
    if (( ${#cands} )); then
        compadd -Q -- "${cands[@]}"
    else
        _files
    fi
}
if [[ "${funcstack[1]}" == "_@FUNC@" ]]; then
    _@FUNC@ "$@"
else
    compdef _@FUNC@ @PROG@
fi
`,
	"fish": `# fish completion for @PROG@ (generated by '@PROG@ completion fish').
# The candidates come from '@PROG@ __complete WORDS…', so they follow this
# build's flags.
function __@FUNC@_complete
    set -l words (commandline -opc) (commandline -ct)
    $words[1] __complete $words[2..-1] 2>/dev/null
end
complete -c @PROG@ -a '(__@FUNC@_complete)'
`,
}
