//! JavaScript policies: a module on the JavaScript `gantry-plugin` SDK, made a component by jco
//! on its QuickJS back end (a 1.6 MB component, where StarlingMonkey's is 12 MB and compiles
//! for as much longer on every load without a cache).

use super::{Files, WIT};
use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const POLICY: &str = include_str!("../../../../plugins/examples/policy-cool-first-js/policy.js");
const TEST: &str = include_str!("../../../../plugins/examples/policy-cool-first-js/policy.test.js");
const PACKAGE: &str = include_str!("../../../../plugins/examples/policy-cool-first-js/package.json");
const GITIGNORE: &str = include_str!("../../../../plugins/examples/policy-cool-first-js/.gitignore");
const SDK: &str = include_str!("../../../../plugins/gantry-plugin/js/gantry-plugin/index.js");
const SDK_TESTING: &str = include_str!("../../../../plugins/gantry-plugin/js/gantry-plugin/testing.js");
/// The example's name, which a new project's name replaces.
const EXAMPLE: &str = "policy-cool-first-js";

pub const MANIFEST: &str = "package.json";

pub fn files(name: &str) -> Files {
    let readme = format!(
        "# {name}\n\nA GPU selection policy for gantry in JavaScript, made by `gantry plugin new policy {name} --lang js`.\n\
         It starts as gantry's example: each job goes to the tightest fit among the GPUs below 70 °C.\n\
         Change `policy.js`; `gantry-plugin/` is the policy SDK, and `wit/` the contract, of the gantry\n\
         that made the project. It needs Node.js and npm.\n\n\
         ```sh\nnpm install                       # jco, which builds the component\n\
         npm test                          # its tests, natively (node --test)\n\
         gantry plugin build               # jco componentize … --backend qjs, then the daemon's own check\n\
         gantry plugin build --install     # and into the plugin directory, where the daemon loads it\n```\n\n\
         Records arrive as jco lowers them: fields in camelCase, `u64` figures (ids, memory, times) as\n\
         BigInt, a missing option as `undefined`.\n\n{}",
        super::readme_end("policy", name)
    );
    vec![
        (MANIFEST.into(), PACKAGE.replace(EXAMPLE, name)),
        ("policy.js".into(), POLICY.replace(EXAMPLE, name)),
        ("policy.test.js".into(), TEST.into()),
        ("README.md".into(), readme),
        (".gitignore".into(), GITIGNORE.into()),
        ("gantry-plugin/index.js".into(), SDK.into()),
        ("gantry-plugin/testing.js".into(), SDK_TESTING.into()),
        ("wit/gantry.wit".into(), WIT.into()),
    ]
}

/// `name` and `main` of the project's `package.json`.
fn package(dir: &Path) -> anyhow::Result<(String, String)> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let package: serde_json::Value = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    let name = package["name"].as_str().with_context(|| format!("{}: no \"name\"", path.display()))?;
    Ok((name.to_string(), package["main"].as_str().unwrap_or("policy.js").to_string()))
}

pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let (name, main) = package(dir)?;
    let out = super::output(dir, MANIFEST, &name)?;
    let jco = dir.join("node_modules/.bin/jco");
    if !jco.exists() {
        let install = "it installs jco, which makes JavaScript policies components: install Node.js (apt-get install nodejs npm)";
        let status = super::run_tool(dir, Path::new("npm"), &[OsStr::new("install"), OsStr::new("--no-audit"), OsStr::new("--no-fund")], install)?;
        if !status.success() || !jco.exists() {
            bail!("npm install in {} did not install jco ({status})", dir.display());
        }
    }
    let args: Vec<&OsStr> = ["componentize", &main, "--wit", "wit", "--world-name", "policy-plugin", "--backend", "qjs", "--backend-qjs-disable-async", "-o"]
        .into_iter()
        .map(OsStr::new)
        .chain([out.as_os_str()])
        .collect();
    let status = super::run_tool(dir, &jco, &args, "run npm install in the project")?;
    if !status.success() {
        bail!("jco componentize failed on {} ({status})", dir.join(&main).display());
    }
    Ok(dir.join(out))
}
