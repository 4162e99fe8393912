//! Reading a runner's `/metrics`: the Prometheus text format parsed into
//! samples, and sums over the series that match some labels.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use reqwest::Method;

use crate::control::Api;

/// One sample: a series (name and labels) and its value.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Series name as exposed, suffix included (`_bucket`, `_sum`,
    /// `_count` for histograms).
    pub name: String,
    /// Label names to values, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The sample's value (counters and gauges alike are floats).
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// Every sample, in exposition order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parse the text format (comments skipped).
    pub fn parse(text: &str) -> Result<Scrape> {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .with_context(|| format!("metrics line without a value: {line:?}"))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("metrics line with a bad value: {line:?}"))?;
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .with_context(|| format!("unclosed labels: {line:?}"))?;
                    (name.to_owned(), parse_labels(body, line)?)
                }
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Ok(Scrape { samples })
    }

    /// Samples of `name` whose labels include every pair of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// Sum of the matching samples (0 when none match).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether any sample of `name` matches.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }
}

fn parse_labels(body: &str, line: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .with_context(|| format!("bad label in {line:?}"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => bail!("bad escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => bail!("unterminated label value in {line:?}"),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}

/// `GET /metrics`, parsed.
pub fn scrape(api: &Api) -> Result<Scrape> {
    let response = api
        .request(Method::GET, "/metrics", None)
        .send()
        .context("cannot scrape /metrics")?;
    if !response.status().is_success() {
        bail!("/metrics answered {}", response.status());
    }
    Scrape::parse(&response.text()?)
}

/// Scrapes until `done` holds, or fails after `timeout` with `what` and
/// the last scrape's values of `show`.
pub fn wait_for(
    api: &Api,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Scrape) -> bool,
) -> Result<Scrape> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = scrape(api)?;
        if done(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            let ours: Vec<String> = s
                .samples
                .iter()
                .filter(|x| x.labels.contains_key("deployment"))
                .map(|x| format!("{} {:?} {}", x.name, x.labels, x.value))
                .collect();
            bail!(
                "metrics: not {what} within {timeout:?}; deployment series:\n{}",
                ours.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes() {
        let s = Scrape::parse(
            "# HELP x y\nx_total{deployment=\"a/b\",topic=\"t\\\"q\"} 3\nplain 1.5\n",
        )
        .unwrap();
        assert_eq!(s.sum("x_total", &[("deployment", "a/b")]), 3.0);
        assert_eq!(s.samples[0].labels["topic"], "t\"q");
        assert_eq!(s.sum("plain", &[]), 1.5);
        assert!(!s.has("x_total", &[("deployment", "c")]));
    }
}
