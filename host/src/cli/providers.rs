//! `gantry providers` and `gantry offers`: where jobs go when they leave this server, whether each
//! provider answers, and what it would charge against how long the job would wait here.

use super::client::Client;
use anyhow::Context;
use gantry::providers::catalog::{Catalog, CatalogPrice};
use std::path::Path;
use std::process::ExitCode;

/// Where jobs go when they leave this server: each provider, whether it answers, and why not.
pub fn providers(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let providers: Vec<serde_json::Value> = client.get("/api/v1/providers")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&providers)?);
        return Ok(ExitCode::SUCCESS);
    }
    if providers.is_empty() {
        println!("no providers: configure one as [providers.NAME] (see config/providers.toml)");
    }
    let now = gantry::model::now_ms();
    for p in &providers {
        let text = |field: &str| p[field].as_str().unwrap_or("-").to_string();
        let seen = p["last_ok_ms"].as_u64().map_or_else(|| "never answered".to_string(), |ms| format!("answered {:.1} s ago", now.saturating_sub(ms) as f64 / 1000.0));
        println!("{:<12} {:<16} {:<12} {:<28} {seen}; {} calls, {} failed", text("name"), text("plugin"), text("state"), text("base_url"), p["calls"], p["failures"]);
        if let Some(api) = p["api_url"].as_str() {
            println!("  and its cloud's API: {api}");
        }
        if let Some(error) = p["last_error"].as_str() {
            println!("  last error: {error}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the daemon said about `count` GPUs, for `gantry offers` and `gantry submit --dry-run`.
/// What `gantry offers` asks about.
pub struct Question {
    pub gpu: String,
    pub count: u32,
    pub memory_mib: u64,
    pub catalog: bool,
}

pub fn ask(client: &Client, q: &Question) -> anyhow::Result<serde_json::Value> {
    client.get(&format!("/api/v1/offers?gpu={}&count={}&memory_mib={}&catalog={}", super::units::url_encode(&q.gpu), q.count, q.memory_mib, q.catalog))
}

pub fn offers(client: &Client, q: &Question, save: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let answer = ask(client, q)?;
    if let Some(path) = save {
        let rows = save_catalog(&answer, path)?;
        eprintln!("wrote {rows} live offer(s) to {} as price catalog rows", path.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print(&answer, None);
    }
    Ok(ExitCode::SUCCESS)
}

/// The answer's live offers as catalog rows, per GPU, dated today; written whole, with the
/// caller's rights.
fn save_catalog(answer: &serde_json::Value, path: &Path) -> anyhow::Result<usize> {
    let today = gantry::model::iso_time(gantry::model::now_ms()).chars().take(10).collect::<String>();
    let rows: Vec<CatalogPrice> = answer["offers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["as_of"].is_null())
        .filter_map(|o| {
            let count = o["count"].as_u64().filter(|&c| c > 0)?;
            let text = |f: &str| o[f].as_str().unwrap_or_default().to_string();
            Some(CatalogPrice {
                plugin: text("plugin"),
                gpu_type: text("gpu_type"),
                memory_gib: u32::try_from(o["memory_gib"].as_u64()?).ok()?,
                region: text("region"),
                on_demand: o["price_per_hour"].as_f64()? / count as f64,
                spot: None,
                currency: text("currency"),
                vcpus: None,
                ram_gib: None,
                as_of: today.clone(),
                source: format!("the offers of [providers.{}], asked by gantry offers", text("provider")),
            })
        })
        .collect();
    let n = rows.len();
    std::fs::write(path, Catalog::to_toml(rows)).with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

/// How long the job would wait here, then every offer cheapest first; with `hours`, what each
/// would cost for that long.
pub fn print(answer: &serde_json::Value, hours: Option<f64>) {
    let here = &answer["here"];
    let now = gantry::model::now_ms();
    let ahead = here["ahead"].as_u64().unwrap_or(0);
    let guessed = match here["from_history"].as_u64().unwrap_or(0) {
        0 => String::new(),
        n => format!(", {n} of them by the typical run time of their command here"),
    };
    let wait = match (here["never"].as_str(), here["start_ms"].as_u64()) {
        (Some(never), _) => format!("never: {never}"),
        (None, Some(at)) if at <= now => format!("free now ({ahead} job(s) waiting ahead)"),
        (None, Some(at)) => format!("in about {}, after the jobs running here and {ahead} waiting ahead, by their time limits{guessed}", super::units::duration_text(at - now)),
        (None, None) => format!("unknown: a job on the GPUs it needs has no time limit and no run time here to go by ({ahead} job(s) waiting ahead)"),
    };
    println!("here: {wait}");
    let offers = answer["offers"].as_array().cloned().unwrap_or_default();
    if offers.is_empty() {
        println!("no offers: no provider answered with prices (set options.price_per_gpu_hour on a cluster, or configure a cloud)");
    } else {
        let cost = if hours.is_some() { "FOR --time " } else { "" };
        println!("{:<14} {:<26} {:>5} {:>7} {:<10} {:>14} {:<9} {cost}SOURCE", "PROVIDER", "GPU", "COUNT", "MEM GiB", "REGION", "PRICE/HOUR", "AVAILABLE");
        for o in &offers {
            let text = |f: &str| o[f].as_str().filter(|t| !t.is_empty()).unwrap_or("-").to_string();
            let price = o["price_per_hour"].as_f64().unwrap_or(0.0);
            let currency = text("currency");
            let total = hours.map(|h| format!("{:<11} ", format!("{:.2} {currency}", price * h))).unwrap_or_default();
            // A catalog row can't tell whether the GPU is free now.
            let available = match (o["as_of"].is_string(), o["available"].as_bool()) {
                (true, _) => "?",
                (false, Some(true)) => "yes",
                (false, _) => "no",
            };
            let source = match o["as_of"].as_str() {
                Some(day) => format!("catalog {day}"),
                None => "live".to_string(),
            };
            // A cloud no instance here is configured for: its plugin, short.
            let provider = if o["provider"] == "" { format!("({})", text("plugin").trim_start_matches("provider-")) } else { text("provider") };
            println!("{:<14} {:<26} {:>5} {:>7} {:<10} {:>14} {:<9} {total}{source}", provider, text("gpu_type"), o["count"].to_string(), o["memory_gib"].to_string(), text("region"), format!("{price:.2} {currency}"), available);
        }
    }
    for u in answer["unanswered"].as_array().into_iter().flatten() {
        println!("{}: no offers: {}", u["provider"].as_str().unwrap_or("-"), u["reason"].as_str().unwrap_or("-"));
    }
}
