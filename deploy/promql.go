package deploy

import (
	"fmt"
	"strings"
)

// Refs is what a PromQL expression asks of the series it reads.
type Refs struct {
	// Selectors are the expression's vector selectors, in order.
	Selectors []Selector
	// Grouping are the label names of its by, without, on, ignoring, group_left and
	// group_right clauses, in order, repeated as written.
	Grouping []string
}

// Selector is one vector selector: fanin_lag_seconds{projection="result"}.
type Selector struct {
	// Metric is the metric name, from before the braces or from a __name__="…" matcher.
	Metric string
	// Labels are the names its matchers test, __name__ left out.
	Labels []string
}

// aggregators are PromQL's aggregation operators: never a metric name, and followed by "(" or
// by a by / without clause.
var aggregators = set("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
	"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio")

// keywords are the other words of PromQL that are no metric name.
var keywords = set("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end")

// grouping are the clauses whose parenthesis lists label names.
var grouping = set("by", "without", "on", "ignoring", "group_left", "group_right")

// unsupported are the functions whose string arguments name labels, which Parse does not
// read: an expression using them is refused rather than checked in part.
var unsupported = set("label_replace", "label_join")

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// Parse reads the metric and label names an expression refers to. It is a tokenizer, not a
// PromQL parser: it assumes a valid expression (promtool checks that) and finds selectors,
// matchers and grouping clauses in it. It refuses what it cannot read: an unexpanded Grafana
// variable ($x outside a string), a selector without a metric name, label_replace and
// label_join.
func Parse(expr string) (Refs, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return Refs{}, err
	}
	var refs Refs
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := func() token {
			if i+1 < len(toks) {
				return toks[i+1]
			}
			return token{}
		}
		switch {
		case t.kind == tokPunct && t.text == "[":
			// A range or a subquery's range and step: durations only.
			for i < len(toks) && toks[i].text != "]" {
				i++
			}
		case t.kind == tokPunct && t.text == "{":
			sel, n, err := matchers(toks[i:], "")
			if err != nil {
				return Refs{}, err
			}
			if sel.Metric == "" {
				return Refs{}, fmt.Errorf("%s: a selector without a metric name", expr)
			}
			refs.Selectors = append(refs.Selectors, sel)
			i += n - 1
		case t.kind != tokIdent:
		case grouping[t.text]:
			if next().text != "(" { // group_left without a label list
				continue
			}
			j := i + 2
			for ; j < len(toks) && toks[j].text != ")"; j++ {
				if toks[j].kind == tokIdent {
					refs.Grouping = append(refs.Grouping, toks[j].text)
				}
			}
			i = j
		case unsupported[t.text]:
			return Refs{}, fmt.Errorf("%s: %s names labels in strings, which this reader does not check", expr, t.text)
		case aggregators[t.text] || keywords[t.text] || next().text == "(":
			// An operator, or a function called.
		default:
			sel := Selector{Metric: t.text}
			if next().text == "{" {
				s, n, err := matchers(toks[i+1:], t.text)
				if err != nil {
					return Refs{}, err
				}
				sel = s
				i += n
			}
			refs.Selectors = append(refs.Selectors, sel)
		}
	}
	return refs, nil
}

// matchers reads the braces at toks[0] into a selector of metric (or of the __name__ matcher's
// value) and returns how many tokens it took.
func matchers(toks []token, metric string) (Selector, int, error) {
	sel := Selector{Metric: metric}
	for i := 1; i < len(toks); i++ {
		t := toks[i]
		switch {
		case t.text == "}":
			return sel, i + 1, nil
		case t.text == ",":
		case t.kind == tokIdent && i+2 < len(toks) && toks[i+2].kind == tokString:
			op, value := toks[i+1].text, toks[i+2].text
			if t.text == "__name__" {
				if op == "=" {
					sel.Metric = value
				}
			} else {
				sel.Labels = append(sel.Labels, t.text)
			}
			i += 2
		default:
			return Selector{}, 0, fmt.Errorf("unexpected %q in a selector's braces", t.text)
		}
	}
	return Selector{}, 0, fmt.Errorf("unclosed selector braces")
}

type tokKind int

const (
	tokIdent tokKind = iota + 1
	tokString
	tokNumber // numbers and durations
	tokPunct  // brackets, commas, operators
)

type token struct {
	kind tokKind
	text string // a string's value, without its quotes
}

// tokenize splits a PromQL expression into tokens, dropping blanks and comments.
func tokenize(expr string) ([]token, error) {
	var toks []token
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			var b strings.Builder
			for ; j < len(expr) && expr[j] != c; j++ {
				if expr[j] == '\\' && c != '`' && j+1 < len(expr) {
					j++
				}
				b.WriteByte(expr[j])
			}
			if j == len(expr) {
				return nil, fmt.Errorf("%s: unterminated string", expr)
			}
			toks = append(toks, token{tokString, b.String()})
			i = j + 1
		case isIdentStart(c):
			j := i
			for j < len(expr) && (isIdentStart(expr[j]) || isDigit(expr[j])) {
				j++
			}
			toks = append(toks, token{tokIdent, expr[i:j]})
			i = j
		case isDigit(c) || c == '.' && i+1 < len(expr) && isDigit(expr[i+1]):
			j := i
			for j < len(expr) && (isDigit(expr[j]) || isIdentStart(expr[j]) || expr[j] == '.') {
				j++
			}
			toks = append(toks, token{tokNumber, expr[i:j]})
			i = j
		case c == '$':
			return nil, fmt.Errorf("%s: a variable outside a string (%q): expand it first", expr, expr[i:min(len(expr), i+20)])
		default:
			// One- or two-byte operators: =~ != !~ == <= >= and the rest.
			n := 1
			if i+1 < len(expr) && strings.Contains("=~!<>", string(c)) && strings.Contains("=~", string(expr[i+1])) {
				n = 2
			}
			toks = append(toks, token{tokPunct, expr[i : i+n]})
			i += n
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == ':'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
