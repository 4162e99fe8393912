//! The control API's module routes, end to end on a runner process: every
//! route refuses a missing or wrong token; bad uploads are refused with a
//! clear message and store nothing; uploads are content-addressed; another
//! tenant's module answers 404 exactly like a missing one; the operator
//! sees everything; the CLI prints the API's message and exits non-zero on
//! errors; modules survive a restart (read back from Kafka); every mutation
//! is audited.

use std::time::Duration;

use anyhow::{Result, ensure};
use ingesta_tests::control::{self, Api, OPERATOR_TOKEN, TENANT_A, TENANT_B, error_of};
use ingesta_tests::runner::{self, RunnerProcess};
use reqwest::{Method, StatusCode};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn module_routes_authenticate_validate_and_scope_by_tenant() -> Result<()> {
    let port = control::free_port()?;
    let config = control::config_toml(port, &control::state_prefix(), 1);
    let mut ingesta = RunnerProcess::spawn(&config)?;
    let api = Api::new(port)?;
    // Ready, not just healthy: changes wait until the state is recovered.
    ingesta.wait_ready(&api, TIMEOUT)?;
    let (a, b) = (Some(TENANT_A.token), Some(TENANT_B.token));
    let identity = std::fs::read(runner::guest_wasm("identity")?)?;
    let fake_digest = format!("sha256:{}", "0".repeat(64));

    // Open routes.
    for path in ["/healthz", "/readyz"] {
        let (status, _) = api.call(Method::GET, path, None, None)?;
        ensure!(status == StatusCode::OK, "{path}: {status}");
    }
    let (status, doc) = api.call(Method::GET, "/v1/openapi.json", None, None)?;
    ensure!(
        status == StatusCode::OK && doc["paths"].get("/v1/modules").is_some(),
        "the OpenAPI document should describe /v1/modules: {status} {doc}"
    );

    // No token or a wrong one: 401 on every route, before any body is read.
    let routes = [
        (Method::GET, "/v1/modules".to_owned()),
        (Method::POST, "/v1/modules".to_owned()),
        (Method::GET, format!("/v1/modules/{fake_digest}")),
        (Method::DELETE, format!("/v1/modules/{fake_digest}")),
    ];
    for (method, path) in &routes {
        for token in [None, Some("not-a-token")] {
            let (status, body) = api.call(method.clone(), path, token, Some(identity.clone()))?;
            ensure!(
                status == StatusCode::UNAUTHORIZED && error_of(&body).contains("bearer token"),
                "{method} {path} with {token:?}: {status} {body}"
            );
        }
    }

    // Bad uploads: 4xx naming the problem, nothing stored.
    let not_a_consumer = std::fs::read(runner::fixture_wasm("not-a-consumer")?)?;
    let bad: [(&str, Vec<u8>, StatusCode, &str); 4] = [
        (
            "garbage",
            b"hello, world".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a WebAssembly binary",
        ),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            StatusCode::BAD_REQUEST,
            "core WebAssembly module",
        ),
        (
            "wrong world",
            not_a_consumer,
            StatusCode::BAD_REQUEST,
            "does not implement an ingesta world",
        ),
        (
            "oversized",
            vec![0u8; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than the limit",
        ),
    ];
    for (what, body, expected, needle) in bad {
        let (status, reply) = api.call(Method::POST, "/v1/modules", a, Some(body))?;
        ensure!(
            status == expected && error_of(&reply).contains(needle),
            "{what}: expected {expected} with {needle:?}, got {status} {reply}"
        );
    }
    let (_, listed) = api.call(Method::GET, "/v1/modules", Some(OPERATOR_TOKEN), None)?;
    ensure!(
        listed == serde_json::json!([]),
        "bad uploads stored something: {listed}"
    );

    // A good upload, twice: one module.
    let (status, first) = api.call(Method::POST, "/v1/modules", a, Some(identity.clone()))?;
    ensure!(status == StatusCode::CREATED, "upload: {status} {first}");
    let digest = first["digest"].as_str().unwrap_or_default().to_owned();
    ensure!(
        digest.starts_with("sha256:")
            && first["world"] == "consumer"
            && first["size"] == identity.len(),
        "upload reply: {first}"
    );
    let (status, again) = api.call(Method::POST, "/v1/modules", a, Some(identity.clone()))?;
    ensure!(
        status == StatusCode::OK && again["digest"] == digest.as_str(),
        "re-upload: {status} {again}"
    );
    let (_, mine) = api.call(Method::GET, "/v1/modules", a, None)?;
    ensure!(
        mine.as_array().map(Vec::len) == Some(1),
        "tenant A lists {mine}"
    );

    // Tenant B: A's module does not exist for it (same 404 as a missing one).
    let path = format!("/v1/modules/{digest}");
    let (missing_status, missing) =
        api.call(Method::GET, &format!("/v1/modules/{fake_digest}"), b, None)?;
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = api.call(method.clone(), &path, b, None)?;
        ensure!(
            status == StatusCode::NOT_FOUND && missing_status == StatusCode::NOT_FOUND,
            "{method} of A's module as B: {status} {body}"
        );
        ensure!(
            error_of(&body).replace(&digest, "X") == error_of(&missing).replace(&fake_digest, "X"),
            "the 404 for A's module differs from a missing one: {body} vs {missing}"
        );
    }
    let (_, theirs) = api.call(Method::GET, "/v1/modules", b, None)?;
    ensure!(theirs == serde_json::json!([]), "tenant B lists {theirs}");
    let (status, seen) = api.call(Method::GET, &path, Some(OPERATOR_TOKEN), None)?;
    ensure!(
        status == StatusCode::OK && seen["owners"] == serde_json::json!([TENANT_A.name]),
        "operator: {status} {seen}"
    );

    // The CLI: push as B (co-owner), errors carry the API's message.
    let pushed = control::cli(
        api.base(),
        b,
        &[
            "module",
            "push",
            &runner::guest_wasm("identity")?.display().to_string(),
        ],
    )?;
    let stdout = String::from_utf8_lossy(&pushed.stdout);
    ensure!(
        pushed.status.success() && stdout.contains(&digest),
        "module push: {pushed:?}"
    );
    let refused = control::cli(api.base(), Some("wrong"), &["module", "ls"])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success() && stderr.contains("401") && stderr.contains("bearer token"),
        "module ls with a wrong token: {refused:?}"
    );
    let (_, seen) = api.call(Method::GET, &path, b, None)?;
    ensure!(
        seen["owners"] == serde_json::json!([TENANT_B.name]),
        "B sees only itself as owner: {seen}"
    );

    // Restart: the module comes back from the state topics in Kafka.
    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");
    let mut ingesta = RunnerProcess::spawn(&config)?;
    ingesta.wait_ready(&api, TIMEOUT)?;
    let (status, _) = api.call(Method::GET, &path, a, None)?;
    ensure!(status == StatusCode::OK, "after restart: {status}");

    // Deleting: A's ownership goes, B still has it; then B's, and it is gone.
    let (status, _) = api.call(Method::DELETE, &path, a, None)?;
    ensure!(status == StatusCode::NO_CONTENT, "delete as A: {status}");
    let (status, _) = api.call(Method::GET, &path, a, None)?;
    ensure!(status == StatusCode::NOT_FOUND, "A still sees it: {status}");
    let (status, _) = api.call(Method::GET, &path, b, None)?;
    ensure!(
        status == StatusCode::OK,
        "B lost it with A's delete: {status}"
    );
    let deleted = control::cli(api.base(), b, &["module", "rm", &digest])?;
    ensure!(deleted.status.success(), "module rm: {deleted:?}");
    let (_, all) = api.call(Method::GET, "/v1/modules", Some(OPERATOR_TOKEN), None)?;
    ensure!(all == serde_json::json!([]), "after both deletes: {all}");

    ingesta.sigterm()?;
    let (status, log) = ingesta.wait(TIMEOUT)?;
    ensure!(status.success(), "ingesta exited with {status}:\n{log}");
    let audited = log
        .lines()
        .filter(|l| l.contains("ingesta::audit") && l.contains("module.delete"))
        .count();
    ensure!(
        audited == 2,
        "expected 2 audited deletes in the log:\n{log}"
    );
    ensure!(
        log.contains("tenant=\"tenant-b\"") && log.contains("outcome=\"ok\""),
        "audit lines should name tenant and outcome:\n{log}"
    );
    Ok(())
}

