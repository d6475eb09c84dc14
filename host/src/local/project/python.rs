//! Python policies: a module on the Python `gantry_plugin` package, made a component by
//! componentize-py (CPython inside, its start-up already run at build time).

use super::{Files, WIT};
use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const APP: &str = include_str!("../../../../plugins/examples/policy-cool-first-py/app.py");
const TEST: &str = include_str!("../../../../plugins/examples/policy-cool-first-py/test_app.py");
const PYPROJECT: &str = include_str!("../../../../plugins/examples/policy-cool-first-py/pyproject.toml");
const GITIGNORE: &str = include_str!("../../../../plugins/examples/policy-cool-first-py/.gitignore");
const SDK: &str = include_str!("../../../../plugins/gantry-plugin/python/gantry_plugin/__init__.py");
const SDK_TESTING: &str = include_str!("../../../../plugins/gantry-plugin/python/gantry_plugin/testing.py");
const SDK_GRANTS: &str = include_str!("../../../../plugins/gantry-plugin/python/gantry_plugin/grants.py");
/// The example's name, which a new project's name replaces.
const EXAMPLE: &str = "policy-cool-first-py";
/// The componentize-py these files were built and tested with.
pub const TOOL: &str = "componentize-py==0.25.1";

pub const MANIFEST: &str = "pyproject.toml";

pub fn files(name: &str) -> Files {
    let readme = format!(
        "# {name}\n\nA GPU selection policy for gantry in Python, made by `gantry plugin new policy {name} --lang python`.\n\
         It starts as gantry's example: each job goes to the tightest fit among the GPUs below 70 °C.\n\
         Change `app.py`; `gantry_plugin/` is the policy SDK, and `wit/` the contract, of the gantry\n\
         that made the project.\n\n\
         ```sh\npip install {TOOL}\n\
         componentize-py -d wit -w policy-plugin bindings target/bindings   # once, for the tests\n\
         PYTHONPATH=target/bindings python3 -m unittest test_app          # its tests, natively\n\
         gantry plugin build               # componentize-py … componentize app, then the daemon's own check\n\
         gantry plugin build --install     # and into the plugin directory, where the daemon loads it\n```\n\n\
         The component holds CPython: about 18 MB, which the daemon compiles once (seconds) and keeps\n\
         compiled in its cache. A call costs more than a Rust policy's; `gantry plugin list` shows\n\
         the time spent in calls.\n\n{}",
        super::readme_end("policy", name)
    );
    vec![
        (MANIFEST.into(), PYPROJECT.replace(EXAMPLE, name)),
        ("app.py".into(), APP.replace(EXAMPLE, name)),
        ("test_app.py".into(), TEST.into()),
        ("README.md".into(), readme),
        (".gitignore".into(), GITIGNORE.into()),
        ("gantry_plugin/__init__.py".into(), SDK.into()),
        ("gantry_plugin/testing.py".into(), SDK_TESTING.into()),
        ("gantry_plugin/grants.py".into(), SDK_GRANTS.into()),
        ("wit/gantry.wit".into(), WIT.into()),
    ]
}

/// The project's name, from `[project] name` in its `pyproject.toml`.
fn project_name(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let name = manifest.get("project").and_then(|p| p.get("name")).and_then(|n| n.as_str());
    name.map(str::to_string).with_context(|| format!("{}: [project] has no name", path.display()))
}

pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let out = super::output(dir, MANIFEST, &project_name(dir)?)?;
    let args: Vec<&OsStr> = ["-d", "wit", "-w", "policy-plugin", "componentize", "app", "-o"].iter().map(OsStr::new).chain([out.as_os_str()]).collect();
    let status = super::run_tool(dir, Path::new("componentize-py"), &args, &format!("it makes Python policies components: pip install {TOOL}"))?;
    if !status.success() {
        bail!("componentize-py failed on {} ({status})", dir.join("app.py").display());
    }
    Ok(dir.join(out))
}
