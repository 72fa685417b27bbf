package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/underlink/underlink/api/cniconf"
	"github.com/underlink/underlink/cni/ipam/protocol"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/netbed"
)

// build compiles the relay and underlink-ipam-full into one directory, as make build does.
func build(t *testing.T) (relay, full string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("the relay is C: install gcc (%v)", err)
	}
	dir := t.TempDir()
	if err := netbed.BuildCommands(dir, "underlink-ipam"); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "underlink-ipam"), filepath.Join(dir, "underlink-ipam-full")
}

// TestCFlagsAreMakes: the tests build the relay with the flags make build and make images use.
func TestCFlagsAreMakes(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join(test.RepoRoot(), "hack", "make", "c.mk"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^C_CFLAGS := (.+)$`).FindSubmatch(mk)
	if m == nil || string(m[1]) != strings.Join(netbed.CFlags, " ") {
		t.Errorf("hack/make/c.mk C_CFLAGS %q, netbed.CFlags %q: keep them the same", m, netbed.CFlags)
	}
}

// agent serves a unix socket and records each request; answer says what to send back.
type agent struct {
	socket string
	mu     sync.Mutex
	seen   []*http.Request
	bodies [][]byte
	answer func(w http.ResponseWriter, r *http.Request)
}

func serve(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *agent {
	t.Helper()
	dir, err := os.MkdirTemp("", "relay") // a short path: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &agent{socket: filepath.Join(dir, "agent.sock"), answer: answer}
	l, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.seen, a.bodies = append(a.seen, r), append(a.bodies, body)
		a.mu.Unlock()
		a.answer(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return a
}

func (a *agent) paths() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range a.seen {
		out = append(out, r.URL.Path)
	}
	return out
}

// cniAnswer answers the relay's call with what a plugin printed and its exit status.
func cniAnswer(exit, out string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != protocol.PathCNI {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set(protocol.HeaderExit, exit)
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		_, _ = io.WriteString(w, out)
	}
}

// olderAgent is an agent without protocol.CNI: it answers the plugin process's own calls.
func olderAgent(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case protocol.PathAllocate:
		_, _ = io.WriteString(w, `{"ips":[{"address":"172.110.1.5/24","gateway":"172.110.1.1","pool":"p"}]}`)
	case protocol.PathRelease:
		_, _ = io.WriteString(w, `{}`)
	default:
		http.NotFound(w, r)
	}
}

type call struct {
	command, stdin string
	env            []string
}

type outcome struct {
	stdout string
	exit   int
}

func run(t *testing.T, bin string, c call) outcome {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"CNI_COMMAND=" + c.command, "CNI_CONTAINERID=c1", "CNI_NETNS=/var/run/netns/p1", "CNI_IFNAME=eth0",
		"CNI_PATH=" + filepath.Dir(bin), "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p1;K8S_POD_UID=u1"}, c.env...)
	cmd.Stdin = strings.NewReader(c.stdin)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return outcome{out.String(), 0}
	case errors.As(err, &ee):
		return outcome{out.String(), ee.ExitCode()}
	default:
		t.Fatal(err)
		return outcome{}
	}
}

func conf(socket, extra string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","type":"macvlan","ipam":{"type":"underlink-ipam","socket":%q,"ipv4Pools":["p"]%s}}`, socket, extra)
}

