package config_test

import (
	"math"
	"reflect"
	"testing"
	"time"

	"example.invalid/ingesta/sdk/go/config"
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
	"example.invalid/ingesta/sdk/go/internal/host"
)

func TestReadsValuesAndDefaults(t *testing.T) {
	ingestatest.SetConfig(map[string]string{"b": "2", "a": "1"})
	if v, ok := config.Get("a"); !ok || v != "1" {
		t.Errorf("a = %q %v", v, ok)
	}
	if _, ok := config.Get("c"); ok {
		t.Error("c is set")
	}
	if config.GetOr("c", "fallback") != "fallback" || config.GetOr("b", "x") != "2" {
		t.Error("GetOr")
	}
	if want := []config.Entry{{"a", "1"}, {"b", "2"}}; !reflect.DeepEqual(config.Entries(), want) {
		t.Errorf("entries %v", config.Entries())
	}
	_, err := config.Required("output_topic")
	if e := ingesta.AsError(err); e.IsRetryable() || e.Message() != "config key output_topic is not set" {
		t.Errorf("Required: %v", err)
	}
}

func TestParsesTypedValues(t *testing.T) {
	ingestatest.SetConfig(map[string]string{
		"limit": "500.5", "bad": "lots", "n": "+7", "neg": "-3", "big": "300", "on": "true",
		"inf": "inf", "huge": "1e400", "empty": "", "d": "1m30s", "name": "x",
	})
	if v, ok, err := config.Parse[float64]("limit"); v != 500.5 || !ok || err != nil {
		t.Errorf("limit %v %v %v", v, ok, err)
	}
	if _, ok, err := config.Parse[float64]("missing"); ok || err != nil {
		t.Error("missing")
	}
	if v, err := config.ParseOr("missing", uint32(7)); v != 7 || err != nil {
		t.Error("ParseOr default")
	}
	if v, err := config.ParseOr[uint8]("n", 0); v != 7 || err != nil {
		t.Errorf("+7: %v %v", v, err)
	}
	if v, _ := config.ParseOr("neg", 0); v != -3 {
		t.Error("neg")
	}
	if v, _ := config.ParseOr("on", false); !v {
		t.Error("bool")
	}
	if v, _ := config.ParseOr("inf", 0.0); !math.IsInf(v, 1) {
		t.Error("inf")
	}
	if v, err := config.ParseOr("huge", 0.0); !math.IsInf(v, 1) || err != nil {
		t.Error("out-of-range floats are infinite, as in Rust")
	}
	if v, _ := config.ParseOr("d", time.Duration(0)); v != 90*time.Second {
		t.Error("duration")
	}
	if v, _ := config.ParseOr("name", ""); v != "x" {
		t.Error("string")
	}
	// Rust's wording of each problem.
	problems := []struct {
		err  error
		want string
	}{
		{second(config.Parse[uint32]("bad")), `config key bad has invalid value "lots": invalid digit found in string`},
		{second(config.Parse[uint32]("neg")), `config key neg has invalid value "-3": invalid digit found in string`},
		{second(config.Parse[uint8]("big")), `config key big has invalid value "300": number too large to fit in target type`},
		{second(config.Parse[int]("empty")), `config key empty has invalid value "": cannot parse integer from empty string`},
		{second(config.Parse[float64]("bad")), `config key bad has invalid value "lots": invalid float literal`},
		{second(config.Parse[float64]("empty")), `config key empty has invalid value "": cannot parse float from empty string`},
		{second(config.Parse[bool]("n")), "config key n has invalid value \"+7\": provided string was not `true` or `false`"},
	}
	for _, p := range problems {
		e := ingesta.AsError(p.err)
		if e == nil || e.IsRetryable() || e.Message() != p.want {
			t.Errorf("got %v, want %s", p.err, p.want)
		}
	}
}

func second[T any](_ T, _ bool, err error) error { return err }

func TestCachesTheFirstAnswer(t *testing.T) {
	ingestatest.SetConfig(map[string]string{"k": "v1"})
	if v, _ := config.Get("k"); v != "v1" {
		t.Fatal(v)
	}
	// The host's map changing under a running instance is not seen.
	gen := host.ConfigGeneration()
	ingestatest.SetConfig(map[string]string{"k": "v2"})
	if host.ConfigGeneration() == gen {
		t.Fatal("generation unchanged")
	}
	if v, _ := config.Get("k"); v != "v2" {
		t.Error("SetConfig is not seen")
	}
}

// Floats are read with Rust's grammar: Go's hex floats and digit
// separators are invalid literals, as they are in Rust and Python.
func TestFloatsFollowRustsGrammar(t *testing.T) {
	accepted := map[string]float64{
		"1": 1, "+1.": 1, "-.5": -0.5, "1e3": 1000, "1E+3": 1000, "2.5e-1": 0.25, "007": 7,
	}
	rejected := []string{
		"0x1p4", "0X10", "1_0", "1_000.5", "1e1_0", ".", "e5", "1e", "1e+", "+", "--1",
		" 1", "1 ", "1.2.3", "0b1", "infx", "Inf1",
	}
	entries := map[string]string{}
	for raw := range accepted {
		entries["ok"+raw] = raw
	}
	for _, raw := range rejected {
		entries["bad"+raw] = raw
	}
	for _, raw := range []string{"inf", "-Infinity", "NaN", "+nan", "INF"} {
		entries["special"+raw] = raw
	}
	ingestatest.SetConfig(entries)
	for raw, want := range accepted {
		if v, _, err := config.Parse[float64]("ok" + raw); err != nil || v != want {
			t.Errorf("%q: %v, %v", raw, v, err)
		}
	}
	for _, raw := range []string{"inf", "-Infinity", "NaN", "+nan", "INF"} {
		if v, _, err := config.Parse[float32]("special" + raw); err != nil || !(math.IsInf(float64(v), 0) || math.IsNaN(float64(v))) {
			t.Errorf("%q: %v, %v", raw, v, err)
		}
	}
	for _, raw := range rejected {
		_, _, err := config.Parse[float64]("bad" + raw)
		want := `config key bad` + raw + ` has invalid value "` + raw + `": invalid float literal`
		if err == nil || ingesta.AsError(err).Message() != want {
			t.Errorf("%q: got %v, want %s", raw, err, want)
		}
	}
}
