//! Who is calling: bearer tokens, tenants, their grants and maxima.
//!
//! Tokens are never stored: the config holds their SHA-256, and a request's
//! token is hashed and compared in constant time. A tenant may only name
//! topics and consumer groups its grants match — literal names or
//! prefixes, like Kafka's ACL resource patterns; the operator token sees
//! and may do everything.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a caller may not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token, or not one of ours.
    #[error("missing or unknown bearer token: send `Authorization: Bearer <token>`")]
    Unauthenticated,
    /// Outside the caller's grants or over its tenant's maxima; the
    /// message names the object and the grant or maximum.
    #[error("{0}")]
    Denied(String),
}

/// A token table that cannot be built, naming the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTokens(String);

/// One grant of a topic or group name, as Kafka's ACLs write resource
/// patterns: `{ literal = "shop.orders" }` matches that name only,
/// `{ prefix = "shop." }` every name starting with it. A bare string is a
/// prefix (what grants always were, so existing configs keep working).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Grant {
    /// A bare string: a prefix.
    Bare(String),
    /// `{ literal = "..." }` or `{ prefix = "..." }`.
    Pattern(Pattern),
}

/// The explicit forms of a [`Grant`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Pattern {
    /// Exactly this name.
    Literal(String),
    /// Every name starting with this.
    Prefix(String),
}

impl Grant {
    /// Whether `name` is granted.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Grant::Bare(p) | Grant::Pattern(Pattern::Prefix(p)) => name.starts_with(p.as_str()),
            Grant::Pattern(Pattern::Literal(l)) => name == l,
        }
    }
}

impl From<&str> for Grant {
    fn from(prefix: &str) -> Self {
        Grant::Bare(prefix.to_owned())
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Bare(p) | Grant::Pattern(Pattern::Prefix(p)) => write!(f, "prefix {p:?}"),
            Grant::Pattern(Pattern::Literal(l)) => write!(f, "literal {l:?}"),
        }
    }
}

/// A tenant as declared in the runner config (`[[control.tenant]]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name; owns its modules and deployments.
    pub name: String,
    /// Hex SHA-256 of the tenant's bearer token (`ingesta hash-token`).
    pub token_sha256: String,
    /// Topics the tenant's deployments may consume.
    #[serde(default)]
    pub read_topics: Vec<Grant>,
    /// Topics the tenant's deployments may produce to (outputs and
    /// dead-letter topics).
    #[serde(default)]
    pub write_topics: Vec<Grant>,
    /// Consumer groups the tenant's deployments may use.
    #[serde(default)]
    pub groups: Vec<Grant>,
    /// Topics the tenant may create, alter and delete through the API
    /// (separate from reading and writing them).
    #[serde(default)]
    pub create_topics: Vec<Grant>,
    /// Most partitions of one topic the tenant creates.
    pub max_topic_partitions: Option<u64>,
    /// Most partitions of all existing topics matching `create_topics`.
    pub max_total_partitions: Option<u64>,
    /// Highest `retention.ms` of a topic the tenant creates (unlimited,
    /// `-1`, refused when set).
    pub max_retention_ms: Option<u64>,
    /// Most `retention.bytes` × partitions over all existing topics
    /// matching `create_topics` (unlimited refused when set).
    pub max_retention_bytes_total: Option<u64>,
    /// Most deployments the tenant may have; unset means no cap.
    pub max_deployments: Option<usize>,
    /// Most modules the tenant may own; unset means no cap.
    pub max_modules: Option<usize>,
    /// Most bytes of modules the tenant may own, all together.
    pub max_module_bytes: Option<u64>,
    /// Most live instances of all the tenant's deployments on one runner;
    /// more wait for one to be given back (unset: the runner's pool).
    pub max_instances: Option<u32>,
    /// Highest `limits.memory_mib` the tenant may ask for.
    pub max_memory_mib: Option<u64>,
    /// Highest `limits.deadline_ms` the tenant may ask for.
    pub max_deadline_ms: Option<u64>,
    // The caps below bound host resources a tenant can hold (memory
    // buffered for outputs and batches, log volume); unset: no cap beyond
    // the runner's own validation.
    /// Highest `limits.max_output_records`.
    pub max_output_records: Option<u64>,
    /// Highest `limits.max_output_bytes` (bytes as produced).
    pub max_output_bytes: Option<u64>,
    /// Highest `limits.fuel`.
    pub max_fuel: Option<u64>,
    /// Highest `limits.log_lines_per_second`.
    pub max_log_lines_per_second: Option<u64>,
    /// Highest `limits.log_burst_lines`.
    pub max_log_burst_lines: Option<u64>,
    /// Highest `batch.max_bytes` (what one batch, and each waiting one,
    /// holds in host memory).
    pub max_batch_bytes: Option<u64>,
    /// Highest `batch.max_records`.
    pub max_batch_records: Option<u64>,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per request, cloned from the token table once; boxing would add an allocation per request"
)]
pub enum Caller {
    /// Sees every tenant's objects.
    Operator,
    /// Sees only its own objects, within its grants.
    Tenant(TenantConfig),
}

