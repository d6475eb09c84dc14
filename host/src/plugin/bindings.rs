//! Host bindings generated from `wit/gantry.wit`, one module per world.
//!
//! Every world exports the same `meta` interface, so each module has its own `PluginInfo`; the
//! conversions into the host's single [`super::PluginInfo`] live in `convert.rs`.

// Every world's exports are called asynchronously: a call is a future the host drops at its
// deadline, whatever the guest waits on in a host function (a clock, a file), while epoch
// interruption stops a guest that computes instead.
pub mod policy {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "policy-plugin",
        additional_derives: [PartialEq],
        exports: { default: async },
    });
}

pub mod parser {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "parser-plugin",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
        exports: { default: async },
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
