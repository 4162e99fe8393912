//! Core module → component: which world a core module implements (from its
//! exports), and encoding it with our WIT and the WASI preview1 reactor
//! adapter, as `wasm-tools component embed` + `component new --adapt` would.

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

use super::BuildError;
use super::embedded;
use crate::wasm::World;

/// The core export that marks each world's module (see `wit/worlds.wit`).
const CONSUMER_EXPORT: &str = "ingesta:runtime/handler@0.1.0#handle";
const PRODUCER_EXPORT: &str = "ingesta:runtime/source@0.1.0#handle-request";

/// The world of a core module built against an SDK, from its exports.
pub fn core_world(source: &str, core: &[u8]) -> Result<World, BuildError> {
    let mut consumer = false;
    let mut producer = false;
    for payload in wasmparser::Parser::new(0).parse_all(core) {
        let payload = payload.map_err(|e| BuildError::Componentize {
            source_name: source.to_owned(),
            message: format!("not a valid core WebAssembly module: {e}"),
        })?;
        if let wasmparser::Payload::ExportSection(exports) = payload {
            for export in exports {
                let export = export.map_err(|e| BuildError::Componentize {
                    source_name: source.to_owned(),
                    message: e.to_string(),
                })?;
                consumer |= export.name == CONSUMER_EXPORT;
                producer |= export.name == PRODUCER_EXPORT;
            }
        }
    }
    match (consumer, producer) {
        (true, false) => Ok(World::Consumer),
        (false, true) => Ok(World::Producer),
        (true, true) => Err(BuildError::Componentize {
            source_name: source.to_owned(),
            message: "it exports both a handler and a producer source; a module is one or the \
                      other (register a consumer handler or a producer, not both)"
                .into(),
        }),
        (false, false) => Err(BuildError::Componentize {
            source_name: source.to_owned(),
            message: "it exports no ingesta handler or producer; register one (the SDK README \
                      shows how) and build again"
                .into(),
        }),
    }
}

/// Our WIT package, parsed from the embedded files.
fn resolve() -> Result<(Resolve, wit_parser::PackageId), BuildError> {
    let mut resolve = Resolve::default();
    let files = embedded::wit_files();
    // The package spans several files: parse them as one group.
    let mut sources = wit_parser::SourceMap::new();
    for (name, text) in &files {
        sources.push(std::path::Path::new(name), *text);
    }
    let parsed = sources
        .parse()
        .map_err(|(_, e)| BuildError::Embedded(format!("WIT: {e}")))?;
    let id = resolve
        .push_group(parsed)
        .map_err(|e| BuildError::Embedded(format!("WIT: {e}")))?;
    Ok((resolve, id))
}

/// Encodes a core module implementing `world` as a component.
pub fn componentize(source: &str, core: &[u8], world: World) -> Result<Vec<u8>, BuildError> {
    let fail = |message: String| BuildError::Componentize {
        source_name: source.to_owned(),
        message,
    };
    let (resolve, package) = resolve()?;
    let world_id = resolve
        .select_world(&[package], Some(&world.to_string()))
        .map_err(|e| BuildError::Embedded(format!("WIT world {world}: {e:#}")))?;
    let mut module = core.to_vec();
    wit_component::embed_component_metadata(&mut module, &resolve, world_id, StringEncoding::UTF8)
        .map_err(|e| fail(format!("embedding the {world} world: {e:#}")))?;
    ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .map_err(|e| fail(format!("{e:#}")))?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(|e| fail(format!("WASI adapter: {e:#}")))?
        .encode()
        .map_err(|e| fail(format!("{e:#}")))
}
