//! The control plane's rules as plain functions over what the service
//! looked up: who acts for which tenant, what a spec must satisfy before
//! anything is written, quotas, and which topics must exist. No I/O here,
//! so each rule is unit-tested on its own; [`super::Service`] gathers the
//! facts (modules, other deployments, topics in Kafka) and calls these.

use std::collections::{HashMap, HashSet};

use super::Error;
use crate::api::ModuleInfo;
use crate::auth::{Auth, Caller};
use crate::deployment::{DeploymentRecord, Digest, ModuleRef, Spec};
use crate::supervisor::world_mismatch;
use sha2::{Digest as _, Sha256};

/// The tenant a create acts for: a tenant creates its own deployments;
/// the operator names the tenant it acts for.
pub(super) fn acting_tenant(caller: &Caller, tenant: Option<String>) -> Result<String, Error> {
    match (caller, tenant) {
        (Caller::Tenant(t), _) => Ok(t.name.clone()),
        (Caller::Operator, Some(t)) => Ok(t),
        (Caller::Operator, None) => Err(Error::Invalid(
            "the operator creates deployments on behalf of a tenant: add ?tenant=NAME".into(),
        )),
    }
}

/// What a spec must satisfy on its own and for its caller: valid, no fuel
/// unless the runner meters it, within the caller's grants and maxima, and
/// naming an uploaded module by digest. Returns that digest.
pub(super) fn check_spec<'s>(
    caller: &Caller,
    name: &str,
    spec: &'s Spec,
    fuel_metering: bool,
) -> Result<&'s Digest, Error> {
    spec.validate(name)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if spec.limits.fuel.is_some() && !fuel_metering {
        return Err(Error::Invalid(format!(
            "deployment {name:?}: limits.fuel is set but this runner does not meter fuel; ask the operator to set [runtime] fuel_metering = true, or use limits.deadline_ms"
        )));
    }
    caller.check_spec(name, spec)?;
    match &spec.module {
        ModuleRef::Digest(digest) => Ok(digest),
        other => Err(Error::Invalid(format!(
            "deployment {name:?}: module {other} is not a module digest; upload it first (POST /v1/modules) and use the digest it returns"
        ))),
    }
}

/// The module a spec names must be one the caller can see (`module`:
/// `None` if not) and of the spec's kind.
pub(super) fn check_module(
    name: &str,
    spec: &Spec,
    digest: &Digest,
    module: Option<&ModuleInfo>,
) -> Result<(), Error> {
    let Some(module) = module else {
        return Err(Error::Invalid(format!(
            "deployment {name:?}: module {digest:?} not found; upload it first (POST /v1/modules) and use the digest it returns"
        )));
    };
    match world_mismatch(&spec.kind, module.world) {
        Some(e) => Err(Error::Invalid(format!(
            "deployment {name:?}: module {digest:?} {e}"
        ))),
        None => Ok(()),
    }
}

/// A producer's ingest key picks its deployment on its own (tenants'
/// deployments may share a name), so no two deployments may share one:
/// `users` are the keys of the deployments using it now; `key` is this one.
pub(super) fn check_ingest_key(name: &str, key: &str, users: &[String]) -> Result<(), Error> {
    if users.iter().any(|k| k != key) {
        return Err(Error::Conflict(format!(
            "deployment {name:?}: ingest.key_sha256 is already used by another deployment; every deployment needs a key of its own (generate a new one)"
        )));
    }
    Ok(())
}

/// A tenant with `have` deployments may create one more only below its
/// `max_deployments`.
pub(super) fn check_quota(caller: &Caller, have: usize) -> Result<(), Error> {
    if let Caller::Tenant(t) = caller
        && let Some(max) = t.max_deployments
        && have >= max
    {
        return Err(Error::Forbidden(format!(
            "tenant {:?} already has its maximum of {max} deployments",
            t.name
        )));
    }
    Ok(())
}

