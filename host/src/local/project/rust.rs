//! Rust projects: a crate on the `gantry-plugin` SDK, built by cargo for `wasm32-wasip2`.

use super::{Files, WIT};
use crate::cli::local::NewKind;
use anyhow::{bail, Context};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const TARGET: &str = "wasm32-wasip2";
const WORKSPACE_MANIFEST: &str = include_str!("../../../../Cargo.toml");
const PLACEMENT: &str = include_str!("../../../../plugins/placement/src/lib.rs");
const SDK: &str = include_str!("../../../../plugins/gantry-plugin/src/lib.rs");
const SDK_TESTING: &str = include_str!("../../../../plugins/gantry-plugin/src/testing.rs");
const SDK_PARSER: &str = include_str!("../../../../plugins/gantry-plugin/src/parser.rs");
const SDK_GRANTS: &str = include_str!("../../../../plugins/gantry-plugin/src/grants.rs");
const POLICY: &str = include_str!("../../../../plugins/examples/policy-cool-first/src/lib.rs");
const PARSER: &str = include_str!("../../../../plugins/examples/parser-lines/src/lib.rs");
const PROVIDER: &str = include_str!("../../../../plugins/examples/provider-jobs-api/src/lib.rs");
const PROVIDER_SDK_MANIFEST: &str = include_str!("../../../../plugins/gantry-provider/Cargo.toml");
/// The provider SDK's sources, by file name.
const PROVIDER_SDK: [(&str, &str); 5] = [
    ("lib.rs", include_str!("../../../../plugins/gantry-provider/src/lib.rs")),
    ("http.rs", include_str!("../../../../plugins/gantry-provider/src/http.rs")),
    ("settings.rs", include_str!("../../../../plugins/gantry-provider/src/settings.rs")),
    ("sign.rs", include_str!("../../../../plugins/gantry-provider/src/sign.rs")),
    ("testing.rs", include_str!("../../../../plugins/gantry-provider/src/testing.rs")),
];
/// Where the SDK sits in a project, laid out as in the workspace so its relative paths hold.
const SDK_DIR: &str = "sdk";

pub const MANIFEST: &str = "Cargo.toml";

/// The workspace's own `wit-bindgen` requirement, so a project's bindings are generated as the
/// bundled plugins' are.
fn wit_bindgen_requirement() -> anyhow::Result<&'static str> {
    WORKSPACE_MANIFEST.lines().find(|l| l.starts_with("wit-bindgen =")).context("the workspace manifest names no wit-bindgen (a build of gantry without its sources?)")
}

fn package(name: &str, body: &str) -> String {
    format!("[package]\nname = \"{name}\"\nversion = \"{}\"\nedition = \"2024\"\npublish = false\n\n{body}", env!("CARGO_PKG_VERSION"))
}

/// The provider SDK's own dependencies, with the workspace's `wit-bindgen` requirement in place
/// of the workspace reference.
fn provider_sdk_dependencies() -> anyhow::Result<String> {
    let section = PROVIDER_SDK_MANIFEST.split("[dependencies]").nth(1).context("the provider SDK's manifest has no [dependencies]")?;
    let lines: Vec<&str> = section.lines().take_while(|l| !l.starts_with('[')).filter(|l| !l.trim().is_empty()).collect();
    let requirement = wit_bindgen_requirement()?;
    Ok(lines.iter().map(|l| if l.starts_with("wit-bindgen") { requirement } else { l }).collect::<Vec<_>>().join("\n"))
}

/// The files of a new project, by path relative to its directory.
pub fn files(kind: NewKind, name: &str) -> anyhow::Result<Files> {
    let key = super::key(kind);
    let (source, what, example, try_it) = match kind {
        NewKind::Policy => (POLICY, "GPU selection policy", "each job goes to the tightest fit among the GPUs below 70 °C", ""),
        NewKind::Parser => (
            PARSER,
            "command-file parser",
            "one job per line, `QUEUE GPUS MEMORY_GB COMMAND…`",
            "gantry parse FILE                 # what the configured parser makes of a command file\n",
        ),
        NewKind::Provider => (PROVIDER, "provider adapter", "a job service with a small REST API (`POST /jobs`, `GET /jobs/{id}`, its log, `DELETE`)", ""),
    };
    let dependencies = match kind {
        NewKind::Provider => "gantry-provider = { path = \"sdk/plugins/gantry-provider\" }\nserde_json = \"1\"".to_string(),
        _ => format!("gantry-plugin = {{ path = \"{SDK_DIR}/plugins/gantry-plugin\" }}"),
    };
    let manifest = package(
        name,
        &format!(
            "[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n{dependencies}\n\n\
             # The daemon compiles the component again whenever it loads it: a small build loads faster,\n\
             # and places as fast.\n[profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\npanic = \"abort\"\nstrip = true\n\n\
             # A workspace of its own, wherever the project is made.\n[workspace]\n"
        ),
    );
    let readme = format!(
        "# {name}\n\nA {what} for gantry, made by `gantry plugin new {key} {name}`. It starts as gantry's\n\
         example: {example}. Change `src/lib.rs`; `sdk/` is the plugin SDK and contract of the gantry\n\
         that made the project.\n\n\
         ```sh\ncargo test                        # its tests, natively\n\
         gantry plugin build               # cargo build --release --target {TARGET}, then the daemon's own check\n\
         gantry plugin build --install     # and into the plugin directory, where the daemon loads it\n{try_it}```\n\n{}",
        super::readme_end(key, name)
    );
    let mut files: Files = vec![
        (MANIFEST.into(), manifest),
        ("src/lib.rs".into(), source.into()),
        ("README.md".into(), readme),
        (".gitignore".into(), "/target\n".into()),
        (format!("{SDK_DIR}/wit/gantry.wit"), WIT.into()),
    ];
    if kind == NewKind::Provider {
        files.push((format!("{SDK_DIR}/plugins/gantry-provider/Cargo.toml"), package("gantry-provider", &format!("[dependencies]\n{}\n", provider_sdk_dependencies()?))));
        files.extend(PROVIDER_SDK.iter().map(|(file, text)| (format!("{SDK_DIR}/plugins/gantry-provider/src/{file}"), text.to_string())));
        return Ok(files);
    }
    files.extend([
        (format!("{SDK_DIR}/plugins/placement/Cargo.toml"), package("placement", &format!("[dependencies]\n{}\n", wit_bindgen_requirement()?))),
        (format!("{SDK_DIR}/plugins/placement/src/lib.rs"), PLACEMENT.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/Cargo.toml"), package("gantry-plugin", &format!("[dependencies]\nplacement = {{ path = \"../placement\" }}\n{}\n", wit_bindgen_requirement()?))),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/lib.rs"), SDK.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/testing.rs"), SDK_TESTING.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/parser.rs"), SDK_PARSER.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/grants.rs"), SDK_GRANTS.into()),
    ]);
    Ok(files)
}

pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    target_installed()?;
    cargo_build(&dir.join(MANIFEST))
}

/// Refuses early, with the command that fixes it, rather than after cargo's own long error.
fn target_installed() -> anyhow::Result<()> {
    let output = Command::new("rustc").args(["--print", "sysroot"]).output().context("running rustc (install Rust with rustup: https://rustup.rs)")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        bail!("the Rust target {TARGET} is not installed: rustup target add {TARGET}");
    }
    Ok(())
}

/// Builds the project and finds its component among cargo's artifacts. Cargo's diagnostics go
/// to the caller's terminal as they come.
fn cargo_build(manifest: &Path) -> anyhow::Result<PathBuf> {
    let mut child = Command::new("cargo")
        .args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(manifest)
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo (install Rust with rustup: https://rustup.rs)")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let wanted = std::fs::canonicalize(manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let mut component = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] == "compiler-artifact" && message["manifest_path"].as_str().is_some_and(|p| Path::new(p) == wanted) {
            let wasm = message["filenames"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm"));
            component = wasm.map(PathBuf::from).or(component);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", manifest.display());
    }
    component.with_context(|| format!("cargo built no .wasm for {} (is its crate-type cdylib?)", manifest.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_carries_the_sdk_laid_out_as_in_the_workspace_and_names_only_what_it_was_given() {
        let files = files(NewKind::Policy, "cool").expect("files");
        let manifest = &files.iter().find(|(p, _)| p == MANIFEST).expect("manifest").1;
        assert!(manifest.contains("name = \"cool\"") && manifest.contains("path = \"sdk/plugins/gantry-plugin\"") && manifest.contains("[workspace]"), "{manifest}");
        let placement = &files.iter().find(|(p, _)| p == "sdk/plugins/placement/Cargo.toml").expect("placement").1;
        assert!(placement.contains("wit-bindgen = { version = "), "{placement}");
        // The copies find the WIT where the workspace's crates do.
        assert!(PLACEMENT.contains("path: \"../../wit\"") && PLACEMENT.contains("include_str!(\"../../../wit/gantry.wit\")"));
        assert!(files.iter().any(|(p, _)| p == "sdk/wit/gantry.wit"));
        let sdk = &files.iter().find(|(p, _)| p == "sdk/plugins/gantry-plugin/Cargo.toml").expect("sdk").1;
        assert!(sdk.contains("wit-bindgen = { version = ") && sdk.contains("placement = { path"), "{sdk}");
        let parser = super::files(NewKind::Parser, "lines").expect("files");
        assert!(parser.iter().any(|(p, text)| p == "src/lib.rs" && text.contains("export_parser!")));
        assert!(parser.iter().any(|(p, text)| p == "README.md" && text.contains("parser = \"lines\"")));
        let provider = super::files(NewKind::Provider, "jobs").expect("files");
        let text = |path: &str| &provider.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("{path}")).1;
        assert!(text(MANIFEST).contains("gantry-provider = { path = \"sdk/plugins/gantry-provider\" }"), "{}", text(MANIFEST));
        let sdk = text("sdk/plugins/gantry-provider/Cargo.toml");
        assert!(sdk.contains("wit-bindgen = { version = ") && sdk.contains("wasi = ") && sdk.contains("sha2 = ") && !sdk.contains("workspace"), "{sdk}");
        assert!(text("src/lib.rs").contains("export_provider!") && text("sdk/plugins/gantry-provider/src/lib.rs").contains("path: \"../../wit\""));
        assert!(text("README.md").contains("[providers.jobs]\nplugin = \"jobs\""), "{}", text("README.md"));
        for bad in ["1cool", "-cool", "_cool"] {
            assert!(super::super::check_name(bad).is_err(), "{bad:?}");
        }
    }
}