/// In process: the registry compiles a module once and every deployment
/// of it shares that code (one copy in memory however many run it); a
/// module deleted and uploaded again is loaded afresh.
#[test]
fn deployments_of_one_module_share_its_compiled_code() -> Result<()> {
    use ingesta_runtime::deployment::Digest;
    use ingesta_runtime::modules::{CHUNK_BYTES, ModuleRegistry, meta_key, new_meta};
    let bytes = std::fs::read(runner::guest_wasm("noop")?)?;
    ensure!(bytes.len() <= CHUNK_BYTES, "noop fits one chunk");
    let cache = tempfile::tempdir()?;
    let engine =
        ingesta_runtime::wasm::WasmEngine::new(ingesta_runtime::wasm::WasmEngineConfig::new(
            Duration::from_millis(10),
            cache.path().to_owned(),
        ))?;
    let registry = ModuleRegistry::new(engine.engine().clone(), cache.path().to_owned());
    let checked = registry.check(&bytes)?;
    let digest = Digest::of(&bytes);
    let upload = |r: &ModuleRegistry| {
        r.apply(&format!("{digest}/chunk/0"), Some(&bytes));
        r.apply(
            &meta_key(&digest),
            Some(&serde_json::to_vec(&new_meta(&checked, "a", 1)).unwrap()),
        );
    };
    upload(&registry);
    let load = |r: &ModuleRegistry| -> Result<_> {
        Ok(r.load(&digest)
            .ok_or_else(|| anyhow::anyhow!("not complete"))??
            .component)
    };
    // Kept alive throughout, so a fresh load cannot reuse its addresses.
    let first = load(&registry)?;
    ensure!(
        load(&registry)?.image_range() == first.image_range(),
        "a second deployment shares the code"
    );
    registry.apply(&meta_key(&digest), None);
    ensure!(
        registry.load(&digest).is_none(),
        "a deleted module does not load"
    );
    upload(&registry);
    ensure!(
        load(&registry)?.image_range() != first.image_range(),
        "uploaded again, it is loaded afresh"
    );
    Ok(())
}
