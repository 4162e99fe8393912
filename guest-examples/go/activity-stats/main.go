// Command activity-stats is the shop scenario in Go, a port of
// guest-examples/rust/activity-stats whose records are byte-identical to
// the Rust example's: it turns user-activity events into per-product
// activity stats and large-purchase alerts.
//
// Each batch is validated as a whole first: one malformed event fails the
// batch with a permanent error blaming that record, and nothing of the
// batch is emitted. A good batch then yields
//
//   - one stats record per product touched, in ascending product_id order
//     with the unknown product (events without a product_id) last: the
//     batch's increments, so summing a product's stats records gives its
//     totals, and source identifies the input window so a reader can
//     recognise a redelivered batch;
//   - one alert per purchase priced strictly above alert_purchase_over.
//
// Besides the shop's own events it reads those of the Spanish-language
// Kafka tutorial our users come from: other action names, and no price,
// ts or product_id. Only what cannot be read is refused.
//
// See README.md for config keys and exact output formats.
package main

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"example.invalid/ingesta/sdk/go/config"
	"example.invalid/ingesta/sdk/go/consumer"
	"example.invalid/ingesta/sdk/go/ingesta"
)

// Settings are the deployment's settings, read from config on the first
// batch.
type Settings struct {
	StatsTopic        string
	AlertsTopic       string
	AlertPurchaseOver float64
}

// LoadSettings reads the settings; a bad threshold is a permanent error.
func LoadSettings() (*Settings, error) {
	over, err := config.ParseOr("alert_purchase_over", 500.0)
	if err != nil {
		return nil, err
	}
	if math.IsInf(over, 0) || math.IsNaN(over) {
		return nil, ingesta.Permanent("config key alert_purchase_over must be a finite number")
	}
	return &Settings{
		StatsTopic:        config.GetOr("stats_topic", "user-activity-stats"),
		AlertsTopic:       config.GetOr("alerts_topic", "user-activity-alerts"),
		AlertPurchaseOver: over,
	}, nil
}

// Counts are the counts per action plus revenue, for one product.
type Counts struct {
	Views, Clicks, AddToCart, Purchases, OtherActions uint64
	// RevenueCents is whole cents, so sums are exact (each price is rounded
	// to cents).
	RevenueCents int64
}

func (c *Counts) record(ev *Event) {
	switch ev.Action {
	case View:
		c.Views++
	case Click:
		c.Clicks++
	case AddToCart:
		c.AddToCart++
	case Purchase:
		c.Purchases++
		if ev.Price != nil { // a purchase without a price is still a purchase
			c.RevenueCents = saturatingAdd(c.RevenueCents, cents(*ev.Price))
		}
	default:
		c.OtherActions++
	}
}

func (c *Counts) add(o *Counts) {
	c.Views += o.Views
	c.Clicks += o.Clicks
	c.AddToCart += o.AddToCart
	c.Purchases += o.Purchases
	c.OtherActions += o.OtherActions
	c.RevenueCents = saturatingAdd(c.RevenueCents, o.RevenueCents)
}

// Revenue is the revenue in currency units.
func (c *Counts) Revenue() float64 { return float64(c.RevenueCents) / 100 }

// cents is Rust's (price * 100.0).round() as i64: rounding half away from
// zero, saturating at the i64 range, NaN as 0.
func cents(price float64) int64 {
	c := math.Round(price * 100)
	switch {
	case math.IsNaN(c):
		return 0
	case c >= math.MaxInt64:
		return math.MaxInt64
	case c <= math.MinInt64:
		return math.MinInt64
	}
	return int64(c)
}

func saturatingAdd(a, b int64) int64 {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}

// productKey identifies a product: its id, or the unknown product that
// counts the events without a product_id.
type productKey struct {
	id      uint64
	unknown bool
}

// keyOf is the product ev counts towards.
func keyOf(ev *Event) productKey {
	if ev.ProductID == nil {
		return productKey{unknown: true}
	}
	return productKey{id: *ev.ProductID}
}

// compare orders products by id, the unknown product last.
func (k productKey) compare(o productKey) int {
	if k.unknown != o.unknown {
		if k.unknown {
			return 1
		}
		return -1
	}
	return cmp.Compare(k.id, o.id)
}

// String is the stats record key: the id in decimal, or "unknown".
func (k productKey) String() string {
	if k.unknown {
		return "unknown"
	}
	return strconv.FormatUint(k.id, 10)
}

// idJSON is the product_id to write: null for the unknown product.
func (k productKey) idJSON() *uint64 {
	if k.unknown {
		return nil
	}
	return &k.id
}

// productBatch is one product's activity within a batch.
type productBatch struct {
	key productKey
	// lastName is the name on the product's last event in the batch that
	// carries one (nil if none does).
	lastName *string
	counts   Counts
}