/// A tenant with modules `owned` may upload `size` more bytes under
/// `digest` only within its `max_modules` and `max_module_bytes` (bytes
/// it owns already count once; re-uploading one of its own is free).
pub(super) fn check_module_quota(
    caller: &Caller,
    owned: &[ModuleInfo],
    digest: &str,
    size: usize,
) -> Result<(), Error> {
    let Caller::Tenant(t) = caller else {
        return Ok(());
    };
    if owned.iter().any(|m| m.digest == digest) {
        return Ok(());
    }
    if let Some(max) = t.max_modules
        && owned.len() >= max
    {
        return Err(Error::Forbidden(format!(
            "tenant {:?} already has its maximum of {max} modules; delete one it no longer deploys (DELETE /v1/modules/<digest>)",
            t.name
        )));
    }
    let total = owned.iter().map(|m| m.size as u64).sum::<u64>() + size as u64;
    if let Some(max) = t.max_module_bytes
        && total > max
    {
        return Err(Error::Forbidden(format!(
            "tenant {:?} may store at most {max} bytes of modules; with this one ({size} bytes) it would hold {total}",
            t.name
        )));
    }
    Ok(())
}

/// Every topic the spec names must be among `exist` (ingesta does not
/// create topics); the first missing one is named with its role.
pub(super) fn check_topics(name: &str, spec: &Spec, exist: &HashSet<String>) -> Result<(), Error> {
    for (role, topic) in spec.topics() {
        if !exist.contains(topic) {
            return Err(Error::Invalid(format!(
                "deployment {name:?}: {role} topic {topic:?} does not exist in Kafka; create it first (ingesta does not auto-create topics)"
            )));
        }
    }
    Ok(())
}

/// The topics the runner keeps for itself, which no deployment made
/// through the API may name, whatever its grants (a prefix grant such as
/// `""` would otherwise reach them): Kafka's internal topics
/// (`__consumer_offsets`, `__transaction_state`, ...), the control plane's
/// state topics, and the deployments' redrive topics.
pub(crate) struct Reserved<'a> {
    /// The state topics' names.
    pub state: [&'a str; 2],
    /// `<state prefix>redrive.`: every redrive topic's name starts so.
    pub redrive_prefix: &'a str,
    /// `<state prefix>schedule.`: every schedule coordination group's id
    /// starts so (see `producer::owner`).
    pub group_prefix: &'a str,
}

impl Reserved<'_> {
    /// Whether `topic` is one of them.
    pub(crate) fn contains(&self, topic: &str) -> bool {
        // The runner's other topics: `<prefix>schedules` (coordination),
        // `<prefix>runners` and `<prefix>logs` (the fleet's).
        let prefix = self
            .group_prefix
            .strip_suffix("schedule.")
            .unwrap_or_default();
        let own = topic
            .strip_prefix(prefix)
            .is_some_and(|rest| ["schedules", "runners", "logs"].contains(&rest));
        topic.starts_with("__")
            || self.state.contains(&topic)
            || topic.starts_with(self.redrive_prefix)
            || (!prefix.is_empty() && own)
    }

    /// The redrive topic of deployment `name` of `tenant`:
    /// `<prefix><tenant>.<name>`, with a tenant name Kafka would not take
    /// (or one too long) replaced by a digest of it.
    pub(crate) fn redrive_topic(&self, tenant: &str, name: &str) -> String {
        let plain = format!("{}{tenant}.{name}", self.redrive_prefix);
        if crate::deployment::is_valid_topic(&plain) {
            return plain;
        }
        let digest = hex::encode(&Sha256::digest(tenant.as_bytes())[..8]);
        format!("{}{digest}.{name}", self.redrive_prefix)
    }
}

