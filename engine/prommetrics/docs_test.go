package prommetrics_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/luahost/luahost/engine"
	"github.com/luahost/luahost/engine/prommetrics"
)

// docs/operations.md's metrics table is generated from what New
// registers. After changing a metric, regenerate it with
//
//	UPDATE_DOCS=1 go test ./engine/prommetrics -run TestMetricsReferenceTable

const (
	opsDoc       = "../../docs/operations.md"
	metricsBegin = "<!-- metrics:begin -->"
	metricsEnd   = "<!-- metrics:end -->"
)

// recordingRegisterer registers into a registry and keeps the collectors,
// so the test knows every metric New described, not only those gathered.
type recordingRegisterer struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// described lists the names of every metric the collectors describe.
func (r *recordingRegisterer) described() []string {
	ch := make(chan *prometheus.Desc, 100)
	go func() {
		for _, c := range r.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}

// feedAll gives the metrics one event of every kind, so every family has
// a series to gather.
func feedAll(t *testing.T) *prometheus.Registry {
	reg, _ := feedAllRecorded(t)
	return reg
}

func feedAllRecorded(t *testing.T) (*prometheus.Registry, *recordingRegisterer) {
	t.Helper()
	rr := &recordingRegisterer{Registry: prometheus.NewRegistry()}
	m, err := prommetrics.New(rr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	boom := errors.New("boom")
	m.CallEnd(m.CallStart(ctx, engine.CallEvent{}), engine.CallEvent{Module: "m", Callback: "spam_checker.check_event_for_spam",
		Duration: time.Millisecond, Outcome: engine.OutcomeTimeout, Err: boom})
	m.RequestEnd(m.RequestStart(ctx, engine.RequestEvent{}), engine.RequestEvent{Module: "m", Path: "/_synapse/client/m",
		Method: "GET", Status: 200, Duration: time.Millisecond})
	m.HostCallEnd(m.HostCallStart(ctx, engine.HostCallEvent{}), engine.HostCallEvent{Module: "m", Function: "store.get",
		Duration: time.Millisecond, Err: boom})
	m.ModuleLoad(engine.LoadEvent{Module: "m", Outcome: engine.LoadOK, Generation: 2, Reload: true, At: time.Now()})
	m.StoreOp(engine.StoreEvent{Module: "m", Backend: "memory", Op: "get", Err: boom})
	m.HTTPClientRequest(engine.HTTPClientEvent{Module: "m", Method: "GET", Outcome: engine.HTTPRefused, Err: boom})
	m.NotificationDropped("third_party_rules.on_new_event")
	return rr.Registry, rr
}

// referenceTable renders the gathered families as docs/operations.md's table.
func referenceTable(mfs []*dto.MetricFamily) string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n|---|---|---|---|\n")
	for _, mf := range mfs {
		var labels []string
		if len(mf.Metric) > 0 {
			for _, lp := range mf.Metric[0].Label {
				labels = append(labels, "`"+lp.GetName()+"`")
			}
		}
		help := strings.ReplaceAll(mf.GetHelp(), "|", `\|`)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", mf.GetName(), strings.ToLower(mf.GetType().String()),
			labelList(labels), help)
	}
	return b.String()
}

func TestMetricsReferenceTable(t *testing.T) {
	reg, rr := feedAllRecorded(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var gathered []string
	for _, mf := range mfs {
		gathered = append(gathered, mf.GetName())
	}
	// Every metric New registers is in the table: feedAll must give
	// each a series.
	if described := rr.described(); strings.Join(described, ",") != strings.Join(gathered, ",") {
		t.Fatalf("feedAll does not feed every metric:\ndescribed %v\ngathered  %v", described, gathered)
	}
	want := referenceTable(mfs)
	b, err := os.ReadFile(opsDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	begin, end := strings.Index(text, metricsBegin), strings.Index(text, metricsEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s: no %s ... %s markers around the metrics table", opsDoc, metricsBegin, metricsEnd)
	}
	got := strings.TrimPrefix(text[begin+len(metricsBegin):end], "\n")
	if got == want {
		return
	}
	if os.Getenv("UPDATE_DOCS") == "1" {
		text = text[:begin+len(metricsBegin)] + "\n" + want + text[end:]
		if err := os.WriteFile(opsDoc, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: metrics table rewritten", opsDoc)
		return
	}
	t.Errorf("%s: the metrics table is stale; regenerate it with UPDATE_DOCS=1 go test ./engine/prommetrics -run TestMetricsReferenceTable\ngot:\n%s\nwant:\n%s",
		filepath.Base(opsDoc), got, want)
}

func writeFile(dir, name, src string) error {
	return os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644)
}

func labelList(labels []string) string {
	if len(labels) == 0 {
		return "—"
	}
	return strings.Join(labels, ", ")
}
