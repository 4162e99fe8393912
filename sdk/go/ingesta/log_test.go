package ingesta_test

import (
	"reflect"
	"testing"

	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/ingestatest"
)

func TestLoggerFormatsAndForwards(t *testing.T) {
	ingestatest.Reset()
	ingesta.Log.Info("plain")
	ingesta.Log.Warnf("%d of %d", 2, 3)
	ingesta.Log.Errorf("boom: %s", "x")
	ingesta.Log.Line(ingesta.LevelDebug, "direct")
	ingesta.Log.Trace("t")
	want := []ingestatest.LogLine{
		{Level: ingesta.LevelInfo, Message: "plain"},
		{Level: ingesta.LevelWarn, Message: "2 of 3"},
		{Level: ingesta.LevelError, Message: "boom: x"},
		{Level: ingesta.LevelDebug, Message: "direct"},
		{Level: ingesta.LevelTrace, Message: "t"},
	}
	if got := ingestatest.TakeLogs(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
}

type explodes struct{}

func (explodes) String() string { panic("formatted a disabled line") }

func TestMaxLevelFiltersBeforeFormatting(t *testing.T) {
	ingestatest.Reset()
	defer ingestatest.Reset()
	ingesta.SetMaxLevel(ingesta.LevelInfo)
	ingesta.Log.Debugf("%v", explodes{})
	ingesta.Log.Tracef("%v", explodes{})
	ingesta.Log.Info("kept")
	if got := ingestatest.TakeLogs(); !reflect.DeepEqual(got, []ingestatest.LogLine{{Level: ingesta.LevelInfo, Message: "kept"}}) {
		t.Errorf("got %+v", got)
	}
	if ingesta.Log.Enabled(ingesta.LevelDebug) || !ingesta.Log.Enabled(ingesta.LevelError) || ingesta.MaxLevel() != ingesta.LevelInfo {
		t.Error("Enabled")
	}
}
