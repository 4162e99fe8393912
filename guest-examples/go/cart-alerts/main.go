// Command cart-alerts watches user-activity events for bursts of
// add-to-cart actions: when one user adds to their cart threshold times
// within window_ms (by the events' own ts, else their records'
// timestamps), it emits one alert for the burst.
//
// It reads the shop's events and those of the Spanish-language Kafka
// tutorial our users come from, which name the action differently and may
// carry no ts or product_id.
//
// It shows what the Go SDK's per-instance state is for: each user's recent
// add-to-cart times are kept across batches, so a burst split over several
// batches is still seen. The state is a cache, rebuilt from the stream
// after a recycle (a burst straddling a restart may then go unnoticed), and
// records the instance has already counted are skipped by offset, so a
// redelivered batch does not count twice.
//
// See README.md for config keys and the exact input and output formats.
package main

import (
	"slices"
	"strconv"

	"example.invalid/ingesta/sdk/go/config"
	"example.invalid/ingesta/sdk/go/consumer"
	"example.invalid/ingesta/sdk/go/ingesta"
)

// Settings are the deployment's settings.
type Settings struct {
	WindowMs    int64
	Threshold   int
	AlertsTopic string
}

// LoadSettings reads and checks the settings.
func LoadSettings() (Settings, error) {
	window, err := config.ParseOr[int64]("window_ms", 60_000)
	if err != nil {
		return Settings{}, err
	}
	if window <= 0 {
		return Settings{}, ingesta.Permanentf("config key window_ms must be positive, got %d", window)
	}
	threshold, err := config.ParseOr("threshold", 3)
	if err != nil {
		return Settings{}, err
	}
	if threshold < 2 {
		return Settings{}, ingesta.Permanentf("config key threshold must be at least 2, got %d", threshold)
	}
	return Settings{
		WindowMs:    window,
		Threshold:   threshold,
		AlertsTopic: config.GetOr("alerts_topic", "cart-alerts"),
	}, nil
}

// Event is the part of a user-activity event this handler reads. Fields
// are pointers so a missing (or null) field can be told from a zero.
type Event struct {
	UserID    *uint64 `json:"user_id"`
	Action    *string `json:"action"`
	ProductID *uint64 `json:"product_id"`
	TS        *int64  `json:"ts"`
}

// addToCart holds every spelling of the add-to-cart action, matched
// exactly (case-sensitive): ours, then the tutorial's and the other
// aliases activity-stats accepts, so both count the same additions.
var addToCart = map[string]bool{
	"add_to_cart": true, "added_to_cart": true, "product_added_to_cart": true, "cart_add": true,
}

// addition is one add-to-cart.
type addition struct {
	ts int64
	// product is nil when the event named none: the addition still counts
	// towards a burst, but adds nothing to its product_ids.
	product *uint64
	offset  int64
}

// user is one user's recent additions, in ts order, and the ts of their
// last alert.
type user struct {
	recent    []addition
	lastAlert int64
	alerted   bool
}

// Alert is the value of an alert record.
type Alert struct {
	Kind       string   `json:"kind"`
	UserID     uint64   `json:"user_id"`
	Count      int      `json:"count"`
	WindowMs   int64    `json:"window_ms"`
	FirstTS    int64    `json:"first_ts"`
	LastTS     int64    `json:"last_ts"`
	ProductIDs []uint64 `json:"product_ids"`
	Source     Source   `json:"source"`
}

// Source is the record that completed the burst.
type Source struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// CartAlerts is the handler: one per partition instance.
type CartAlerts struct {
	settings Settings
	users    map[uint64]*user
	// next is the lowest offset not yet counted (0: nothing counted yet).
	next    int64
	counted bool
	// newest is the highest event ts seen, to forget idle users.
	newest int64
}

type parsed struct {
	user    uint64
	ts      int64
	product *uint64
	offset  int64
}

// OnBatch validates the batch, then updates each user's window and emits
// alerts. Nothing changes if any record is invalid.
func (c *CartAlerts) OnBatch(b ingesta.Batch) error {
	if c.users == nil {
		s, err := LoadSettings()
		if err != nil {
			return err
		}
		c.settings, c.users = s, map[uint64]*user{}
	}
	adds, err := c.parse(b)
	if err != nil {
		return err
	}
	alerts := 0
	for _, a := range adds {
		if end, ok := c.add(a); ok {
			alerts++
			if err := c.alert(b, a, end); err != nil {
				return err
			}
		}
	}
	if last, ok := b.LastOffset(); ok {
		c.next, c.counted = last+1, true
	}
	c.forgetIdleUsers()
	ingesta.Log.Debugf("%s/%d: %d add-to-cart events, %d alerts, %d users tracked",
		b.Topic(), b.Partition(), len(adds), alerts, len(c.users))
	return nil
}