/// Refuse a spec naming a reserved topic.
pub(super) fn check_reserved(
    name: &str,
    spec: &Spec,
    reserved: &Reserved<'_>,
) -> Result<(), Error> {
    for (role, topic) in spec.topics() {
        if reserved.contains(topic) {
            return Err(Error::Forbidden(format!(
                "deployment {name:?}: {role} topic {topic:?} is reserved (Kafka's internal topics and ingesta's state and redrive topics cannot be named by deployments)"
            )));
        }
    }
    if let Some(group) = spec.group()
        && group.starts_with(reserved.group_prefix)
    {
        return Err(Error::Forbidden(format!(
            "deployment {name:?}: consumer group {group:?} is reserved (ingesta elects schedule owners with groups starting {:?})",
            reserved.group_prefix
        )));
    }
    Ok(())
}

/// What a deployment record read from the state topics must satisfy to run
/// on this runner, checked again as it is applied: anyone who can write to
/// the topic could have written it, and the tenant's grants may have
/// narrowed since. Its key is its tenant and name; the tenant is one this
/// runner's config has; the spec is valid, within the tenant's grants and
/// maxima as of now, reaches no reserved topic, and its redrive topic (if
/// any) is its own.
pub(crate) fn check_record(
    auth: &Auth,
    key: &str,
    record: &DeploymentRecord,
    reserved: &Reserved<'_>,
    fuel_metering: bool,
) -> Result<(), Error> {
    let (tenant, name) = (&record.tenant, &record.name);
    if key != record.key() {
        return Err(Error::Invalid(format!(
            "the record filed under {key:?} is of deployment {name:?} of tenant {tenant:?}"
        )));
    }
    let Some(config) = auth.tenant(tenant) else {
        return Err(Error::Forbidden(format!(
            "tenant {tenant:?} is not configured on this runner"
        )));
    };
    let caller = Caller::Tenant(config.clone());
    check_spec(&caller, name, &record.settings, fuel_metering)?;
    check_reserved(name, &record.settings, reserved)?;
    match &record.redrive_topic {
        Some(topic) if *topic != reserved.redrive_topic(tenant, name) => {
            Err(Error::Forbidden(format!(
                "deployment {name:?}: redrive topic {topic:?} is not its own ({:?})",
                reserved.redrive_topic(tenant, name)
            )))
        }
        _ => Ok(()),
    }
}

