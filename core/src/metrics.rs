//! Metrics: counters, gauges and histograms, rendered in the Prometheus text format.
//!
//! [`Metrics`] is a cloneable registry. Ask it for a handle ([`Counter`], [`Gauge`],
//! [`Histogram`]) once per series, when a component starts, keep the handle, and update
//! it on the hot path: an update is one or two relaxed atomic operations, with no lock
//! and no allocation. Registering (finding a series by name and label values) takes a
//! short lock and allocates, so it does not belong in a per-message path.
//! [`Metrics::render`] writes the text exposition format (version 0.0.4) that
//! `/metrics` serves.
//!
//! Which to use:
//!
//! - [`Counter`]: things that happen (messages accepted, provider errors). The name ends
//!   in `_total`.
//! - [`Gauge`]: a level this code owns and moves (open sessions, connected sockets).
//! - [`Metrics::gauge_fn`]: a level owned elsewhere, read at each scrape (inbox rows
//!   pending).
//! - [`Histogram`]: durations in seconds; [`LATENCY_BUCKETS`] fits request and provider
//!   latency.
//!
//! The gateway's own families are all defined in [`catalog`], registered once at start.
//!
//! Names start with `pincer_` and use base units (`_seconds`, `_bytes`). Label values
//! must come from a small, bounded set (agent, channel, reason), never from user ids or
//! session keys: each distinct set of values is a series kept for the life of the
//! process.
//!
//! # Example
//!
//! ```
//! use std::time::Instant;
//!
//! use pincer_core::metrics::{LATENCY_BUCKETS, Metrics};
//!
//! let metrics = Metrics::new();
//! // Once, when the component starts.
//! let accepted = metrics.counter(
//!     "pincer_messages_accepted_total",
//!     "Inbound messages accepted.",
//!     &[("channel", "telegram")],
//! );
//! let reply = metrics.histogram(
//!     "pincer_reply_seconds",
//!     "Time from accepting a message to sending the reply.",
//!     &[("agent", "main")],
//!     LATENCY_BUCKETS,
//! );
//!
//! // Per message: atomics only.
//! let started = Instant::now();
//! accepted.inc();
//! reply.observe_duration(started.elapsed());
//!
//! let text = metrics.render();
//! assert!(text.contains("pincer_messages_accepted_total{channel=\"telegram\"} 1\n"));
//! ```
//!
//! # Programming errors
//!
//! Registering one name as two types, with two help texts, or (for a histogram) with two
//! bucket layouts is a bug in the caller. Debug builds panic; release builds keep the
//! first registration and hand back a detached handle that counts but is never
//! rendered, so a metrics mistake cannot take the gateway down.

pub mod catalog;

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;

/// Bucket upper bounds, in seconds, for request and provider latency: from half a
/// millisecond (a health check, a cache hit) up to a minute (a long model reply).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A registry of metric families; cheap to clone, every clone shares the same series.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    registry: Arc<Registry>,
}

/// A monotonically increasing count; clones share the same value.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

/// A value that goes up and down; clones share the same value.
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

/// A distribution of durations in seconds over fixed buckets; clones share the same
/// buckets.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCore>);

/// The families, by name (so rendering walks them sorted).
#[derive(Default)]
struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

/// One metric name: its help, its type and its series.
struct Family {
    help: &'static str,
    /// The kind of the first registration; later ones must render as the same type.
    kind: Kind,
    /// Bucket bounds for a histogram family; empty otherwise.
    buckets: &'static [f64],
    /// Series by label set, label names sorted.
    series: BTreeMap<LabelKey, SeriesEntry>,
}

/// Label pairs sorted by name, values unescaped.
type LabelKey = Vec<(&'static str, Box<str>)>;

/// One series: its labels, escaped once at registration, and its value.
struct SeriesEntry {
    /// `name="value",...` without braces; empty when the series has no labels.
    labels: Arc<str>,
    series: Series,
}

/// A series' value.
#[derive(Clone)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    GaugeFn(GaugeFn),
    Histogram(Histogram),
}

/// A gauge read at render time.
type GaugeFn = Arc<dyn Fn() -> f64 + Send + Sync>;

/// What was asked for when registering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    GaugeFn,
    Histogram,
}

