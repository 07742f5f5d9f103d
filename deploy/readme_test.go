package deploy_test

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// TestRunbooksAreREADMESections: every alert's runbook_url names a heading of the README, and
// so does every #link inside the README — a section renamed without its links fails here.
func TestRunbooksAreREADMESections(t *testing.T) {
	anchors := readmeAnchors(t)
	for _, r := range alerts(t) {
		u := r.Annotations["runbook_url"]
		_, anchor, _ := strings.Cut(u, "#")
		if !anchors[anchor] {
			t.Errorf("%s: runbook_url %q: the README has no heading with anchor #%s", r.Alert, u, anchor)
		}
	}
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(b), -1) {
		if !anchors[m[1]] {
			t.Errorf("README links to #%s, which is no heading of it", m[1])
		}
	}
}

// readmeAnchors returns the anchors GitHub gives the README's headings: the text lowercased,
// punctuation dropped, blanks made hyphens, "-1", "-2"… added to repeats. Headings inside
// code blocks are none.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors, seen := map[string]bool{}, map[string]int{}
	fenced := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		text, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fenced || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		slug := slugify(text)
		if n := seen[slug]; n > 0 {
			anchors[slug+"-"+strconv.Itoa(n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}

func slugify(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
