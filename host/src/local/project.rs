//! `gantry plugin new | build`: a plugin project that builds without a gantry checkout.
//!
//! A new project carries its own copy of the SDK (`gantry-plugin`, the `placement` crate it
//! re-exports, and `wit/gantry.wit`), taken from this binary, so it builds against exactly the
//! contract of the daemon that made it and needs nothing but crates.io. A policy starts from the
//! workspace's `policy-cool-first`, a parser from `parser-lines`; the workspace's tests build and
//! run both.

use crate::cli::local::NewKind;
use anyhow::{bail, Context};
use gantry::config::Config;
use gantry::plugin::{PluginRuntime, RuntimeOptions};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const TARGET: &str = "wasm32-wasip2";
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");
const WIT: &str = include_str!("../../../wit/gantry.wit");
const PLACEMENT: &str = include_str!("../../../plugins/placement/src/lib.rs");
const SDK: &str = include_str!("../../../plugins/gantry-plugin/src/lib.rs");
const SDK_TESTING: &str = include_str!("../../../plugins/gantry-plugin/src/testing.rs");
const SDK_PARSER: &str = include_str!("../../../plugins/gantry-plugin/src/parser.rs");
const SDK_GRANTS: &str = include_str!("../../../plugins/gantry-plugin/src/grants.rs");
const POLICY: &str = include_str!("../../../plugins/examples/policy-cool-first/src/lib.rs");
const PARSER: &str = include_str!("../../../plugins/examples/parser-lines/src/lib.rs");
/// Where the SDK sits in a project, laid out as in the workspace so its relative paths hold.
const SDK_DIR: &str = "sdk";

/// The workspace's own `wit-bindgen` requirement, so a project's bindings are generated as the
/// bundled plugins' are.
fn wit_bindgen_requirement() -> anyhow::Result<&'static str> {
    WORKSPACE_MANIFEST.lines().find(|l| l.starts_with("wit-bindgen =")).context("the workspace manifest names no wit-bindgen (a build of gantry without its sources?)")
}

fn package(name: &str, body: &str) -> String {
    format!("[package]\nname = \"{name}\"\nversion = \"{}\"\nedition = \"2024\"\npublish = false\n\n{body}", env!("CARGO_PKG_VERSION"))
}

/// The kind as `gantry.toml`'s `[plugins]` names it.
fn key(kind: NewKind) -> &'static str {
    match kind {
        NewKind::Policy => "policy",
        NewKind::Parser => "parser",
    }
}

/// The files of a new project, by path relative to its directory.
fn files(kind: NewKind, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let key = key(kind);
    let (source, what, example, try_it) = match kind {
        NewKind::Policy => (POLICY, "GPU selection policy", "each job goes to the tightest fit among the GPUs below 70 °C", ""),
        NewKind::Parser => (
            PARSER,
            "command-file parser",
            "one job per line, `QUEUE GPUS MEMORY_GB COMMAND…`",
            "gantry parse FILE                 # what the configured parser makes of a command file\n",
        ),
    };
    let manifest = package(
        name,
        &format!(
            "[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\ngantry-plugin = {{ path = \"{SDK_DIR}/plugins/gantry-plugin\" }}\n\n\
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
         gantry plugin build --install     # and into the plugin directory, where the daemon loads it\n{try_it}```\n\n\
         A running daemon loads an installed plugin at once, and uses it once `gantry.toml` says\n\n\
         ```toml\n[plugins]\n{key} = \"{name}\"\n```\n\nThe guide is gantry's `docs/PLUGINS.md`.\n"
    );
    Ok(vec![
        ("Cargo.toml".into(), manifest),
        ("src/lib.rs".into(), source.into()),
        ("README.md".into(), readme),
        (".gitignore".into(), "/target\n".into()),
        (format!("{SDK_DIR}/wit/gantry.wit"), WIT.into()),
        (format!("{SDK_DIR}/plugins/placement/Cargo.toml"), package("placement", &format!("[dependencies]\n{}\n", wit_bindgen_requirement()?))),
        (format!("{SDK_DIR}/plugins/placement/src/lib.rs"), PLACEMENT.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/Cargo.toml"), package("gantry-plugin", &format!("[dependencies]\nplacement = {{ path = \"../placement\" }}\n{}\n", wit_bindgen_requirement()?))),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/lib.rs"), SDK.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/testing.rs"), SDK_TESTING.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/parser.rs"), SDK_PARSER.into()),
        (format!("{SDK_DIR}/plugins/gantry-plugin/src/grants.rs"), SDK_GRANTS.into()),
    ])
}

/// The name becomes the crate's and the plugin's: the daemon's rule for plugin names, and a
/// letter first, as cargo wants.
fn check_name(name: &str) -> anyhow::Result<()> {
    gantry::plugin::text::check_name(name).map_err(|e| anyhow::anyhow!("the plugin: {e}"))?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("the plugin's name '{name}' must start with a letter (it is the crate's name too)");
    }
    Ok(())
}

pub fn new(kind: NewKind, name: &str, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty: a new project needs a directory of its own", dir.display());
    }
    for (path, text) in files(kind, name)? {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("made the {} plugin {name} in {}: `cd {} && gantry plugin build --install`", key(kind), dir.display(), dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn build(config: &Config, dir: &Path, install: bool) -> anyhow::Result<ExitCode> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!("{} has no Cargo.toml: `gantry plugin build` builds a project made by `gantry plugin new`", dir.display());
    }
    target_installed()?;
    let component = cargo_build(&manifest)?;
    let runtime = PluginRuntime::new(RuntimeOptions::checking(config.plugins.defaults.clone())).context("starting the plugin runtime")?;
    let info = runtime.check_file(&component).map_err(|e| anyhow::anyhow!("{}", gantry::plugin::text::shown(&e.to_string(), usize::MAX)))?;
    println!("built {} {} ({} plugin, gantry:plugin@{}): {}", info.name, info.version, info.kind, info.wit_version, component.display());
    if install {
        let plugins = &config.plugins.dir;
        std::fs::create_dir_all(plugins).with_context(|| format!("creating the plugin directory {}", plugins.display()))?;
        let dest = plugins.join(format!("{}.wasm", info.name));
        // Renamed into place: the daemon's watcher never loads half a file.
        let partial = plugins.join(format!(".{}.wasm.partial", info.name));
        std::fs::copy(&component, &partial).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &dest).with_context(|| format!("installing {}", dest.display()))?;
        let key = info.kind.as_str();
        println!("installed {}: a running daemon loads it now; `{key} = \"{}\"` under [plugins] in gantry.toml makes it the {key}", dest.display(), info.name);
    }
    Ok(ExitCode::SUCCESS)
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
        let manifest = &files.iter().find(|(p, _)| p == "Cargo.toml").expect("manifest").1;
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
        for bad in ["", "Cool", "1cool", "-cool", "co ol", "../cool"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
