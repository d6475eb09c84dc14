//! Builds the WebAssembly plugins under `plugins/` from source, with a nested cargo for
//! `wasm32-wasip2` in its own target directory, and tells the host where each component is.
//!
//! `src/plugin/bundled.rs` embeds the shipped ones in the binary; tests load the fixtures by path.
//! No `.wasm` is ever committed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crates built as components.
const PLUGINS: &[&str] = &[
    "parser-compete",
    "policy-best-fit",
    "policy-spread",
    "policy-misbehave",
    "policy-future",
    "policy-fixture-v1",
    "policy-fixture-v2",
];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ lives inside the workspace").to_path_buf();
    println!("cargo:rerun-if-changed={}", workspace.join("plugins").display());
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!("cargo:rerun-if-changed={}", workspace.join("command").display());

    let target_dir = plugin_target_dir(&workspace);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .arg("build")
        .arg("--target")
        .arg(TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&target_dir);
    for package in PLUGINS {
        cmd.arg("-p").arg(package);
    }
    // Flags meant for the host build (sanitizers, target-cpu, coverage) must not leak into the
    // wasm build, nor must the outer build's target choice.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "CARGO_BUILD_RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("could not run cargo to build the wasm plugins");
    if !status.success() {
        panic!(
            "building the wasm plugins failed (see above). If the error says the `{TARGET}` target \
             is missing, run `rustup target add {TARGET}`."
        );
    }

    let out = target_dir.join(TARGET).join(PROFILE);
    for package in PLUGINS {
        let wasm = out.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(wasm.exists(), "cargo built {package} but {} is missing", wasm.display());
        let var = format!("GANTRY_WASM_{}", package.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}

/// `target/plugins` beside the host's own build output, so the wasm build is cached across
/// builds and never contends for the outer cargo's lock.
fn plugin_target_dir(workspace: &Path) -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out.
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("plugins"))
        .unwrap_or_else(|| workspace.join("target").join("plugins"))
}