// name is the product's name for its stats record.
func (p *productBatch) name() string {
	switch {
	case p.key.unknown:
		return unknownProduct
	case p.lastName != nil:
		return *p.lastName
	}
	return p.key.String()
}

type statsRecord struct {
	ProductID    *uint64       `json:"product_id"`
	ProductName  string        `json:"product_name"`
	Views        uint64        `json:"views"`
	Clicks       uint64        `json:"clicks"`
	AddToCart    uint64        `json:"add_to_cart"`
	Purchases    uint64        `json:"purchases"`
	OtherActions uint64        `json:"other_actions"`
	Revenue      ingesta.Float `json:"revenue"`
	Source       batchSource   `json:"source"`
}

type batchSource struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
}

type alertRecord struct {
	Kind        string        `json:"kind"`
	EventID     any           `json:"event_id"` // nil, int64 or string: as given
	UserID      uint64        `json:"user_id"`
	ProductID   *uint64       `json:"product_id"`
	ProductName string        `json:"product_name"`
	Price       ingesta.Float `json:"price"`
	Threshold   ingesta.Float `json:"threshold"`
	TS          *int64        `json:"ts"`
	Source      recordSource  `json:"source"`
}

type recordSource struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// ActivityStats is the handler.
type ActivityStats struct {
	settings *Settings
	// totals are running totals for this instance's partition since it
	// started. Only an in-memory view: lost on recycle, and counts
	// redelivered batches twice.
	totals map[productKey]*Counts
}

type located struct {
	ev     Event
	offset int64
}

// OnBatch validates the whole batch, then emits its stats and alerts.
func (a *ActivityStats) OnBatch(b ingesta.Batch) error {
	if a.settings == nil {
		s, err := LoadSettings()
		if err != nil {
			return err
		}
		a.settings = s
	}
	s := a.settings

	// Validate and aggregate everything before emitting anything.
	events := make([]located, 0, b.Len())
	for r := range b.Records() {
		ev, err := ParseEvent(r)
		if err != nil {
			return err
		}
		events = append(events, located{ev, r.Offset()})
	}
	index := map[productKey]int{}
	var products []productBatch
	var alerts []*located
	for i := range events {
		e := &events[i]
		key := keyOf(&e.ev)
		j, ok := index[key]
		if !ok {
			j = len(products)
			index[key] = j
			products = append(products, productBatch{key: key})
		}
		if e.ev.ProductName != nil {
			products[j].lastName = e.ev.ProductName
		}
		products[j].counts.record(&e.ev)
		if e.ev.Action == Purchase && e.ev.Price != nil && *e.ev.Price > s.AlertPurchaseOver {
			alerts = append(alerts, e)
		}
	}
	slices.SortFunc(products, func(x, y productBatch) int { return x.key.compare(y.key) })

	first, ok := b.FirstOffset()
	last, _ := b.LastOffset()
	if !ok {
		return nil
	}
	for _, p := range products {
		c := &p.counts
		err := ingesta.EmitJSON(s.StatsTopic, p.key.String(), statsRecord{
			ProductID:    p.key.idJSON(),
			ProductName:  p.name(),
			Views:        c.Views,
			Clicks:       c.Clicks,
			AddToCart:    c.AddToCart,
			Purchases:    c.Purchases,
			OtherActions: c.OtherActions,
			Revenue:      ingesta.Float(c.Revenue()),
			Source:       batchSource{b.Topic(), b.Partition(), first, last},
		})
		if err != nil {
			return err
		}
	}
	for _, e := range alerts {
		err := ingesta.EmitJSON(s.AlertsTopic, strconv.FormatUint(e.ev.UserID, 10), alertRecord{
			Kind:        "large_purchase",
			EventID:     e.ev.EventID,
			UserID:      e.ev.UserID,
			ProductID:   e.ev.ProductID,
			ProductName: e.ev.Name(),
			Price:       ingesta.Float(*e.ev.Price),
			Threshold:   ingesta.Float(s.AlertPurchaseOver),
			TS:          e.ev.TS,
			Source:      recordSource{b.Topic(), b.Partition(), e.offset},
		})
		if err != nil {
			return err
		}
	}

	if a.totals == nil {
		a.totals = map[productKey]*Counts{}
	}
	for _, p := range products {
		t := a.totals[p.key]
		if t == nil {
			t = &Counts{}
			a.totals[p.key] = t
		}
		t.add(&p.counts)
	}
	ingesta.Log.Debugf("%s/%d offsets %d..=%d: %d events, %d products, %d alerts; %d products seen by this instance",
		b.Topic(), b.Partition(), first, last, len(events), len(products), len(alerts), len(a.totals))
	return nil
}

func init() { consumer.Handle(&ActivityStats{}) }

func main() {}