// parse reads the batch's add-to-cart events, skipping records this
// instance already counted; a bad record is a permanent error naming it.
func (c *CartAlerts) parse(b ingesta.Batch) ([]parsed, error) {
	var adds []parsed
	for r := range b.Records() {
		if c.counted && r.Offset() < c.next {
			continue // redelivered: counted before
		}
		var ev Event
		if err := r.DecodeJSON(&ev); err != nil {
			return nil, err
		}
		switch {
		case ev.UserID == nil:
			return nil, r.Error("field user_id must be a non-negative integer")
		case ev.Action == nil:
			return nil, r.Error("field action must be a string")
		}
		ts, ok := r.Timestamp() // the event's own ts, when it has one, wins
		if ev.TS != nil {
			ts, ok = *ev.TS, true
		}
		if !ok {
			// Without a time the event cannot be placed in a window.
			return nil, r.Error("missing field ts and the record has no timestamp")
		}
		if addToCart[*ev.Action] {
			adds = append(adds, parsed{*ev.UserID, ts, ev.ProductID, r.Offset()})
		}
	}
	return adds, nil
}

// add records one addition. If it completes a burst (threshold additions
// within one window) that has not been alerted yet, it returns the ts at
// which that burst's window ends.
func (c *CartAlerts) add(a parsed) (int64, bool) {
	w := c.settings.WindowMs
	u := c.users[a.user]
	if u == nil {
		u = &user{}
		c.users[a.user] = u
	}
	c.newest = max(c.newest, a.ts)
	// Keep the additions in ts order (events may arrive late).
	i, _ := slices.BinarySearchFunc(u.recent, a.ts, func(x addition, ts int64) int {
		if x.ts <= ts {
			return -1
		}
		return 1
	})
	u.recent = slices.Insert(u.recent, i, addition{a.ts, a.product, a.offset})
	// Forget additions that can no longer share a window with the newest.
	newest := u.recent[len(u.recent)-1].ts
	drop := 0
	for drop < len(u.recent) && u.recent[drop].ts <= newest-w {
		drop++
	}
	u.recent = slices.Delete(u.recent, 0, drop)
	// Windows (end-w, end] that contain this addition end at it or at a
	// later addition less than w after it.
	for _, end := range u.recent {
		if end.ts < a.ts || end.ts-w >= a.ts {
			continue
		}
		if countIn(u.recent, end.ts-w, end.ts) < c.settings.Threshold {
			continue
		}
		if u.alerted && u.lastAlert > end.ts-w {
			return 0, false // part of a burst already alerted
		}
		u.alerted, u.lastAlert = true, end.ts
		return end.ts, true
	}
	return 0, false
}

// countIn counts the additions in (from, to].
func countIn(recent []addition, from, to int64) int {
	n := 0
	for _, x := range recent {
		if x.ts > from && x.ts <= to {
			n++
		}
	}
	return n
}

// alert emits the alert for a's user's burst whose window ends at end.
func (c *CartAlerts) alert(b ingesta.Batch, a parsed, end int64) error {
	s := c.settings
	u := c.users[a.user]
	alert := Alert{
		Kind:       "cart_burst",
		UserID:     a.user,
		WindowMs:   s.WindowMs,
		ProductIDs: []uint64{},
		Source:     Source{b.Topic(), b.Partition(), a.offset},
	}
	for _, x := range u.recent {
		if x.ts > end-s.WindowMs && x.ts <= end {
			if alert.Count == 0 {
				alert.FirstTS = x.ts
			}
			alert.Count++
			alert.LastTS = x.ts
			if x.product != nil && !slices.Contains(alert.ProductIDs, *x.product) {
				alert.ProductIDs = append(alert.ProductIDs, *x.product)
			}
		}
	}
	return ingesta.EmitJSON(s.AlertsTopic, strconv.FormatUint(a.user, 10), alert)
}

// forgetIdleUsers drops users with nothing inside the newest window, which
// bounds memory by the number of users active within one window.
func (c *CartAlerts) forgetIdleUsers() {
	for id, u := range c.users {
		if len(u.recent) == 0 || u.recent[len(u.recent)-1].ts <= c.newest-c.settings.WindowMs {
			if !u.alerted || u.lastAlert <= c.newest-c.settings.WindowMs {
				delete(c.users, id)
			}
		}
	}
}

func init() { consumer.Handle(&CartAlerts{}) }

func main() {}