// TestRelayHandsAddAndDelToTheAgent: the call travels whole, and the agent's answer is the relay's.
func TestRelayHandsAddAndDelToTheAgent(t *testing.T) {
	relay, _ := build(t)
	for _, tc := range []struct {
		command, exit, out string
	}{
		{"ADD", "0", `{"cniVersion":"1.1.0","ips":[{"address":"172.110.1.5/24"}]}`},
		{"ADD", "1", `{"code":100,"msg":"pool p is exhausted"}`},
		{"DEL", "0", ""},
		// A DEL needs no probe: it is handed over whatever the config's probe switches say.
		{"DEL", "0", "detectGateway"},
	} {
		extra := ""
		if tc.out == "detectGateway" {
			tc.out, extra = "", `,"detectGateway":true,"detectIPConflict":true`
		}
		a := serve(t, cniAnswer(tc.exit, tc.out))
		stdin := conf(a.socket, extra)
		got := run(t, relay, call{command: tc.command, stdin: stdin})
		if want := (outcome{tc.out, int(tc.exit[0] - '0')}); got != want {
			t.Errorf("%s answered with CNI-Exit %s: relay gave %+v, want %+v", tc.command, tc.exit, got, want)
		}
		if len(a.seen) != 1 || a.seen[0].Method != "POST" || a.seen[0].URL.Path != protocol.PathCNI {
			t.Fatalf("%s: the agent saw %v, want one POST %s", tc.command, a.paths(), protocol.PathCNI)
		}
		h := a.seen[0].Header
		for k, want := range map[string]string{protocol.HeaderCommand: tc.command, protocol.HeaderContainerID: "c1", protocol.HeaderNetns: "/var/run/netns/p1",
			protocol.HeaderIfName: "eth0", protocol.HeaderPath: filepath.Dir(relay), protocol.HeaderArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p1;K8S_POD_UID=u1"} {
			if h.Get(k) != want {
				t.Errorf("%s: header %s = %q, want %q", tc.command, k, h.Get(k), want)
			}
		}
		if string(a.bodies[0]) != stdin {
			t.Errorf("%s: body %q, want the network config %q", tc.command, a.bodies[0], stdin)
		}
	}
}

// TestRelayElseIsThePluginProcess: whatever the relay does not hand over gives exactly what
// underlink-ipam-full gives for the same call, and the agent sees the plugin process's own calls.
func TestRelayElseIsThePluginProcess(t *testing.T) {
	relay, full := build(t)
	older := serve(t, olderAgent)
	missing := filepath.Join(filepath.Dir(older.socket), "nobody.sock")
	for _, tc := range []struct {
		name string
		c    call
		// a is the agent the call reaches, and wantPaths what it must see from the relay's run.
		a         *agent
		wantPaths string
	}{
		{"an agent older than /v1/cni", call{command: "ADD", stdin: conf(older.socket, "")}, older, "/v1/cni /v1/allocate"},
		{"DEL on an agent older than /v1/cni", call{command: "DEL", stdin: conf(older.socket, "")}, older, "/v1/cni /v1/release"},
		// The probe fails here (the pod's namespace does not exist) and the plugin gives the address back.
		{"ADD that probes for conflicts", call{command: "ADD", stdin: conf(older.socket, `,"detectIPConflict":true`)}, older, "/v1/allocate /v1/release"},
		{"ADD that probes the gateway", call{command: "ADD", stdin: conf(older.socket, `,"detectGateway":true`)}, older, "/v1/allocate /v1/release"},
		{"VERSION", call{command: "VERSION"}, nil, ""},
		{"CHECK", call{command: "CHECK", stdin: conf(older.socket, "")}, older, ""},
		{"no agent listening, ADD", call{command: "ADD", stdin: conf(missing, "")}, nil, ""},
		{"no agent listening, DEL (recorded for the agent)", call{command: "DEL", stdin: conf(missing, "")}, nil, ""},
		{"invalid JSON", call{command: "ADD", stdin: `{"cniVersion":"1.1.0","name":"n","ipam":{"type":"underlink-ipam",}`}, nil, ""},
		{"no ipam object", call{command: "ADD", stdin: `{"cniVersion":"1.1.0","name":"n","type":"macvlan"}`}, nil, ""},
		{"an escape in ipam.socket", call{command: "ADD", stdin: strings.Replace(conf(older.socket, ""), "/agent.sock", `\/agent.sock`, 1)}, older, "/v1/allocate"},
		{"relative ipam.socket", call{command: "ADD", stdin: conf("agent.sock", "")}, nil, ""},
		{"a misspelt ipam key", call{command: "ADD", stdin: conf(older.socket, `,"ipv4Pool":["p"]`)}, nil, ""},
		{"no CNI_NETNS on ADD", call{command: "ADD", stdin: conf(older.socket, ""), env: []string{"CNI_NETNS="}}, nil, ""},
		{"a line break in CNI_ARGS", call{command: "ADD", stdin: conf(older.socket, ""), env: []string{"CNI_ARGS=K8S_POD_NAME=p1\r\nX: y"}}, older, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.a != nil {
				tc.a.mu.Lock()
				tc.a.seen, tc.a.bodies = nil, nil
				tc.a.mu.Unlock()
			}
			got := run(t, relay, tc.c)
			if tc.a != nil {
				if paths := strings.Join(tc.a.paths(), " "); paths != tc.wantPaths {
					t.Errorf("the agent saw %q, want %q", paths, tc.wantPaths)
				}
			}
			// The journal of a recorded release lives beside the socket; start the plugin's own run afresh.
			_ = os.RemoveAll(protocol.JournalDir(missing))
			want := run(t, full, tc.c)
			if got != want {
				t.Errorf("relay gave %+v\nunderlink-ipam-full gives %+v", got, want)
			}
			if tc.name == "no agent listening, DEL (recorded for the agent)" {
				if got.exit != 0 {
					t.Errorf("DEL with no agent exited %d, want 0 with the release recorded", got.exit)
				}
			}
		})
	}
	_ = os.RemoveAll(protocol.JournalDir(missing))
}

