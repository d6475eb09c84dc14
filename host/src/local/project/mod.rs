//! `gantry plugin new | build`: a plugin project that builds without a gantry checkout.
//!
//! A new project carries its own copy of the SDK and of `wit/gantry.wit`, taken from this
//! binary, so it builds against exactly the contract of the daemon that made it. Each language
//! starts from a workspace example that the workspace's tests build and run: `policy-cool-first`
//! and `parser-lines` in Rust, `policy-cool-first-py` in Python, `policy-cool-first-js` in
//! JavaScript. `build` tells the language by the project's manifest.

mod js;
mod python;
mod rust;

use crate::cli::local::{NewKind, NewLang};
use anyhow::{bail, Context};
use gantry::config::Config;
use gantry::plugin::{PluginRuntime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const WIT: &str = include_str!("../../../../wit/gantry.wit");

/// A project's files, by path relative to its directory.
type Files = Vec<(String, String)>;

/// The kind as `gantry.toml`'s `[plugins]` names it.
fn key(kind: NewKind) -> &'static str {
    match kind {
        NewKind::Policy => "policy",
        NewKind::Parser => "parser",
        NewKind::Provider => "provider",
    }
}

/// How every README ends: how the daemon comes to use the plugin.
fn readme_end(key: &str, name: &str) -> String {
    if key == "provider" {
        return format!(
            "A daemon runs an installed provider plugin as the instances `gantry.toml` configures,\n\
             from its next start:\n\n\
             ```toml\n[providers.jobs]\nplugin = \"{name}\"\nbase_url = \"https://jobs.example.org/api\"\n\
             # token_file = \"jobs.token\"   # sent as a bearer token\n```\n\n\
             and `gantry submit --provider jobs -- CMD` hands a job to it. The guide is gantry's\n\
             `docs/PLUGINS.md`.\n"
        );
    }
    format!(
        "A running daemon loads an installed plugin at once, and uses it once `gantry.toml` says\n\n\
         ```toml\n[plugins]\n{key} = \"{name}\"\n```\n\nThe guide is gantry's `docs/PLUGINS.md`.\n"
    )
}

/// Where a project's component is built, relative to it (`target/NAME.wasm`), once its folder
/// is made; the project's name is checked as the daemon checks plugin names.
fn output(dir: &Path, manifest: &str, name: &str) -> anyhow::Result<PathBuf> {
    gantry::plugin::text::check_name(name).map_err(|e| anyhow::anyhow!("{}: the project's name: {e}", dir.join(manifest).display()))?;
    std::fs::create_dir_all(dir.join("target")).with_context(|| format!("creating {}", dir.join("target").display()))?;
    Ok(PathBuf::from("target").join(format!("{name}.wasm")))
}

/// Runs a build tool in the project, its output on the caller's terminal; one that is not
/// installed is named with how to install it.
fn run_tool(dir: &Path, program: &Path, args: &[&std::ffi::OsStr], install: &str) -> anyhow::Result<std::process::ExitStatus> {
    std::process::Command::new(program).current_dir(dir).args(args).status().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{} is not installed; {install}", program.display()),
        _ => anyhow::anyhow!("running {}: {e}", program.display()),
    })
}

fn files(kind: NewKind, lang: NewLang, name: &str) -> anyhow::Result<Files> {
    match (lang, kind) {
        (NewLang::Rust, _) => rust::files(kind, name),
        (NewLang::Python, NewKind::Policy) => Ok(python::files(name)),
        (NewLang::Js, NewKind::Policy) => Ok(js::files(name)),
        (_, NewKind::Parser | NewKind::Provider) => bail!("parsers and providers are written in Rust (`gantry plugin new {} {name}`); Python and JavaScript projects are policies", key(kind)),
    }
}

/// The name becomes the plugin's and the crate's or package's: the daemon's rule for plugin
/// names, and a letter first, as cargo wants.
fn check_name(name: &str) -> anyhow::Result<()> {
    gantry::plugin::text::check_name(name).map_err(|e| anyhow::anyhow!("the plugin: {e}"))?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!("the plugin's name '{name}' must start with a letter (it names the crate or package too)");
    }
    Ok(())
}

pub fn new(kind: NewKind, lang: NewLang, name: &str, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    check_name(name)?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!("{} exists and is not empty: a new project needs a directory of its own", dir.display());
    }
    for (path, text) in files(kind, lang, name)? {
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
    let component = if dir.join(rust::MANIFEST).is_file() {
        rust::build(dir)?
    } else if dir.join(python::MANIFEST).is_file() {
        python::build(dir)?
    } else if dir.join(js::MANIFEST).is_file() {
        js::build(dir)?
    } else {
        bail!(
            "{} has no {}, {} or {}: `gantry plugin build` builds a project made by `gantry plugin new`",
            dir.display(),
            rust::MANIFEST,
            python::MANIFEST,
            js::MANIFEST
        );
    };
    // Installing checks with the daemon's cache: the artifact compiled here is the one the daemon
    // then loads, so a large component (a Python or JavaScript interpreter) is compiled once.
    let mut options = RuntimeOptions::checking(config.plugins.defaults.clone());
    if install {
        options.cache_dir = Some(config.plugins.cache_dir.clone());
    }
    let runtime = PluginRuntime::new(options).context("starting the plugin runtime")?;
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
        match info.kind {
            gantry::plugin::PluginKind::Provider => println!(
                "installed {}: `plugin = \"{}\"` under [providers.NAME] in gantry.toml makes an instance of it, from the daemon's next start",
                dest.display(),
                info.name
            ),
            kind => println!("installed {}: a running daemon loads it now; `{kind} = \"{}\"` under [plugins] in gantry.toml makes it the {kind}", dest.display(), info.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_and_js_projects_are_the_examples_renamed_with_the_sdk_and_the_wit() {
        for (lang, manifest, source) in [(NewLang::Python, python::MANIFEST, "app.py"), (NewLang::Js, js::MANIFEST, "policy.js")] {
            let files = files(NewKind::Policy, lang, "hot-or-not").expect("files");
            let text = |path: &str| &files.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("{path}")).1;
            assert!(text(manifest).contains("\"hot-or-not\"") && !text(manifest).contains("cool-first"), "{}", text(manifest));
            assert!(text(source).contains("\"hot-or-not\", \"0.1.0\""), "{}", text(source));
            assert!(text("wit/gantry.wit").contains(&format!("package gantry:plugin@{};", gantry::plugin::wit_version())));
            assert!(text("README.md").contains("policy = \"hot-or-not\""));
        }
        let refused = files(NewKind::Parser, NewLang::Python, "lines").expect_err("parsers are Rust");
        assert!(refused.to_string().contains("parsers and providers are written in Rust (`gantry plugin new parser lines`)"), "{refused}");
        for bad in ["", "Cool", "1cool", "co ol", "../cool"] {
            assert!(new(NewKind::Policy, NewLang::Python, bad, Some(PathBuf::from("/nonexistent/x"))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_sdks_say_the_contract_version_they_were_written_for() {
        let version = gantry::plugin::wit_version();
        assert!(python::files("p").iter().any(|(p, t)| p == "gantry_plugin/__init__.py" && t.contains(&format!("WIT_VERSION = \"{version}\""))));
        assert!(js::files("j").iter().any(|(p, t)| p == "gantry-plugin/index.js" && t.contains(&format!("WIT_VERSION = \"{version}\""))));
    }
}