/// A dead letter carries its input record whole, so the dead-letter topic
/// must accept records as large as every input topic does (`sizes`: each
/// topic's `max.message.bytes`; a topic missing there is not judged).
pub(super) fn check_dead_letter_size(
    name: &str,
    spec: &Spec,
    sizes: &HashMap<String, i64>,
) -> Result<(), Error> {
    let Some(dlq) = spec.failure.dead_letter_topic.as_deref() else {
        return Ok(());
    };
    let Some(&dlq_max) = sizes.get(dlq) else {
        return Ok(());
    };
    for input in spec.inputs() {
        if let Some(&input_max) = sizes.get(input)
            && input_max > dlq_max
        {
            return Err(Error::Invalid(format!(
                "deployment {name:?}: dead-letter topic {dlq:?} accepts records up to {dlq_max} bytes (max.message.bytes) but input topic {input:?} accepts up to {input_max}; a record that cannot be handled could not be dead-lettered. Raise the dead-letter topic's max.message.bytes to at least {input_max}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{TenantConfig, hash_token};
    use crate::deployment::World;
    use serde_json::json;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn shop(max_deployments: Option<usize>) -> Caller {
        Caller::Tenant(TenantConfig {
            name: "shop".into(),
            token_sha256: hash_token("t"),
            read_topics: vec!["shop.".into()],
            write_topics: vec!["shop.out.".into()],
            groups: vec!["shop-".into()],
            max_deployments,
            max_memory_mib: Some(128),
            max_deadline_ms: None,
            max_output_bytes: Some(64 << 20),
            max_batch_bytes: Some(4 << 20),
            ..TenantConfig::default()
        })
    }

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    fn consumer() -> Spec {
        spec(
            json!({"module": DIGEST, "inputs": ["shop.in"], "group": "shop-g",
            "outputs": ["shop.out.a"], "failure": {"dead_letter_topic": "shop.out.dlq"}}),
        )
    }

    fn module(world: World) -> ModuleInfo {
        ModuleInfo {
            digest: DIGEST.into(),
            world,
            size: 1,
            owners: ["shop".to_owned()].into(),
            created_ms: 0,
        }
    }

    /// The error's kind and whether its message names `needle`.
    fn refused(r: Result<impl std::fmt::Debug, Error>, kind: &str, needle: &str) {
        let e = r.expect_err("should be refused");
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().contains(needle), "{e} should name {needle:?}");
    }

    #[test]
    fn state_records_are_checked_again_against_the_tenant_as_configured_now() {
        let Caller::Tenant(config) = shop(None) else {
            unreachable!()
        };
        let auth = Auth::new(None, std::slice::from_ref(&config)).unwrap();
        let record = |tenant: &str, spec: Spec| {
            DeploymentRecord::create(tenant, "d".into(), spec, false, "forged")
        };
        let check = |key: &str, r: &DeploymentRecord| check_record(&auth, key, r, &RESERVED, false);
        assert!(check("shop/d", &record("shop", consumer())).is_ok());
        refused(
            check("other/d", &record("shop", consumer())),
            "invalid",
            "filed under \"other/d\"",
        );
        refused(
            check("ghost/d", &record("ghost", consumer())),
            "forbidden",
            "tenant \"ghost\" is not configured",
        );
        let mut outside = consumer();
        outside.outputs.push("billing.out".into());
        refused(
            check("shop/d", &record("shop", outside)),
            "forbidden",
            "\"billing.out\"",
        );
        let mut too_big = consumer();
        too_big.limits.memory_mib = 512;
        refused(
            check("shop/d", &record("shop", too_big)),
            "forbidden",
            "limits.memory_mib 512",
        );
        let mut invalid = consumer();
        invalid.limits.deadline_ms = 0;
        refused(
            check("shop/d", &record("shop", invalid)),
            "invalid",
            "limits.deadline_ms",
        );
    }

    #[test]
    fn module_quotas_count_modules_and_bytes_a_tenant_owns() {
        let Caller::Tenant(mut t) = shop(None) else {
            unreachable!()
        };
        t.max_modules = Some(2);
        t.max_module_bytes = Some(1000);
        let caller = Caller::Tenant(t);
        let owned = |sizes: &[usize]| -> Vec<ModuleInfo> {
            sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| ModuleInfo {
                    digest: format!("sha256:{i}"),
                    size,
                    ..module(World::Consumer)
                })
                .collect()
        };
        assert!(check_module_quota(&caller, &owned(&[400]), "sha256:new", 600).is_ok());
        refused(
            check_module_quota(&caller, &owned(&[100, 100]), "sha256:new", 1),
            "forbidden",
            "maximum of 2 modules",
        );
        refused(
            check_module_quota(&caller, &owned(&[400]), "sha256:new", 601),
            "forbidden",
            "it would hold 1001",
        );
        // Its own module again: no new bytes.
        assert!(check_module_quota(&caller, &owned(&[100, 100]), "sha256:1", 100).is_ok());
        assert!(check_module_quota(&Caller::Operator, &owned(&[9999; 9]), "x", 9999).is_ok());
    }

    #[test]
    fn the_operator_names_the_tenant_it_acts_for() {
        assert_eq!(
            acting_tenant(&shop(None), Some("other".into())).unwrap(),
            "shop"
        );
        assert_eq!(
            acting_tenant(&Caller::Operator, Some("shop".into())).unwrap(),
            "shop"
        );
        refused(
            acting_tenant(&Caller::Operator, None),
            "invalid",
            "?tenant=",
        );
    }

    #[test]
    fn a_spec_is_checked_for_validity_fuel_grants_and_a_digest() {
        let ok = consumer();
        assert_eq!(
            check_spec(&shop(None), "d", &ok, false).unwrap().as_str(),
            DIGEST
        );
        let cases: [(serde_json::Value, bool, &str, &str); 8] = [
            (
                json!({"limits": {"fuel": 1000}}),
                false,
                "invalid",
                "fuel_metering",
            ),
            (
                json!({"inputs": ["orders"]}),
                true,
                "forbidden",
                "\"orders\"",
            ),
            (
                json!({"group": "other-g"}),
                true,
                "forbidden",
                "\"other-g\"",
            ),
            (
                json!({"outputs": ["orders.out"]}),
                true,
                "forbidden",
                "\"orders.out\"",
            ),
            (
                json!({"limits": {"memory_mib": 512}}),
                true,
                "forbidden",
                "512",
            ),
            (
                json!({"module": "handler.wasm"}),
                true,
                "invalid",
                "not a module digest",
            ),
            (
                json!({"limits": {"max_output_bytes": 134_217_728}}),
                true,
                "forbidden",
                "limits.max_output_bytes 134217728 is over tenant \"shop\"'s maximum of 67108864",
            ),
            (
                json!({"batch": {"max_bytes": 8_388_608}}),
                true,
                "forbidden",
                "batch.max_bytes 8388608",
            ),
        ];
        for (change, fuel, kind, needle) in cases {
            let mut v = serde_json::to_value(&ok).unwrap();
            for (k, x) in change.as_object().unwrap() {
                v[k] = x.clone();
            }
            refused(check_spec(&shop(None), "d", &spec(v), fuel), kind, needle);
        }
        let with_fuel = spec(
            json!({"module": DIGEST, "inputs": ["shop.in"], "group": "shop-g",
            "limits": {"fuel": 1000}}),
        );
        assert!(check_spec(&shop(None), "d", &with_fuel, true).is_ok());
        refused(
            check_spec(&shop(None), "Bad Name", &ok, false),
            "invalid",
            "Bad Name",
        );
    }

    #[test]
    fn the_module_must_exist_and_be_of_the_specs_kind() {
        let c = consumer();
        let digest = check_spec(&shop(None), "d", &c, false).unwrap();
        assert!(check_module("d", &c, digest, Some(&module(World::Consumer))).is_ok());
        refused(check_module("d", &c, digest, None), "invalid", "not found");
        refused(
            check_module("d", &c, digest, Some(&module(World::Producer))),
            "invalid",
            "is a producer",
        );
        let p = spec(json!({"module": DIGEST, "schedule": {"interval_ms": 1000}}));
        refused(
            check_module("d", &p, digest, Some(&module(World::Consumer))),
            "invalid",
            "is a consumer",
        );
    }

    #[test]
    fn an_ingest_key_belongs_to_one_deployment() {
        assert!(check_ingest_key("d", "shop/d", &[]).is_ok());
        assert!(check_ingest_key("d", "shop/d", &["shop/d".into()]).is_ok());
        refused(
            check_ingest_key("d", "shop/d", &["other/e".into()]),
            "conflict",
            "key of its own",
        );
    }

    #[test]
    fn quotas_count_only_for_tenants_with_a_maximum() {
        assert!(check_quota(&shop(None), 1000).is_ok());
        assert!(check_quota(&Caller::Operator, 1000).is_ok());
        assert!(check_quota(&shop(Some(2)), 1).is_ok());
        refused(check_quota(&shop(Some(2)), 2), "forbidden", "maximum of 2");
    }

    #[test]
    fn a_missing_topic_is_named_with_its_role() {
        let c = consumer();
        let all: HashSet<String> = ["shop.in", "shop.out.a", "shop.out.dlq"]
            .map(String::from)
            .into();
        assert!(check_topics("d", &c, &all).is_ok());
        for (missing, role) in [
            ("shop.in", "input"),
            ("shop.out.a", "output"),
            ("shop.out.dlq", "dead-letter"),
        ] {
            let mut some = all.clone();
            some.remove(missing);
            refused(
                check_topics("d", &c, &some),
                "invalid",
                &format!("{role} topic {missing:?}"),
            );
        }
    }

    #[test]
    fn a_dead_letter_topic_must_take_records_as_large_as_the_inputs() {
        let c = consumer();
        let sizes = |input: i64, dlq: i64| -> HashMap<String, i64> {
            [
                ("shop.in".to_owned(), input),
                ("shop.out.dlq".to_owned(), dlq),
            ]
            .into()
        };
        assert!(check_dead_letter_size("d", &c, &sizes(1_048_588, 1_048_588)).is_ok());
        assert!(check_dead_letter_size("d", &c, &sizes(1_000, 2_000)).is_ok());
        refused(
            check_dead_letter_size("d", &c, &sizes(1_048_588, 100_000)),
            "invalid",
            "up to 100000 bytes (max.message.bytes) but input topic \"shop.in\" accepts up to 1048588",
        );
        // Unknown sizes are not judged; no dead-letter topic, nothing to check.
        assert!(check_dead_letter_size("d", &c, &HashMap::new()).is_ok());
        let no_dlq = spec(json!({"module": DIGEST, "inputs": ["shop.in"], "group": "shop-g"}));
        assert!(check_dead_letter_size("d", &no_dlq, &sizes(10, 1)).is_ok());
    }

    const RESERVED: Reserved<'static> = Reserved {
        state: ["_ingesta.deployments", "_ingesta.modules"],
        redrive_prefix: "_ingesta.redrive.",
        group_prefix: "_ingesta.schedule.",
    };

    #[test]
    fn a_record_reads_no_redrive_topic_but_its_own() {
        let Caller::Tenant(config) = shop(None) else {
            unreachable!()
        };
        let auth = Auth::new(None, std::slice::from_ref(&config)).unwrap();
        let own = DeploymentRecord::create("shop", "d".into(), consumer(), false, "shop")
            .with_redrive_topic("_ingesta.redrive.shop.d".into(), "shop");
        assert!(check_record(&auth, "shop/d", &own, &RESERVED, false).is_ok());
        for forged in ["_ingesta.redrive.other.d", "billing.in", "shop.in"] {
            let r = own.with_redrive_topic(forged.into(), "forged");
            refused(
                check_record(&auth, "shop/d", &r, &RESERVED, false),
                "forbidden",
                "is not its own",
            );
        }
        assert_eq!(
            RESERVED.redrive_topic("a tenant/with spaces", "d"),
            "_ingesta.redrive.b6a12f41d5b7bea9.d",
            "a name Kafka would refuse is replaced by a digest"
        );
    }

    #[test]
    fn reserved_topics_are_refused_whatever_the_grants() {
        assert!(check_reserved("d", &consumer(), &RESERVED).is_ok());
        let cases = [
            json!({"module": DIGEST, "inputs": ["__consumer_offsets"], "group": "g"}),
            json!({"module": DIGEST, "inputs": ["in"], "group": "g", "outputs": ["__transaction_state"]}),
            json!({"module": DIGEST, "inputs": ["in"], "group": "g", "outputs": ["_ingesta.deployments"]}),
            json!({"module": DIGEST, "inputs": ["_ingesta.modules"], "group": "g"}),
            json!({"module": DIGEST, "inputs": ["in"], "group": "g",
                "failure": {"dead_letter_topic": "__cluster_metadata"}}),
            json!({"module": DIGEST, "inputs": ["_ingesta.redrive.shop.d"], "group": "g"}),
            json!({"module": DIGEST, "inputs": ["in"], "group": "_ingesta.schedule.shop.gen"}),
            json!({"module": DIGEST, "inputs": ["_ingesta.schedules"], "group": "g"}),
            json!({"module": DIGEST, "inputs": ["_ingesta.runners"], "group": "g"}),
            json!({"module": DIGEST, "inputs": ["in"], "group": "g", "outputs": ["_ingesta.logs"]}),
        ];
        for case in cases {
            refused(
                check_reserved("d", &spec(case.clone()), &RESERVED),
                "forbidden",
                "is reserved",
            );
        }
    }
}
