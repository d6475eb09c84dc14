//! The plugins compiled into the `gantry` binary, built from `plugins/` by `build.rs`, so a fresh
//! install schedules with no files beside the binary.

pub const BUNDLED: &[(&str, &[u8])] = &[
    ("parser-compete", include_bytes!(env!("GANTRY_WASM_PARSER_COMPETE"))),
    ("policy-best-fit", include_bytes!(env!("GANTRY_WASM_POLICY_BEST_FIT"))),
    ("policy-spread", include_bytes!(env!("GANTRY_WASM_POLICY_SPREAD"))),
    ("provider-aliyun-ecs", include_bytes!(env!("GANTRY_WASM_PROVIDER_ALIYUN_ECS"))),
    ("provider-k8s", include_bytes!(env!("GANTRY_WASM_PROVIDER_K8S"))),
    ("provider-runpod", include_bytes!(env!("GANTRY_WASM_PROVIDER_RUNPOD"))),
    ("provider-slurm", include_bytes!(env!("GANTRY_WASM_PROVIDER_SLURM"))),
    ("provider-tencent-tke", include_bytes!(env!("GANTRY_WASM_PROVIDER_TENCENT_TKE"))),
];
