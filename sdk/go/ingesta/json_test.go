package ingesta_test

import (
	"math"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
)

// Expected texts are serde_json 1.0.154's (checked against it for 200,000
// random floats while writing this SDK).
func TestFloatMatchesSerdeJSON(t *testing.T) {
	tenth, fifth := 0.1, 0.2 // variables: constants would sum exactly
	cases := map[float64]string{
		0:                    "0.0",
		math.Copysign(0, -1): "-0.0",
		899:                  "899.0",
		19.9:                 "19.9",
		-19.9:                "-19.9",
		tenth + fifth:        "0.30000000000000004",
		1000.005:             "1000.005",
		1e15:                 "1000000000000000.0",
		1234567890123456:     "1234567890123456.0",
		1e16:                 "1e+16",
		12345678901234567:    "1.2345678901234568e+16",
		1e-5:                 "0.00001",
		1.5e-5:               "0.000015",
		1e-6:                 "1e-6",
		1.25e-7:              "1.25e-7",
		math.MaxFloat64:      "1.7976931348623157e+308",
		5e-324:               "5e-324",
		math.NaN():           "null",
		math.Inf(-1):         "null",
	}
	for f, want := range cases {
		if got := ingesta.FormatFloat(f); got != want {
			t.Errorf("FormatFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

func TestMarshalJSONMatchesSerde(t *testing.T) {
	type inner struct {
		Price ingesta.Float `json:"price"`
	}
	v := struct {
		Name  string          `json:"name"`
		N     uint64          `json:"n"`
		Inner inner           `json:"inner"`
		Map   map[string]int  `json:"map"`
		Opt   *string         `json:"opt"`
		List  []ingesta.Float `json:"list"`
	}{
		Name:  "Café <b>&</b> \"q\" \\ \u2028\u2029 \x01\b\f\n\r\t\x7f",
		N:     18446744073709551615,
		Inner: inner{899},
		Map:   map[string]int{"b": 2, "a": 1},
		List:  []ingesta.Float{0.1, 1e16},
	}
	got, err := ingesta.MarshalJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"Café <b>&</b> \"q\" \\ ` + "\u2028\u2029" + ` \u0001\b\f\n\r\t` + "\x7f" +
		`","n":18446744073709551615,"inner":{"price":899.0},"map":{"a":1,"b":2},"opt":null,"list":[0.1,1e+16]}`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// An escaped backslash followed by u2028 text stays as it is.
	got, _ = ingesta.MarshalJSON(`\u2028`)
	if string(got) != `"\\u2028"` {
		t.Errorf("got %s", got)
	}
}
