//! Host bindings generated from `wit/gantry.wit`, one module per world.
//!
//! Every world exports the same `meta` interface, so each module has its own `PluginInfo`; the
//! conversions into the host's single [`super::PluginInfo`] live in `convert.rs`.

pub mod policy {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy-plugin",
        additional_derives: [PartialEq],
    });
}

pub mod parser {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "parser-plugin",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub mod provider {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "provider-plugin",
        additional_derives: [serde::Serialize, serde::Deserialize],
        exports: { default: async },
    });
}

/// The `gantry:plugin` version this host was built against, read from the WIT itself (by the
/// `placement` crate, which the policy plugins share) so there is one place to bump.
pub fn host_wit_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(placement::wit_version)
}