impl Caller {
    /// The tenant name for logs and ownership (`*` for the operator).
    pub fn name(&self) -> &str {
        match self {
            Caller::Operator => "*",
            Caller::Tenant(t) => &t.name,
        }
    }

    /// Whether the caller may see objects owned by `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Tenant(t) => t.name == tenant,
        }
    }

    /// Refuses (403, naming it) a topic the caller may not read.
    pub fn check_read_topic(&self, topic: &str) -> Result<(), Refusal> {
        self.check(topic, "read topic", |t| &t.read_topics)
    }

    /// Refuses (403, naming it) a topic the caller may not write.
    pub fn check_write_topic(&self, topic: &str) -> Result<(), Refusal> {
        self.check(topic, "write topic", |t| &t.write_topics)
    }

    /// Refuses (403, naming it) a topic the caller may not create, alter
    /// or delete.
    pub fn check_create_topic(&self, topic: &str) -> Result<(), Refusal> {
        self.check(topic, "create, alter or delete topic", |t| &t.create_topics)
    }

    /// Whether the caller may list and describe `topic`: one it may read,
    /// write or create.
    pub fn sees_topic(&self, topic: &str) -> bool {
        match self {
            Caller::Operator => true,
            Caller::Tenant(t) => t
                .read_topics
                .iter()
                .chain(&t.write_topics)
                .chain(&t.create_topics)
                .any(|g| g.matches(topic)),
        }
    }

    /// Refuses (403, naming it) a consumer group outside the grants.
    pub fn check_group(&self, group: &str) -> Result<(), Refusal> {
        self.check(group, "use consumer group", |t| &t.groups)
    }

    /// Refuses (403, naming it) what a spec asks for outside the caller's
    /// grants (topics it reads or writes, its group) or over its tenant's
    /// maxima (memory, deadline).
    pub fn check_spec(
        &self,
        deployment: &str,
        spec: &crate::deployment::Spec,
    ) -> Result<(), Refusal> {
        for (role, topic) in spec.topics() {
            if role == "input" {
                self.check_read_topic(topic)?;
            } else {
                self.check_write_topic(topic)?;
            }
        }
        if let Some(c) = spec.kind.consumer() {
            self.check_group(&c.group)?;
        }
        let Caller::Tenant(t) = self else {
            return Ok(());
        };
        let over = |what: &str, asked: u64, max: Option<u64>| match max {
            Some(max) if asked > max => Err(Refusal::Denied(format!(
                "deployment {deployment:?}: {what} {asked} is over tenant {:?}'s maximum of {max}",
                t.name
            ))),
            _ => Ok(()),
        };
        over(
            "limits.memory_mib",
            spec.limits.memory_mib,
            t.max_memory_mib,
        )?;
        over(
            "limits.deadline_ms",
            spec.limits.deadline_ms,
            t.max_deadline_ms,
        )?;
        let (l, m) = (&spec.limits, t);
        over(
            "limits.max_output_records",
            l.max_output_records,
            m.max_output_records,
        )?;
        over(
            "limits.max_output_bytes",
            l.max_output_bytes,
            m.max_output_bytes,
        )?;
        if let Some(fuel) = l.fuel {
            over("limits.fuel", fuel, m.max_fuel)?;
        }
        over(
            "limits.log_lines_per_second",
            u64::from(l.log_lines_per_second),
            m.max_log_lines_per_second,
        )?;
        over(
            "limits.log_burst_lines",
            u64::from(l.log_burst_lines),
            m.max_log_burst_lines,
        )?;
        if let Some(c) = spec.kind.consumer() {
            over(
                "batch.max_bytes",
                c.batch.max_bytes as u64,
                m.max_batch_bytes,
            )?;
            over(
                "batch.max_records",
                c.batch.max_records as u64,
                m.max_batch_records,
            )?;
        }
        Ok(())
    }

    fn check(
        &self,
        name: &str,
        what: &str,
        grants: impl Fn(&TenantConfig) -> &Vec<Grant>,
    ) -> Result<(), Refusal> {
        let Caller::Tenant(t) = self else {
            return Ok(());
        };
        let granted = grants(t);
        if granted.iter().any(|g| g.matches(name)) {
            return Ok(());
        }
        let list: Vec<String> = granted.iter().map(ToString::to_string).collect();
        Err(Refusal::Denied(format!(
            "tenant {:?} may not {what} {name:?}: it matches none of its grants [{}]",
            t.name,
            list.join(", ")
        )))
    }
}