/// A histogram's buckets, count and sum.
struct HistogramCore {
    /// Finite upper bounds, strictly increasing.
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last slot is `+Inf`, so there is
    /// one more slot than bounds. The total count is their sum, which keeps `_count`
    /// equal to the `+Inf` bucket in every render.
    counts: Box<[AtomicU64]>,
    /// The sum of observations, as `f64` bits.
    sum: AtomicU64,
}

/// A family copied out of the registry, so rendering (and the `gauge_fn` closures it
/// calls) runs without the lock.
struct FamilySnapshot {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    series: Vec<(Arc<str>, Series)>,
}

/// An `f64` in exposition format: `+Inf`, `-Inf`, `NaN`, or a number Go's `ParseFloat`
/// reads.
struct Float(f64);

// === impl Metrics ===

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter (name must end in `_total`; checked with `debug_assert`) with the given
    /// label values; the same name and labels (in any order) return the same underlying
    /// counter.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name:?} must end in `_total`"
        );
        let series = self
            .registry
            .series(name, help, Kind::Counter, &[], labels, |_| {
                Series::Counter(Counter::detached())
            });
        match series {
            Some(Series::Counter(counter)) => counter,
            _ => Counter::detached(),
        }
    }

    /// A gauge with the given label values; the same name and labels return the same
    /// underlying gauge.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        let series = self
            .registry
            .series(name, help, Kind::Gauge, &[], labels, |_| {
                Series::Gauge(Gauge::detached())
            });
        match series {
            Some(Series::Gauge(gauge)) => gauge,
            _ => Gauge::detached(),
        }
    }

    /// Histogram in seconds with the given bucket upper bounds (sorted, finite; +Inf
    /// implied); the same name and labels return the same underlying histogram.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        buckets: &'static [f64],
    ) -> Histogram {
        debug_assert!(
            buckets.iter().all(|b| b.is_finite()) && buckets.windows(2).all(|w| w[0] < w[1]),
            "histogram {name:?} buckets must be finite and strictly increasing: {buckets:?}"
        );
        let series = self
            .registry
            .series(name, help, Kind::Histogram, buckets, labels, |bounds| {
                Series::Histogram(Histogram::detached(bounds))
            });
        match series {
            Some(Series::Histogram(histogram)) => histogram,
            _ => Histogram::detached(buckets),
        }
    }

    /// A gauge computed at render time (e.g. inbox pending read from elsewhere).
    ///
    /// `f` runs on the thread calling [`render`](Self::render), outside the registry's
    /// lock, so it may itself use this registry; it should be quick. Registering the same
    /// name and labels again replaces the function, so a restarted component can point
    /// the gauge at its new state.
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        let f: GaugeFn = Arc::new(f);
        self.registry
            .series(name, help, Kind::GaugeFn, &[], labels, |_| {
                Series::GaugeFn(f)
            });
    }

    /// Text exposition: one `# HELP` and `# TYPE` per family, families sorted by name,
    /// series sorted by labels; label values escaped (`\\`, `\"`, `\n`); histograms as
    /// cumulative `_bucket{le=..}`, `_sum` and `_count`.
    ///
    /// The lock is held only to copy out the series handles; values are read and
    /// `gauge_fn` closures called after it is released.
    pub fn render(&self) -> String {
        let families = self.registry.snapshot();
        let series: usize = families.iter().map(|f| f.series.len()).sum();
        let mut out = String::with_capacity(128 * families.len() + 96 * series);
        for family in &families {
            family
                .write(&mut out)
                .expect("writing to a String cannot fail");
        }
        out
    }
}

// === impl Counter ===

