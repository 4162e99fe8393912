package ingesta

import (
	"reflect"

	"example.invalid/ingesta/sdk/go/internal/abi"
	"example.invalid/ingesta/sdk/go/internal/outbox"
)

// Bytes is what a record key, value or header value can be published
// from: text or bytes. A nil byte slice is null; a string, even empty, is
// never null.
type Bytes interface {
	~string | ~[]byte
}

// Null is a null key or value: ingesta.Emit("deletions", key, ingesta.Null)
// publishes a tombstone.
var Null []byte

// Header is one record header; a nil Value is null.
type Header struct {
	Name  string
	Value []byte
}

// Emit publishes a record to topic when the current call succeeds.
//
// key and value are strings or byte slices; pass [Null] (or a nil slice)
// for null. Records are published in emit order, with headers in the order
// given.
//
// Output is handed to the host in one piece when the handler returns (or
// earlier, if it passes 4 MiB). Should the host refuse it (a topic the
// deployment is not granted, an output limit), the call fails with a
// permanent error carrying the host's reason, and later emits of the call
// are dropped.
//
//	ingesta.Emit("greetings", "user-1", "hello")
//	ingesta.Emit("copies", r.Key(), r.Value())
//	ingesta.Emit("deletions", r.Key(), ingesta.Null) // a tombstone
func Emit[K, V Bytes](topic string, key K, value V, headers ...Header) {
	o := outbox.Current
	if o.Dropping() {
		return
	}
	k, hasKey := appendPayload(o, key)
	v, hasValue := appendPayload(o, value)
	start := o.HeaderCount()
	for _, h := range headers {
		o.AddHeader(h.Name, h.Value)
	}
	o.FinishRecord(topic, k, hasKey, v, hasValue, start)
	o.MaybeFlush()
}

// EmitJSON publishes v serialized as JSON (see [MarshalJSON]) to topic when
// the current call succeeds. A value that cannot be serialized returns a
// permanent error and emits nothing.
func EmitJSON[K Bytes](topic string, key K, v any, headers ...Header) error {
	o := outbox.Current
	if o.Dropping() {
		return nil
	}
	mark := o.Mark()
	k, hasKey := appendPayload(o, key)
	start := len(o.Data())
	data, err := appendJSON(o.Data(), v)
	if err != nil {
		o.Rollback(mark)
		return Permanentf("cannot serialize a record for %s: %v", topic, err)
	}
	o.SetData(data)
	value := abi.Span{Start: uint32(start), Len: uint32(len(data) - start)}
	first := o.HeaderCount()
	for _, h := range headers {
		o.AddHeader(h.Name, h.Value)
	}
	o.FinishRecord(topic, k, hasKey, value, true, first)
	o.MaybeFlush()
	return nil
}

// Forward re-publishes a consumed record (key, value and headers, byte for
// byte) to topic when the current call succeeds.
func Forward(topic string, r Record) {
	NewMessage(topic).Key(r.Key()).Value(r.Value()).HeadersFrom(r).Emit()
}

// Message is a record to publish, built step by step; use it when headers
// come from several places:
//
//	ingesta.NewMessage("orders-enriched").
//		Key(r.Key()).
//		ValueString(enriched).
//		HeadersFrom(r).
//		HeaderString("source-offset", strconv.FormatInt(r.Offset(), 10)).
//		Emit()
//
// Nothing is published until [Message.Emit] is called. Unset keys and
// values are null.
type Message struct {
	topic     string
	key       []byte
	keyText   string
	keyKind   payloadKind
	value     []byte
	valueText string
	valueKind payloadKind
	headers   []Header
	copied    []Record
}

type payloadKind uint8

const (
	kindNull payloadKind = iota
	kindBytes
	kindText
)

// NewMessage starts a record for topic, with a null key and value and no
// headers.
func NewMessage(topic string) *Message {
	return &Message{topic: topic}
}

// Key sets the key; nil is null.
func (m *Message) Key(key []byte) *Message {
	m.key, m.keyKind = key, kindBytes
	if key == nil {
		m.keyKind = kindNull
	}
	return m
}

// KeyString sets the key to text.
func (m *Message) KeyString(key string) *Message {
	m.keyText, m.keyKind = key, kindText
	return m
}

// Value sets the value; nil is null.
func (m *Message) Value(value []byte) *Message {
	m.value, m.valueKind = value, kindBytes
	if value == nil {
		m.valueKind = kindNull
	}
	return m
}

// ValueString sets the value to text.
func (m *Message) ValueString(value string) *Message {
	m.valueText, m.valueKind = value, kindText
	return m
}

// Header appends a header; Kafka allows repeated names. A nil value is
// null.
func (m *Message) Header(name string, value []byte) *Message {
	m.headers = append(m.headers, Header{name, value})
	return m
}

// HeaderString appends a header with a text value.
func (m *Message) HeaderString(name, value string) *Message {
	return m.Header(name, []byte(value))
}

// HeadersFrom carries over all of r's headers, ahead of any added with
// [Message.Header]. Their bytes go straight from the batch into the
// outbox.
func (m *Message) HeadersFrom(r Record) *Message {
	m.copied = append(m.copied, r)
	return m
}

// Emit queues the record for publishing when the current call succeeds.
func (m *Message) Emit() {
	o := outbox.Current
	if o.Dropping() {
		return
	}
	k, hasKey := m.appendPart(o, m.keyKind, m.key, m.keyText)
	v, hasValue := m.appendPart(o, m.valueKind, m.value, m.valueText)
	start := o.HeaderCount()
	for _, r := range m.copied {
		for name, value := range r.Headers() {
			o.AddHeader(name, value)
		}
	}
	for _, h := range m.headers {
		o.AddHeader(h.Name, h.Value)
	}
	o.FinishRecord(m.topic, k, hasKey, v, hasValue, start)
	o.MaybeFlush()
}

func (m *Message) appendPart(o *outbox.Outbox, kind payloadKind, b []byte, s string) (abi.Span, bool) {
	switch kind {
	case kindBytes:
		return o.AppendBytes(b), true
	case kindText:
		return o.AppendString(s), true
	default:
		return abi.Span{}, false
	}
}

// appendPayload appends p to the outbox's data; a nil byte slice is null.
func appendPayload[T Bytes](o *outbox.Outbox, p T) (abi.Span, bool) {
	if len(p) == 0 && isNull(p) {
		return abi.Span{}, false
	}
	data := o.Data()
	start := len(data)
	o.SetData(append(data, p...))
	return abi.Span{Start: uint32(start), Len: uint32(len(p))}, true
}

func isNull[T Bytes](p T) bool {
	switch v := any(p).(type) {
	case string:
		return false
	case []byte:
		return v == nil
	default:
		rv := reflect.ValueOf(v)
		return rv.Kind() == reflect.Slice && rv.IsNil()
	}
}
