//! Is this a component we can run? Checks in order of what a user most likely
//! got wrong, each with its own error: not wasm at all, a core module, a
//! component of another world or another contract version, an import the host
//! does not provide.

use super::RegistryError;
use crate::engine::ACTIVITIES_INTERFACE;
use wasmtime::component::Component;

const ACTIVITIES_PREFIX: &str = "wharf:activity/activities@";

/// Cheap checks on the raw bytes, before any compilation.
pub(super) fn check_bytes(bytes: &[u8]) -> Result<(), RegistryError> {
    if bytes.is_empty() {
        return Err(RegistryError::NotWasm("the file is empty".into()));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(RegistryError::CoreModule);
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(RegistryError::NotWasm(
            "it does not start with the WebAssembly magic number and component version".into(),
        ));
    }
    Ok(())
}

/// Checks that a compiled component exports the activities interface of the
/// version this host speaks.
pub(super) fn check_exports(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<(), RegistryError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.iter().any(|e| e == ACTIVITIES_INTERFACE) {
        return Ok(());
    }
    if let Some(other) = exports.iter().find(|e| e.starts_with(ACTIVITIES_PREFIX)) {
        return Err(RegistryError::WrongVersion {
            found: other.clone(),
        });
    }
    Err(RegistryError::WrongWorld {
        exports: if exports.is_empty() {
            "nothing".into()
        } else {
            exports.join(", ")
        },
    })
}