impl Counter {
    /// A counter no registry renders (the fallback after a registration error).
    fn detached() -> Self {
        Self(Arc::new(AtomicU64::new(0)))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

// === impl Gauge ===

impl Gauge {
    /// A gauge no registry renders (the fallback after a registration error).
    fn detached() -> Self {
        Self(Arc::new(AtomicI64::new(0)))
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

// === impl Histogram ===

impl Histogram {
    /// A histogram no registry renders (the fallback after a registration error).
    fn detached(bounds: &'static [f64]) -> Self {
        Self(Arc::new(HistogramCore {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0.0_f64.to_bits()),
        }))
    }

    /// Records one observation, in seconds. A NaN is ignored.
    pub fn observe(&self, seconds: f64) {
        if seconds.is_nan() {
            return;
        }
        let core = &*self.0;
        // The first bucket whose bound is >= the value (`le` is inclusive); past the
        // last bound this is the `+Inf` slot, which always exists.
        let slot = core.bounds.partition_point(|&bound| bound < seconds);
        core.counts[slot].fetch_add(1, Relaxed);
        let mut bits = core.sum.load(Relaxed);
        loop {
            let next = (f64::from_bits(bits) + seconds).to_bits();
            match core.sum.compare_exchange_weak(bits, next, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(current) => bits = current,
            }
        }
    }

    /// Records one observation of a duration.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.0.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The sum of the observations, in seconds.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Relaxed))
    }

    /// Approximate quantile from buckets (linear interpolation), for logs and tests.
    ///
    /// Works like Prometheus' `histogram_quantile`: the first bucket starts at zero, and
    /// a quantile that falls in the `+Inf` bucket is reported as the highest finite
    /// bound. `None` when nothing was observed, when there are no finite buckets, or
    /// when `q` is outside `0.0..=1.0`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) || self.0.bounds.is_empty() {
            return None;
        }
        let counts: Vec<u64> = self.0.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let bounds = self.0.bounds;
        let rank = q * total as f64;
        let mut below = 0_u64;
        for (i, &n) in counts.iter().enumerate() {
            let upto = below + n;
            // Skip empty buckets so that q = 0 lands on the first observation.
            if n > 0 && upto as f64 >= rank {
                let Some(&upper) = bounds.get(i) else {
                    return bounds.last().copied();
                };
                let lower = match i.checked_sub(1) {
                    Some(prev) => bounds[prev],
                    // Like Prometheus: the first bucket spans from zero, unless its bound
                    // is not above zero.
                    None => upper.min(0.0),
                };
                return Some(lower + (upper - lower) * ((rank - below as f64) / n as f64));
            }
            below = upto;
        }
        bounds.last().copied()
    }
}

// === impl Registry ===

impl Registry {
    /// Finds or creates the series `name{labels}`, or `None` after a registration error
    /// (which debug builds turn into a panic).
    fn series(
        &self,
        name: &'static str,
        help: &'static str,
        kind: Kind,
        buckets: &'static [f64],
        labels: &[(&'static str, &str)],
        make: impl FnOnce(&'static [f64]) -> Series,
    ) -> Option<Series> {
        debug_assert!(is_metric_name(name), "invalid metric name {name:?}");
        let key = label_key(name, kind, labels);
        let mut families = self.families.lock();
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            buckets,
            series: BTreeMap::new(),
        });
        let same_type = family.kind.type_name() == kind.type_name();
        debug_assert!(
            same_type,
            "metric {name:?} registered as a {} and again as a {}",
            family.kind.type_name(),
            kind.type_name()
        );
        if !same_type {
            return None;
        }
        debug_assert_eq!(
            family.help, help,
            "metric {name:?} registered with two help texts"
        );
        debug_assert_eq!(
            family.buckets, buckets,
            "histogram {name:?} registered with two bucket layouts"
        );
        match family.series.entry(key) {
            btree_map::Entry::Occupied(mut entry) => {
                let existing = entry.get().series.kind();
                if existing == Kind::GaugeFn && kind == Kind::GaugeFn {
                    entry.get_mut().series = make(family.buckets);
                }
                let same_kind = existing == kind;
                debug_assert!(
                    same_kind,
                    "gauge {name:?} with these labels is already a {existing:?}, not a {kind:?}"
                );
                same_kind.then(|| entry.get().series.clone())
            }
            btree_map::Entry::Vacant(entry) => {
                let labels = render_labels(entry.key());
                let series = make(family.buckets);
                entry.insert(SeriesEntry {
                    labels,
                    series: series.clone(),
                });
                Some(series)
            }
        }
    }

    /// Copies out every family's series handles, sorted by name then labels.
    fn snapshot(&self) -> Vec<FamilySnapshot> {
        let families = self.families.lock();
        families
            .iter()
            .map(|(&name, family)| FamilySnapshot {
                name,
                help: family.help,
                kind: family.kind,
                series: family
                    .series
                    .values()
                    .map(|entry| (Arc::clone(&entry.labels), entry.series.clone()))
                    .collect(),
            })
            .collect()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Registry");
        // `try_lock`: formatting must never wait on (or deadlock with) a registration.
        match self.families.try_lock() {
            Some(families) => d.field("families", &families.keys()),
            None => d.field("families", &format_args!("<locked>")),
        };
        d.finish()
    }
}

// === impl Series ===

impl Series {
    fn kind(&self) -> Kind {
        match self {
            Series::Counter(_) => Kind::Counter,
            Series::Gauge(_) => Kind::Gauge,
            Series::GaugeFn(_) => Kind::GaugeFn,
            Series::Histogram(_) => Kind::Histogram,
        }
    }
}

// === impl Kind ===

impl Kind {
    /// The `# TYPE` word.
    fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge | Kind::GaugeFn => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

// === impl HistogramCore ===

impl HistogramCore {
    /// Writes the cumulative `_bucket` lines, `_sum` and `_count`.
    fn write(&self, out: &mut String, name: &str, labels: &str) -> fmt::Result {
        let mut cumulative = 0_u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Relaxed);
            let le = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            write_sample(out, name, "_bucket", labels, Some(le), cumulative)?;
        }
        let sum = Float(f64::from_bits(self.sum.load(Relaxed)));
        write_sample(out, name, "_sum", labels, None, sum)?;
        write_sample(out, name, "_count", labels, None, cumulative)
    }
}