/// The token table: operator and tenants, by token hash.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    operator: Option<[u8; 32]>,
    tenants: Vec<([u8; 32], TenantConfig)>,
    /// The scrape token's hash; `None`: `/metrics` is open.
    metrics: Option<[u8; 32]>,
}

/// Which series a `/metrics` scrape may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeScope {
    /// The runner's own families and every deployment's.
    All,
    /// Only the named tenant's deployments' series.
    Tenant(String),
}

impl Auth {
    /// The tenant called `name`, if this runner's config has it.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().map(|(_, t)| t).find(|t| t.name == name)
    }

    /// Builds the table; fails on a hash that is not 64 hex digits or a
    /// token hash used twice.
    pub fn new(operator_sha256: Option<&str>, tenants: &[TenantConfig]) -> Result<Self, BadTokens> {
        let operator = operator_sha256
            .map(|h| {
                parse_hash(h).ok_or_else(|| {
                    BadTokens(format!("control.operator_token_sha256: {NOT_A_HASH}"))
                })
            })
            .transpose()?;
        let mut table = Vec::new();
        for t in tenants {
            let hash = parse_hash(&t.token_sha256).ok_or_else(|| {
                BadTokens(format!("tenant {:?}: token_sha256: {NOT_A_HASH}", t.name))
            })?;
            if Some(hash) == operator || table.iter().any(|(h, _)| *h == hash) {
                return Err(BadTokens(format!(
                    "tenant {:?}: token_sha256 is already used by another tenant or the operator",
                    t.name
                )));
            }
            table.push((hash, t.clone()));
        }
        Ok(Self {
            operator,
            tenants: table,
            metrics: None,
        })
    }

    /// Require a bearer token on `/metrics`: the one hashed as
    /// `metrics_sha256` (Prometheus's), the operator's, or a tenant's for
    /// its own series (see [`Auth::scrape`]).
    pub fn with_metrics_token(mut self, metrics_sha256: &str) -> Result<Self, BadTokens> {
        let hash = parse_hash(metrics_sha256)
            .ok_or_else(|| BadTokens(format!("control.metrics_token_sha256: {NOT_A_HASH}")))?;
        if self.operator == Some(hash) || self.tenants.iter().any(|(h, _)| *h == hash) {
            return Err(BadTokens(
                "control.metrics_token_sha256 is also the operator's or a tenant's token; give the scraper a token of its own".into(),
            ));
        }
        self.metrics = Some(hash);
        Ok(self)
    }

    /// What a scrape presenting `authorization` may read: everything when
    /// no scrape token is configured, or for the scrape token and the
    /// operator; a tenant's own series for a tenant token; else 401.
    pub fn scrape(&self, authorization: Option<&str>) -> Result<ScrapeScope, Refusal> {
        let Some(metrics) = &self.metrics else {
            return Ok(ScrapeScope::All);
        };
        if constant_time_eq(metrics, &bearer_hash(authorization)?) {
            return Ok(ScrapeScope::All);
        }
        Ok(match self.authenticate(authorization)? {
            Caller::Operator => ScrapeScope::All,
            Caller::Tenant(t) => ScrapeScope::Tenant(t.name),
        })
    }

    /// The caller presenting `authorization` (the header's value), or 401.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Refusal> {
        let hash = bearer_hash(authorization)?;
        // Compare against every entry so timing says nothing about which
        // (or whether one) matched.
        let mut found: Option<Caller> = None;
        if let Some(op) = &self.operator
            && constant_time_eq(op, &hash)
        {
            found = Some(Caller::Operator);
        }
        for (h, t) in &self.tenants {
            if constant_time_eq(h, &hash) {
                found = Some(Caller::Tenant(t.clone()));
            }
        }
        found.ok_or(Refusal::Unauthenticated)
    }
}

/// The SHA-256 of the bearer token in `authorization`, or 401.
fn bearer_hash(authorization: Option<&str>) -> Result<[u8; 32], Refusal> {
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Unauthenticated)?;
    Ok(Sha256::digest(token.as_bytes()).into())
}

/// The hex SHA-256 of a token, as the config wants it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

const NOT_A_HASH: &str = "expected 64 hex digits (the SHA-256 of the token)";

fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    hex::decode(hex_hash.trim()).ok()?.try_into().ok()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, token: &str) -> TenantConfig {
        TenantConfig {
            name: name.into(),
            token_sha256: hash_token(token),
            read_topics: vec!["shop.".into()],
            write_topics: vec!["shop.out.".into()],
            groups: vec!["shop-".into()],
            max_deployments: None,
            max_memory_mib: None,
            max_deadline_ms: None,
            ..TenantConfig::default()
        }
    }

    #[test]
    fn tokens_map_to_callers_and_anything_else_is_401() {
        let auth = Auth::new(Some(&hash_token("op")), &[tenant("shop", "s3cret")]).unwrap();
        assert!(matches!(
            auth.authenticate(Some("Bearer op")),
            Ok(Caller::Operator)
        ));
        assert!(
            matches!(auth.authenticate(Some("Bearer s3cret")), Ok(Caller::Tenant(t)) if t.name == "shop")
        );
        for bad in [
            None,
            Some(""),
            Some("Bearer "),
            Some("s3cret"),
            Some("Bearer nope"),
        ] {
            assert!(
                matches!(auth.authenticate(bad), Err(Refusal::Unauthenticated)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn grants_are_prefixes_and_refusals_name_the_object() {
        let caller = Caller::Tenant(tenant("shop", "t"));
        assert!(caller.check_read_topic("shop.activity").is_ok());
        assert!(caller.check_write_topic("shop.out.stats").is_ok());
        assert!(caller.check_group("shop-stats").is_ok());
        let err = caller.check_write_topic("shop.activity").unwrap_err();
        assert!(err.to_string().contains("\"shop.activity\""), "{err}");
        assert!(caller.check_group("billing").is_err());
        assert!(Caller::Operator.check_group("anything").is_ok());
    }

    #[test]
    fn grants_are_literal_or_prefixed_and_bare_strings_stay_prefixes() {
        let config: TenantConfig = toml::from_str(
            r#"
            name = "shop"
            token_sha256 = "00"
            read_topics = ["shop.", { literal = "orders" }, { prefix = "clicks-" }]
            "#,
        )
        .unwrap();
        let caller = Caller::Tenant(config);
        for ok in ["shop.activity", "orders", "clicks-eu"] {
            assert!(caller.check_read_topic(ok).is_ok(), "{ok}");
        }
        for refused in ["shopping.x", "orders-eu", "order", "clicks"] {
            let err = caller.check_read_topic(refused).unwrap_err().to_string();
            assert!(
                err.contains("literal \"orders\"") && err.contains("prefix \"shop.\""),
                "{refused}: {err}"
            );
        }
        let typo = toml::from_str::<TenantConfig>(
            "name = \"s\"\ntoken_sha256 = \"00\"\nread_topics = [{ literal = \"a\", prefix = \"b\" }]",
        );
        assert!(typo.is_err(), "a grant is one pattern");
    }

    #[test]
    fn bad_or_shared_hashes_are_refused() {
        assert!(Auth::new(Some("xyz"), &[]).is_err());
        let t = tenant("a", "same");
        let mut u = tenant("b", "same");
        assert!(Auth::new(None, &[t.clone(), u.clone()]).is_err());
        u.token_sha256 = hash_token("other");
        assert!(Auth::new(Some(&hash_token("same")), &[t, u]).is_err());
    }

    #[test]
    fn scrapes_are_open_until_a_scrape_token_is_set_then_scoped() {
        let open = Auth::new(Some(&hash_token("op")), &[tenant("shop", "s3cret")]).unwrap();
        assert_eq!(open.scrape(None).unwrap(), ScrapeScope::All);
        let closed = open
            .clone()
            .with_metrics_token(&hash_token("prom"))
            .unwrap();
        assert!(matches!(closed.scrape(None), Err(Refusal::Unauthenticated)));
        assert!(matches!(
            closed.scrape(Some("Bearer nope")),
            Err(Refusal::Unauthenticated)
        ));
        assert_eq!(
            closed.scrape(Some("Bearer prom")).unwrap(),
            ScrapeScope::All
        );
        assert_eq!(closed.scrape(Some("Bearer op")).unwrap(), ScrapeScope::All);
        assert_eq!(
            closed.scrape(Some("Bearer s3cret")).unwrap(),
            ScrapeScope::Tenant("shop".into())
        );
        assert!(
            open.clone()
                .with_metrics_token(&hash_token("s3cret"))
                .is_err()
        );
        assert!(open.with_metrics_token("not-a-hash").is_err());
    }
}