// TestRelayDuplicateKeys reads the config as Go's decoder does: the last ipam object and the last
// socket count, and a socket key elsewhere is not the agent's.
func TestRelayDuplicateKeys(t *testing.T) {
	relay, _ := build(t)
	a := serve(t, cniAnswer("0", "ok"))
	stdin := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"n","socket":"/nope","ipam":{"socket":"/nope"},"args":{"ipam":{"socket":"/nope"}},
		"ipam":{"type":"underlink-ipam","socket":"/nope","nested":{"socket":"/nope","list":[1,-2.5e3,true,null,"x\"y"]},"socket":%q}}`, a.socket)
	if got := run(t, relay, call{command: "ADD", stdin: stdin}); got != (outcome{"ok", 0}) || len(a.paths()) != 1 {
		t.Errorf("relay gave %+v and the agent saw %v, want ok from one call", got, a.paths())
	}
}

// TestRelayTimeout: an agent that takes the call and never answers fails the ADD after
// ipam.timeoutSeconds with CNI's "try again later".
func TestRelayTimeout(t *testing.T) {
	relay, _ := build(t)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	a := serve(t, func(http.ResponseWriter, *http.Request) { <-block })
	start := time.Now()
	got := run(t, relay, call{command: "ADD", stdin: conf(a.socket, `,"timeoutSeconds":1`)})
	var e struct {
		Code uint   `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(got.stdout), &e); err != nil || got.exit != 1 || e.Code != 11 || !strings.Contains(e.Msg, a.socket) || !strings.Contains(e.Msg, "ipam.timeoutSeconds") {
		t.Errorf("relay gave %+v (%v), want CNI error 11 naming the socket and ipam.timeoutSeconds", got, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the ADD took %v with timeoutSeconds 1", d)
	}
}

// TestRelayDefaults: the relay's defaults are api/cniconf's.
func TestRelayDefaults(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(test.RepoRoot(), "cmd", "underlink-ipam", "main.c"))
	if err != nil {
		t.Fatal(err)
	}
	for def, want := range map[string]string{"DEFAULT_SOCKET": strconv.Quote(cniconf.DefaultAgentSocket), "DEFAULT_TIMEOUT_SECONDS": strconv.Itoa(cniconf.DefaultIPAMTimeoutSeconds),
		"MAX_BODY_BYTES": "(1 << 20)", "MAX_HEADER_BYTES": "(64 << 10)"} {
		m := regexp.MustCompile(`(?m)^#define ` + def + ` (.+)$`).FindSubmatch(src)
		if m == nil || string(m[1]) != want {
			t.Errorf("main.c: #define %s %q, want %s", def, m, want)
		}
	}
	if protocol.MaxBodyBytes != 1<<20 || protocol.MaxHeaderBytes != 64<<10 {
		t.Errorf("protocol's limits changed: update main.c's MAX_BODY_BYTES and MAX_HEADER_BYTES")
	}
}