impl fmt::Debug for HistogramCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.bounds)
            .field(
                "count",
                &self.counts.iter().map(|c| c.load(Relaxed)).sum::<u64>(),
            )
            .field("sum", &f64::from_bits(self.sum.load(Relaxed)))
            .finish()
    }
}

// === impl FamilySnapshot ===

impl FamilySnapshot {
    fn write(&self, out: &mut String) -> fmt::Result {
        out.push_str("# HELP ");
        out.push_str(self.name);
        out.push(' ');
        escape_help(out, self.help);
        out.push('\n');
        writeln!(out, "# TYPE {} {}", self.name, self.kind.type_name())?;
        for (labels, series) in &self.series {
            match series {
                Series::Counter(c) => write_sample(out, self.name, "", labels, None, c.get())?,
                Series::Gauge(g) => write_sample(out, self.name, "", labels, None, g.get())?,
                Series::GaugeFn(f) => write_sample(out, self.name, "", labels, None, Float(f()))?,
                Series::Histogram(h) => h.0.write(out, self.name, labels)?,
            }
        }
        Ok(())
    }
}

// === impl Float ===

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            f.write_str("NaN")
        } else if v.is_infinite() {
            f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
        } else if v == 0.0 {
            // Also turns -0 into 0.
            f.write_str("0")
        } else if (1e-6..1e15).contains(&v.abs()) {
            // Shortest round-trip digits, no exponent: `0.0005`, `2.5`, `60`.
            write!(f, "{v}")
        } else {
            // Very large or small: `1e20`, `1.5e-9` rather than a run of zeros.
            write!(f, "{v:e}")
        }
    }
}

// === helpers ===

/// One sample line: `name{labels,le="…"} value`.
fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    le: Option<f64>,
    value: impl fmt::Display,
) -> fmt::Result {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        out.push_str(labels);
        if let Some(le) = le {
            if !labels.is_empty() {
                out.push(',');
            }
            write!(out, "le=\"{}\"", Float(le))?;
        }
        out.push('}');
    }
    writeln!(out, " {value}")
}

