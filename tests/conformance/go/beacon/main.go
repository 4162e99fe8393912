// Command beacon is the Go conformance fixture for producers, behaving
// exactly like guest-examples/rust/beacon: every request's body is
// published unchanged to the topic in config key topic, keyed by the
// request's x-key header (null without one), and answered 202 Accepted.
// Each tick publishes one record to the same topic, key "tick" and value
// "tick <seq>".
package main

import (
	"strconv"

	"example.invalid/ingesta/sdk/go/config"
	"example.invalid/ingesta/sdk/go/ingesta"
	"example.invalid/ingesta/sdk/go/producer"
)

// Beacon remembers config key topic once a call has found it.
type Beacon struct {
	topic string
}

func (b *Beacon) outputTopic() (string, error) {
	if b.topic == "" {
		topic, err := config.Required("topic")
		if err != nil {
			return "", err
		}
		b.topic = topic
	}
	return b.topic, nil
}

// OnRequest publishes the body, keyed by x-key.
func (b *Beacon) OnRequest(r *ingesta.Request) (ingesta.Response, error) {
	topic, err := b.outputTopic()
	if err != nil {
		return ingesta.Response{}, err
	}
	ingesta.Emit(topic, r.Header("x-key"), r.Body())
	return ingesta.Accepted(), nil
}

// OnTick publishes "tick <seq>" keyed "tick".
func (b *Beacon) OnTick(t ingesta.Tick) error {
	topic, err := b.outputTopic()
	if err != nil {
		return err
	}
	ingesta.Emit(topic, "tick", "tick "+strconv.FormatUint(t.Seq, 10))
	return nil
}

func init() { producer.Serve(&Beacon{}) }

func main() {}
