// Command echo is the Go conformance fixture for consumers: it echoes each
// record as JSON describing everything the SDK decoded from it, and turns
// special values into errors and log lines, so the runner's tests can check
// that every SDK behaves byte for byte alike.
//
// Config: output_topic (required), greeting (default "hello"). Values:
//
//	permanent:<msg>       a permanent error <msg> (blaming the record)
//	retryable:<id>:<n>    retryable errors "retry <id> (<count> of <n>)"
//	                      until it has failed n times, then an echo
//	log:<msg>             logs <msg> at info level, then an echo
//	anything else         an echo
package main

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"example.invalid/ingesta/sdk/go/config"
	"example.invalid/ingesta/sdk/go/consumer"
	"example.invalid/ingesta/sdk/go/ingesta"
)

// Echo keeps, per instance, how often each retryable id has failed.
type Echo struct {
	retries map[string]uint64
}

// echoed is the JSON value of an echo, fields in wire order.
type echoed struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     *int64       `json:"timestamp"`
	TimestampType *string      `json:"timestamp_type"`
	Key           *string      `json:"key"`
	Value         *string      `json:"value"`
	Headers       [][2]*string `json:"headers"`
	Greeting      string       `json:"greeting"`
}

// OnRecord handles one record.
func (e *Echo) OnRecord(r ingesta.Record) error {
	topic, err := config.Required("output_topic")
	if err != nil {
		return err
	}
	greeting := config.GetOr("greeting", "hello")
	value := string(r.Value())
	switch {
	case strings.HasPrefix(value, "permanent:"):
		return ingesta.Permanent(strings.TrimPrefix(value, "permanent:"))
	case strings.HasPrefix(value, "retryable:"):
		id, n, ok := retrySpec(strings.TrimPrefix(value, "retryable:"))
		if ok {
			if e.retries == nil {
				e.retries = map[string]uint64{}
			}
			if count := e.retries[id]; count < n {
				e.retries[id] = count + 1
				return ingesta.Retryablef("retry %s (%d of %d)", id, count+1, n)
			}
		}
	case strings.HasPrefix(value, "log:"):
		ingesta.Log.Info(strings.TrimPrefix(value, "log:"))
	}
	return echo(r, topic, greeting)
}

// retrySpec splits "<id>:<n>" at its last colon.
func retrySpec(spec string) (id string, n uint64, ok bool) {
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(spec[i+1:], 10, 64)
	return spec[:i], n, err == nil
}

func echo(r ingesta.Record, topic, greeting string) error {
	out := echoed{
		Topic:     r.Topic(),
		Partition: r.Partition(),
		Offset:    r.Offset(),
		Key:       text(r.Key()),
		Value:     text(r.Value()),
		Headers:   [][2]*string{},
		Greeting:  greeting,
	}
	if ts, ok := r.Timestamp(); ok {
		kind := "create"
		if r.TimestampType() == ingesta.LogAppendTime {
			kind = "log_append"
		}
		out.Timestamp, out.TimestampType = &ts, &kind
	}
	for name, value := range r.Headers() {
		out.Headers = append(out.Headers, [2]*string{&name, text(value)})
	}
	body, err := ingesta.MarshalJSON(out)
	if err != nil {
		return err
	}
	ingesta.NewMessage(topic).
		Key(r.Key()).
		Value(body).
		HeadersFrom(r).
		HeaderString("echo-greeting", greeting).
		Emit()
	return nil
}

// text is b as UTF-8 text (invalid sequences replaced), nil for null.
func text(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return &s
}

func init() { consumer.Handle(&Echo{}) }

func main() {}