/// The labels as a map key: sorted by name, so the order given does not matter.
fn label_key(name: &str, kind: Kind, labels: &[(&'static str, &str)]) -> LabelKey {
    let mut key: LabelKey = labels.iter().map(|&(k, v)| (k, Box::from(v))).collect();
    key.sort_by(|a, b| a.0.cmp(b.0));
    debug_assert!(
        key.iter()
            .all(|(k, _)| is_label_name(k) && !(kind == Kind::Histogram && *k == "le")),
        "metric {name:?} has an invalid or reserved label name: {labels:?}"
    );
    debug_assert!(
        key.windows(2).all(|w| w[0].0 != w[1].0),
        "metric {name:?} repeats a label name: {labels:?}"
    );
    key
}

/// `a="x",b="y"`, values escaped.
fn render_labels(key: &LabelKey) -> Arc<str> {
    let mut out = String::new();
    for (i, (name, value)) in key.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    Arc::from(out)
}

/// Help text escaping: backslash and newline only.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicI64;
    use std::thread;

    use super::*;

    /// Renders and checks the text with [`check_exposition`].
    fn render_checked(metrics: &Metrics) -> String {
        let text = metrics.render();
        check_exposition(&text);
        text
    }

    /// A tiny exposition checker: comments are `# HELP` / `# TYPE` once per family,
    /// families come sorted, every other line is `name{labels} value` with a valid name,
    /// well-formed quoted and escaped labels, a parseable value, a name that belongs to
    /// the current family, and no series repeated.
    fn check_exposition(text: &str) {
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "no final newline: {text:?}"
        );
        let mut families: Vec<String> = Vec::new();
        let mut family: Option<(String, String)> = None;
        let mut seen = HashSet::new();
        for line in text.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let name = help.split(' ').next().unwrap();
                assert!(is_metric_name(name), "bad HELP: {line:?}");
                assert!(
                    families.last().is_none_or(|last| last.as_str() < name),
                    "families not sorted or repeated at {line:?}"
                );
                families.push(name.to_owned());
                family = None;
                continue;
            }
            if let Some(ty) = line.strip_prefix("# TYPE ") {
                let (name, ty) = ty.split_once(' ').expect("TYPE has a type");
                assert_eq!(Some(name), families.last().map(String::as_str), "{line:?}");
                assert!(["counter", "gauge", "histogram"].contains(&ty), "{line:?}");
                assert!(family.is_none(), "two TYPE lines: {line:?}");
                family = Some((name.to_owned(), ty.to_owned()));
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (family_name, ty) = family.as_ref().expect("sample before TYPE");

            let name_end = line.find(['{', ' ']).expect("sample has a value");
            let (name, mut rest) = line.split_at(name_end);
            assert!(is_metric_name(name), "bad name in {line:?}");
            let belongs = match ty.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family_name)),
                _ => name == family_name,
            };
            assert!(belongs, "{name} is not in family {family_name}: {line:?}");
            if let Some(labels) = rest.strip_prefix('{') {
                rest = check_labels(labels, line);
            }
            let value = rest.strip_prefix(' ').expect("one space before the value");
            assert!(
                matches!(value, "+Inf" | "-Inf" | "NaN")
                    || (value.parse::<f64>().is_ok()
                        && value
                            .chars()
                            .all(|c| c.is_ascii_digit() || "-.e".contains(c))),
                "bad value in {line:?}"
            );
            assert!(
                seen.insert(line.rsplit_once(' ').unwrap().0.to_owned()),
                "series repeated: {line:?}"
            );
        }
    }

    /// Checks `a="x",b="y"}` and returns what follows the brace.
    fn check_labels<'a>(mut s: &'a str, line: &str) -> &'a str {
        loop {
            let eq = s.find('=').unwrap_or_else(|| panic!("no '=' in {line:?}"));
            assert!(is_label_name(&s[..eq]), "bad label name in {line:?}");
            s = s[eq + 1..]
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
            let mut chars = s.char_indices();
            let close = loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        let escaped = chars.next().map(|(_, c)| c);
                        assert!(
                            matches!(escaped, Some('\\' | '"' | 'n')),
                            "bad escape in {line:?}"
                        );
                    }
                    Some((i, '"')) => break i,
                    Some((_, '\n')) => panic!("raw newline in {line:?}"),
                    Some(_) => {}
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            s = &s[close + 1..];
            if let Some(rest) = s.strip_prefix(',') {
                s = rest;
            } else {
                return s
                    .strip_prefix('}')
                    .unwrap_or_else(|| panic!("labels not closed in {line:?}"));
            }
        }
    }

    #[test]
    fn checker_rejects_malformed_text() {
        let head = "# HELP a_total A.\n# TYPE a_total counter\n";
        check_exposition(&format!("{head}a_total{{k=\"v\\\"\"}} 1\n"));
        for bad in [
            "a_total{k=\"v\"} x\n",
            "a_total{k=\"v} 1\n",
            "a_total{k=v} 1\n",
            "a_total{k=\"\\t\"} 1\n",
            "a_total{k=\"v\"}  1\n",
            "b_total 1\n",
            "a_total 1\na_total 2\n",
            "a_total 1",
        ] {
            let text = format!("{head}{bad}");
            let caught = std::panic::catch_unwind(|| check_exposition(&text));
            assert!(caught.is_err(), "checker accepted {bad:?}");
        }
    }

    #[test]
    fn renders_exact_text() {
        let m = Metrics::new();
        m.counter(
            "pincer_messages_total",
            "Messages accepted.",
            &[("channel", "telegram")],
        )
        .add(3);
        m.counter(
            "pincer_messages_total",
            "Messages accepted.",
            &[("channel", "discord")],
        )
        .inc();
        m.gauge("pincer_sessions", "Open sessions.", &[]).set(-2);
        m.gauge_fn(
            "pincer_inbox_pending",
            "Inbox rows waiting.\nRead from the store.",
            &[],
            || 7.5,
        );
        let h = m.histogram(
            "pincer_reply_seconds",
            "Reply latency.",
            &[("agent", "main")],
            &[0.1, 0.5],
        );
        h.observe(0.0625);
        h.observe(0.25);
        h.observe(3.0);
        let expected = "\
# HELP pincer_inbox_pending Inbox rows waiting.\\nRead from the store.
# TYPE pincer_inbox_pending gauge
pincer_inbox_pending 7.5
# HELP pincer_messages_total Messages accepted.
# TYPE pincer_messages_total counter
pincer_messages_total{channel=\"discord\"} 1
pincer_messages_total{channel=\"telegram\"} 3
# HELP pincer_reply_seconds Reply latency.
# TYPE pincer_reply_seconds histogram
pincer_reply_seconds_bucket{agent=\"main\",le=\"0.1\"} 1
pincer_reply_seconds_bucket{agent=\"main\",le=\"0.5\"} 2
pincer_reply_seconds_bucket{agent=\"main\",le=\"+Inf\"} 3
pincer_reply_seconds_sum{agent=\"main\"} 3.3125
pincer_reply_seconds_count{agent=\"main\"} 3
# HELP pincer_sessions Open sessions.
# TYPE pincer_sessions gauge
pincer_sessions -2
";
        assert_eq!(render_checked(&m), expected);
    }

    #[test]
    fn empty_registry_renders_nothing() {
        assert_eq!(render_checked(&Metrics::new()), "");
    }

    #[test]
    fn escapes_label_values() {
        let m = Metrics::new();
        m.counter("pincer_odd_total", "Odd labels.", &[("path", "a\\b\"c\nd")])
            .inc();
        let text = render_checked(&m);
        assert!(
            text.contains("pincer_odd_total{path=\"a\\\\b\\\"c\\nd\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_inf() {
        let m = Metrics::new();
        let h = m.histogram("pincer_wait_seconds", "Wait.", &[], &[0.01, 0.1, 1.0]);
        // On a bound counts in that bucket (`le` is inclusive).
        for v in [0.005, 0.01, 0.05, 0.5, 0.5, 2.0, 100.0] {
            h.observe(v);
        }
        h.observe(f64::NAN);
        h.observe_duration(Duration::from_millis(50));
        let text = render_checked(&m);
        let expected = "\
pincer_wait_seconds_bucket{le=\"0.01\"} 2
pincer_wait_seconds_bucket{le=\"0.1\"} 4
pincer_wait_seconds_bucket{le=\"1\"} 6
pincer_wait_seconds_bucket{le=\"+Inf\"} 8
";
        assert!(text.contains(expected), "{text}");
        assert!(text.contains("pincer_wait_seconds_count 8\n"), "{text}");
        assert_eq!(h.count(), 8);
        assert!((h.sum() - 103.115).abs() < 1e-9, "{}", h.sum());
    }

    #[test]
    fn same_labels_return_the_same_series() {
        let m = Metrics::new();
        let a = m.counter("pincer_x_total", "X.", &[("a", "1"), ("b", "2")]);
        let b = m.counter("pincer_x_total", "X.", &[("b", "2"), ("a", "1")]);
        let other = m.counter("pincer_x_total", "X.", &[("a", "1"), ("b", "3")]);
        a.inc();
        b.add(2);
        other.inc();
        assert_eq!(a.get(), 3);
        assert_eq!(b.get(), 3);
        assert_eq!(other.get(), 1);

        let g1 = m.gauge("pincer_g", "G.", &[]);
        let g2 = m.clone().gauge("pincer_g", "G.", &[]);
        g1.inc();
        g1.inc();
        g2.dec();
        assert_eq!(g2.get(), 1);

        let h1 = m.histogram("pincer_h_seconds", "H.", &[], LATENCY_BUCKETS);
        let h2 = m.histogram("pincer_h_seconds", "H.", &[], LATENCY_BUCKETS);
        h1.observe(0.1);
        assert_eq!(h2.count(), 1);

        let text = render_checked(&m);
        assert!(
            text.contains("pincer_x_total{a=\"1\",b=\"2\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("pincer_x_total{a=\"1\",b=\"3\"} 1\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE pincer_x_total counter").count(), 1);
    }

    #[test]
    fn gauge_fn_is_read_at_render() {
        let m = Metrics::new();
        let pending = Arc::new(AtomicI64::new(4));
        let read = Arc::clone(&pending);
        m.gauge_fn(
            "pincer_inbox_pending",
            "Pending.",
            &[("agent", "main")],
            move || read.load(Relaxed) as f64,
        );
        assert!(render_checked(&m).contains("pincer_inbox_pending{agent=\"main\"} 4\n"));
        pending.store(9, Relaxed);
        assert!(render_checked(&m).contains("pincer_inbox_pending{agent=\"main\"} 9\n"));

        // Registering again replaces the function (a restarted component).
        m.gauge_fn(
            "pincer_inbox_pending",
            "Pending.",
            &[("agent", "main")],
            || 0.25,
        );
        let text = render_checked(&m);
        assert!(
            text.contains("pincer_inbox_pending{agent=\"main\"} 0.25\n"),
            "{text}"
        );
        assert_eq!(text.matches("pincer_inbox_pending{").count(), 1);
    }

    #[test]
    fn gauge_fn_may_use_the_registry() {
        let m = Metrics::new();
        let inner = m.clone();
        m.gauge_fn("pincer_reentrant", "Calls back in.", &[], move || {
            inner.counter("pincer_renders_total", "Renders.", &[]).inc();
            1.0
        });
        render_checked(&m);
        let text = render_checked(&m);
        assert!(text.contains("pincer_renders_total 2\n"), "{text}");
    }

    #[test]
    fn concurrent_updates_sum() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 100_000;
        let m = Metrics::new();
        thread::scope(|s| {
            for _ in 0..THREADS {
                let m = m.clone();
                s.spawn(move || {
                    let counter = m.counter("pincer_hits_total", "Hits.", &[("k", "v")]);
                    let gauge = m.gauge("pincer_level", "Level.", &[]);
                    let histogram = m.histogram("pincer_t_seconds", "T.", &[], LATENCY_BUCKETS);
                    for i in 0..PER_THREAD {
                        counter.inc();
                        gauge.inc();
                        gauge.dec();
                        if i % 10 == 0 {
                            histogram.observe(0.25);
                        }
                    }
                });
            }
            // Renders while the writers run stay well-formed.
            for _ in 0..20 {
                render_checked(&m);
            }
        });
        let counter = m.counter("pincer_hits_total", "Hits.", &[("k", "v")]);
        assert_eq!(counter.get(), THREADS * PER_THREAD);
        assert_eq!(m.gauge("pincer_level", "Level.", &[]).get(), 0);
        let histogram = m.histogram("pincer_t_seconds", "T.", &[], LATENCY_BUCKETS);
        assert_eq!(histogram.count(), THREADS * PER_THREAD / 10);
        assert_eq!(histogram.sum(), 0.25 * (THREADS * PER_THREAD / 10) as f64);
        let text = render_checked(&m);
        assert!(
            text.contains("pincer_hits_total{k=\"v\"} 400000\n"),
            "{text}"
        );
        assert!(text.contains("pincer_t_seconds_count 40000\n"), "{text}");
    }

    #[test]
    fn quantile_interpolates_within_buckets() {
        let m = Metrics::new();
        let h = m.histogram("pincer_q_seconds", "Q.", &[], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(h.quantile(0.5), None, "nothing observed");
        for v in [0.5, 1.5, 2.5, 3.5] {
            for _ in 0..25 {
                h.observe(v);
            }
        }
        let q = |q| h.quantile(q).unwrap();
        assert!((q(0.25) - 1.0).abs() < 1e-9, "{}", q(0.25));
        assert!((q(0.5) - 2.0).abs() < 1e-9, "{}", q(0.5));
        assert!((q(0.9) - 3.6).abs() < 1e-9, "{}", q(0.9));
        assert!((q(1.0) - 4.0).abs() < 1e-9, "{}", q(1.0));
        assert_eq!(q(0.0), 0.0);
        assert!(q(0.1) <= q(0.5) && q(0.5) <= q(0.99));
        assert_eq!(h.quantile(-0.1), None);
        assert_eq!(h.quantile(1.5), None);
        assert_eq!(h.quantile(f64::NAN), None);

        // Past the last bound: the highest finite bound.
        let slow = m.histogram("pincer_slow_seconds", "Slow.", &[], &[1.0, 2.0]);
        slow.observe(100.0);
        assert_eq!(slow.quantile(0.99), Some(2.0));

        // Empty buckets before the data are skipped.
        let fast = m.histogram("pincer_fast_seconds", "Fast.", &[], LATENCY_BUCKETS);
        for _ in 0..100 {
            fast.observe_duration(Duration::from_millis(3));
        }
        let p99 = fast.quantile(0.99).unwrap();
        assert!((0.0025..=0.005).contains(&p99), "{p99}");
        assert_eq!(fast.quantile(0.0), Some(0.0025));

        let none = m.histogram("pincer_inf_seconds", "Only +Inf.", &[], &[]);
        none.observe(1.0);
        assert_eq!(none.quantile(0.5), None);
        assert!(render_checked(&m).contains("pincer_inf_seconds_bucket{le=\"+Inf\"} 1\n"));
    }

    #[test]
    fn floats_render_in_exposition_form() {
        let cases = [
            (0.0005, "0.0005"),
            (1.0, "1"),
            (2.5, "2.5"),
            (60.0, "60"),
            (-0.0, "0"),
            (-3.5, "-3.5"),
            (1e20, "1e20"),
            (1.5e-9, "1.5e-9"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(Float(v).to_string(), want);
        }
        let m = Metrics::new();
        m.gauge_fn("pincer_big", "Big.", &[], || 1e20);
        m.gauge_fn("pincer_nan", "NaN.", &[], || f64::NAN);
        render_checked(&m);
    }

    #[test]
    fn debug_is_short() {
        let m = Metrics::new();
        m.counter("pincer_a_total", "A.", &[]).inc();
        let h = m.histogram("pincer_b_seconds", "B.", &[], &[1.0]);
        h.observe(0.5);
        assert_eq!(
            format!("{m:?}"),
            "Metrics { registry: Registry { families: [\"pincer_a_total\", \"pincer_b_seconds\"] } }"
        );
        assert_eq!(
            format!("{h:?}"),
            "Histogram(Histogram { bounds: [1.0], count: 1, sum: 0.5 })"
        );
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "must end in `_total`")]
    fn counter_name_needs_total() {
        Metrics::new().counter("pincer_hits", "Hits.", &[]);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "registered as a counter and again as a gauge")]
    fn one_name_two_types_panics_in_debug() {
        let m = Metrics::new();
        m.counter("pincer_x_total", "X.", &[]);
        m.gauge("pincer_x_total", "X.", &[]);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "two help texts")]
    fn one_name_two_helps_panics_in_debug() {
        let m = Metrics::new();
        m.counter("pincer_x_total", "X.", &[]);
        m.counter("pincer_x_total", "Y.", &[]);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "invalid or reserved label name")]
    fn histogram_le_label_panics_in_debug() {
        Metrics::new().histogram("pincer_h_seconds", "H.", &[("le", "1")], &[1.0]);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn registration_errors_keep_the_first_in_release() {
        let m = Metrics::new();
        m.counter("pincer_x_total", "X.", &[]).inc();
        let stray = m.gauge("pincer_x_total", "Other.", &[]);
        stray.set(5);
        assert_eq!(stray.get(), 5);
        m.gauge("pincer_g", "G.", &[]).set(1);
        m.gauge_fn("pincer_g", "G.", &[], || 9.0);
        let text = render_checked(&m);
        assert!(text.contains("# HELP pincer_x_total X.\n"), "{text}");
        assert!(text.contains("pincer_x_total 1\n"), "{text}");
        assert!(text.contains("pincer_g 1\n"), "{text}");
        assert!(!text.contains("pincer_x_total 5"), "{text}");
    }
}
