// Command activity-stats is the shop scenario in Go, a port of
// guest-examples/rust/activity-stats whose records are byte-identical to
// the Rust example's: it turns user-activity events into per-product
// activity stats and large-purchase alerts.
//
// Each batch is validated as a whole first: one malformed event fails the
// batch with a permanent error blaming that record, and nothing of the
// batch is emitted. A good batch then yields
//
//   - one stats record per product touched, in ascending product_id order:
//     the batch's increments, so summing a product's stats records gives its
//     totals, and source identifies the input window so a reader can
//     recognise a redelivered batch;
//   - one alert per purchase priced strictly above alert_purchase_over.
//
// See README.md for config keys and exact output formats.
package main

import (
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
	Views, Clicks, AddToCart, Purchases uint64
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
		c.RevenueCents = saturatingAdd(c.RevenueCents, cents(ev.Price))
	}
}

func (c *Counts) add(o *Counts) {
	c.Views += o.Views
	c.Clicks += o.Clicks
	c.AddToCart += o.AddToCart
	c.Purchases += o.Purchases
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

// productBatch is one product's activity within a batch.
type productBatch struct {
	id     uint64
	name   string // the name on the product's last event in the batch
	counts Counts
}

type statsRecord struct {
	ProductID   uint64        `json:"product_id"`
	ProductName string        `json:"product_name"`
	Views       uint64        `json:"views"`
	Clicks      uint64        `json:"clicks"`
	AddToCart   uint64        `json:"add_to_cart"`
	Purchases   uint64        `json:"purchases"`
	Revenue     ingesta.Float `json:"revenue"`
	Source      batchSource   `json:"source"`
}

type batchSource struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	FirstOffset int64  `json:"first_offset"`
	LastOffset  int64  `json:"last_offset"`
}

type alertRecord struct {
	Kind        string        `json:"kind"`
	UserID      uint64        `json:"user_id"`
	ProductID   uint64        `json:"product_id"`
	ProductName string        `json:"product_name"`
	Price       ingesta.Float `json:"price"`
	Threshold   ingesta.Float `json:"threshold"`
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
	totals map[uint64]*Counts
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
	index := map[uint64]int{}
	var products []productBatch
	var alerts []*located
	for i := range events {
		e := &events[i]
		j, ok := index[e.ev.ProductID]
		if !ok {
			j = len(products)
			index[e.ev.ProductID] = j
			products = append(products, productBatch{id: e.ev.ProductID})
		}
		products[j].name = e.ev.ProductName
		products[j].counts.record(&e.ev)
		if e.ev.Action == Purchase && e.ev.Price > s.AlertPurchaseOver {
			alerts = append(alerts, e)
		}
	}
	slices.SortFunc(products, func(x, y productBatch) int {
		switch {
		case x.id < y.id:
			return -1
		case x.id > y.id:
			return 1
		}
		return 0
	})

	first, ok := b.FirstOffset()
	last, _ := b.LastOffset()
	if !ok {
		return nil
	}
	for _, p := range products {
		c := &p.counts
		err := ingesta.EmitJSON(s.StatsTopic, strconv.FormatUint(p.id, 10), statsRecord{
			ProductID:   p.id,
			ProductName: p.name,
			Views:       c.Views,
			Clicks:      c.Clicks,
			AddToCart:   c.AddToCart,
			Purchases:   c.Purchases,
			Revenue:     ingesta.Float(c.Revenue()),
			Source:      batchSource{b.Topic(), b.Partition(), first, last},
		})
		if err != nil {
			return err
		}
	}
	for _, e := range alerts {
		err := ingesta.EmitJSON(s.AlertsTopic, strconv.FormatUint(e.ev.UserID, 10), alertRecord{
			Kind:        "large_purchase",
			UserID:      e.ev.UserID,
			ProductID:   e.ev.ProductID,
			ProductName: e.ev.ProductName,
			Price:       ingesta.Float(e.ev.Price),
			Threshold:   ingesta.Float(s.AlertPurchaseOver),
			Source:      recordSource{b.Topic(), b.Partition(), e.offset},
		})
		if err != nil {
			return err
		}
	}

	if a.totals == nil {
		a.totals = map[uint64]*Counts{}
	}
	for _, p := range products {
		t := a.totals[p.id]
		if t == nil {
			t = &Counts{}
			a.totals[p.id] = t
		}
		t.add(&p.counts)
	}
	ingesta.Log.Debugf("%s/%d offsets %d..=%d: %d events, %d products, %d alerts; %d products seen by this instance",
		b.Topic(), b.Partition(), first, last, len(events), len(products), len(alerts), len(a.totals))
	return nil
}

func init() { consumer.Handle(&ActivityStats{}) }

func main() {}
