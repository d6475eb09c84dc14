//! Builds what the host embeds or loads from source, each with a nested cargo in its own target
//! directory: the WebAssembly plugins under `plugins/` (for `wasm32-wasip2`), and the stand-in
//! `libnvidia-ml.so.1` of `nvml-sim/` (for this machine). It tells the host where each artifact is.
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
    "provider-echo",
    "provider-hostile",
    "policy-slow-info",
    "policy-impostor",
    "policy-bad-name",
    "parser-hostile",
    "policy-asks",
    "provider-slurm",
    "provider-k8s",
    "provider-runpod",
    "provider-aliyun-ecs",
    "provider-tencent-tke",
];

/// Fixtures written as a core module in WebAssembly text, made components here: what a Rust
/// guest can't be made to do (several linear memories).
const WAT_FIXTURES: &[(&str, &str)] = &[("policy-many-memories", "policy-plugin")];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ lives inside the workspace").to_path_buf();
    println!("cargo:rerun-if-changed={}", workspace.join("plugins").display());
    println!("cargo:rerun-if-changed={}", workspace.join("wit").display());
    println!("cargo:rerun-if-changed={}", workspace.join("command").display());

    println!("cargo:rerun-if-changed={}", workspace.join("nvml-sim").display());
    static_unwinder();
    let target_root = target_root(&workspace);

    let plugins_dir = target_root.join("plugins");
    let mut args: Vec<&str> = vec!["--target", TARGET, "--profile", PROFILE];
    for package in PLUGINS {
        args.extend(["-p", package]);
    }
    nested_cargo(&workspace, &plugins_dir, &args, &format!(
        "building the wasm plugins failed (see above). If the error says the `{TARGET}` target is \
         missing, run `rustup target add {TARGET}`."
    ));

    let sim_dir = target_root.join("sim");
    // Stripped: the daemon embeds it and writes it out on every simulated start, and the
    // workspace's release line tables made it ten times its code's size.
    nested_cargo(&workspace, &sim_dir, &["--release", "-p", "nvml-sim", "--config", "profile.release.strip=true", "--config", "profile.release.debug=false"], "building nvml-sim failed (see above)");
    let fake = sim_dir.join("release").join("libnvidia_ml.so");
    assert!(fake.exists(), "cargo built nvml-sim but {} is missing", fake.display());
    println!("cargo:rustc-env=GANTRY_NVML_SIM={}", fake.display());

    let out = plugins_dir.join(TARGET).join(PROFILE);
    for package in PLUGINS {
        let wasm = out.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(wasm.exists(), "cargo built {package} but {} is missing", wasm.display());
        export_path(package, &wasm);
    }
    for (fixture, world) in WAT_FIXTURES {
        let wasm = componentize(&workspace, fixture, world, &plugins_dir);
        export_path(fixture, &wasm);
    }
}

/// Where GCC's static unwinder `libgcc_eh.a` is found, `gantry` links it (as `gcc
/// -static-libgcc` does) instead of loading `libgcc_s.so.1`: that library's constructor reads
/// the CPU's features with a dozen CPUIDs, each a trap to the hypervisor in a virtual machine,
/// on every `gantry submit`. Elsewhere (no GCC, another libc, a cross build, whose archive this
/// machine's `cc` would not name) `gantry` links as Rust does.
fn static_unwinder() {
    println!("cargo::rustc-check-cfg=cfg(gantry_static_unwinder)");
    let native = env::var("TARGET").is_ok_and(|target| env::var("HOST").is_ok_and(|host| host == target));
    if !native || env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") || env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu") {
        return;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let Ok(output) = Command::new(&cc).arg("-print-file-name=libgcc_eh.a").output() else { return };
    let archive = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if let (true, Some(dir)) = (archive.is_absolute() && archive.is_file(), archive.parent()) {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-cfg=gantry_static_unwinder");
    }
}

/// Tells the host where a built plugin is, `GANTRY_WASM_<NAME>`, and its SHA-256,
/// `GANTRY_WASM_<NAME>_SHA256` (the key of its compiled artifact, known without reading it).
fn export_path(package: &str, wasm: &Path) {
    use sha2::Digest;
    let var = format!("GANTRY_WASM_{}", package.replace('-', "_").to_uppercase());
    println!("cargo:rustc-env={var}={}", wasm.display());
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env={var}_SHA256={digest}");
}

/// `plugins/fixtures/<fixture>/module.wat` as a component of `world` of `wit/`.
fn componentize(workspace: &Path, fixture: &str, world: &str, out_dir: &Path) -> PathBuf {
    let source = workspace.join("plugins/fixtures").join(fixture).join("module.wat");
    let mut module = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve.push_path(workspace.join("wit")).unwrap_or_else(|e| panic!("wit/: {e:#}"));
    let world = resolve.select_world(&[package], Some(world)).unwrap_or_else(|e| panic!("world {world}: {e:#}"));
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8).unwrap_or_else(|e| panic!("{fixture}: {e:#}"));
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|encoder| encoder.encode())
        .unwrap_or_else(|e| panic!("{fixture}: {e:#}"));
    let wasm = out_dir.join(format!("{}.wasm", fixture.replace('-', "_")));
    std::fs::write(&wasm, component).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    wasm
}

fn nested_cargo(workspace: &Path, target_dir: &Path, args: &[&str], failure: &str) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace).arg("build").args(args).arg("--target-dir").arg(target_dir);
    // Flags meant for the host build (sanitizers, target-cpu, coverage) must not leak into the
    // nested builds, nor must the outer build's target choice, nor a wrapper such as clippy's
    // (lints are for the outer build to report).
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("could not run cargo for a nested build");
    assert!(status.success(), "{failure}");
}

/// The host's own target directory, so nested builds are cached across builds, and in
/// subdirectories of their own so they never contend for the outer cargo's lock.
fn target_root(workspace: &Path) -> PathBuf {
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out.
    out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(|build| build.parent())
        .and_then(|profile| profile.parent())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace.join("target"))
}
