package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// JournalDir is where underlink-ipam records the releases it could not hand to the agent: the
// directory "releases" beside the agent's socket (root-only, like the socket's own directory). The
// agent frees each recorded release when it serves again (cni/agent/service.Journal).
func JournalDir(socket string) string { return filepath.Join(filepath.Dir(socket), "releases") }

// JournalEntry is one recorded release: the DEL's request and the file that holds it.
type JournalEntry struct {
	Path    string
	Request Request
}

// journalName is the file of a release: one per sandbox and interface, so a DEL the runtime repeats
// rewrites its own record instead of adding another.
func journalName(req Request) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
				return r
			}
			return '_'
		}, s)
	}
	return clean(req.ContainerID) + "_" + clean(req.IfName) + ".json"
}

// RecordRelease writes req into dir, durably (written beside its name, synced, renamed, and the
// directory synced): once it returns nil the release survives the plugin and an agent restart.
func RecordRelease(dir string, req Request) error {
	if req.ContainerID == "" || req.IfName == "" {
		return errors.New("a release needs the sandbox (CNI_CONTAINERID) and the interface (CNI_IFNAME)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	final := filepath.Join(dir, journalName(req))
	tmp, err := os.CreateTemp(dir, ".release-")
	if err != nil {
		return fmt.Errorf("record the release in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("record the release in %s: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("record the release in %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("record the release in %s: %w", dir, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// RecordedReleases lists the releases recorded in dir, oldest name first; an entry that cannot be read
// is returned with an empty Request and the error joined, so the caller can set it aside.
func RecordedReleases(dir string) ([]JournalEntry, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []JournalEntry
	var errs []error
	for _, n := range names {
		b, err := os.ReadFile(n)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		e := JournalEntry{Path: n}
		if err == nil {
			err = json.Unmarshal(b, &e.Request)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}
