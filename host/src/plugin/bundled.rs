//! The plugins compiled into the `gantry` binary, built from `plugins/` by `build.rs`, so a fresh
//! install schedules with no files beside the binary.

pub struct Bundled {
    pub name: &'static str,
    pub bytes: &'static [u8],
    /// The bytes' SHA-256, taken by `build.rs` (see [`super::Wasm`]).
    pub sha256: &'static str,
}

macro_rules! bundled {
    ($($name:literal => $var:literal),* $(,)?) => {
        &[$(Bundled { name: $name, bytes: include_bytes!(env!($var)), sha256: env!(concat!($var, "_SHA256")) }),*]
    };
}

pub const BUNDLED: &[Bundled] = bundled![
    "parser-compete" => "GANTRY_WASM_PARSER_COMPETE",
    "policy-best-fit" => "GANTRY_WASM_POLICY_BEST_FIT",
    "policy-spread" => "GANTRY_WASM_POLICY_SPREAD",
    "provider-aliyun-ecs" => "GANTRY_WASM_PROVIDER_ALIYUN_ECS",
    "provider-k8s" => "GANTRY_WASM_PROVIDER_K8S",
    "provider-runpod" => "GANTRY_WASM_PROVIDER_RUNPOD",
    "provider-slurm" => "GANTRY_WASM_PROVIDER_SLURM",
    "provider-tencent-tke" => "GANTRY_WASM_PROVIDER_TENCENT_TKE",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest that isn't the bytes' would load another component's cached artifact.
    #[test]
    fn each_bundled_plugin_carries_its_own_digest() {
        for bundled in BUNDLED {
            assert_eq!(bundled.sha256, super::super::engine::content_hash(bundled.bytes), "{}", bundled.name);
        }
    }
}
