//! "Wait here or pay there": what a job of some GPUs would wait on this node, beside what each
//! configured provider would charge for it now (its `offers`, asked live: RunPod's catalog, a
//! cluster's site rate), cheapest first. Where a provider's answer has no prices, the offline
//! price catalog's rows for its plugin stand in, saying so; asked with `catalog`, every row of
//! the catalog that fits is shown, also for clouds not configured here. `gantry offers`,
//! `gantry submit --dry-run` and the dashboard show it.

use super::Service;
use crate::model::{FieldError, WaitHere};
use crate::providers::catalog::{Catalog, CatalogPrice};
use crate::plugin::{describe, GpuSpec, ProviderCall, ProviderReply};
use schemars::JsonSchema;
use serde::Serialize;

/// Most GPUs one question asks for.
const MAX_GPUS: u32 = 64;

/// Most offers kept from one provider: a catalog may list every GPU type it has.
const OFFERS_PER_PROVIDER: usize = 50;

/// What a job would get here and elsewhere.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Offers {
    pub here: WaitHere,
    /// Every configured provider's offers, cheapest first (within a currency; prices in
    /// different currencies are not converted).
    pub offers: Vec<OfferRow>,
    /// Providers that could not be asked, with why.
    pub unanswered: Vec<Unanswered>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct OfferRow {
    /// The provider instance (`[providers.NAME]`); empty for a catalog row of a plugin no
    /// instance here uses.
    pub provider: String,
    /// The provider plugin.
    pub plugin: String,
    pub gpu_type: String,
    pub count: u32,
    pub memory_gib: u32,
    pub region: String,
    /// For all `count` GPUs.
    pub price_per_hour: f64,
    pub currency: String,
    /// Free to rent now, as the provider says; false for a catalog row, which can't tell.
    pub available: bool,
    /// `live`, or where a catalog row's figures come from and the day they were read.
    pub source: String,
    /// A catalog row's day, `YYYY-MM-DD`; `None` for a live offer.
    pub as_of: Option<String>,
}

impl OfferRow {
    fn from_catalog(provider: String, row: &CatalogPrice, count: u32) -> OfferRow {
        OfferRow {
            provider,
            plugin: row.plugin.clone(),
            gpu_type: row.gpu_type.clone(),
            count,
            memory_gib: row.memory_gib,
            region: row.region.clone(),
            price_per_hour: row.on_demand * f64::from(count),
            currency: row.currency.clone(),
            available: false,
            source: format!("catalog, as of {}: {}", row.as_of, row.source),
            as_of: Some(row.as_of.clone()),
        }
    }
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Unanswered {
    pub provider: String,
    pub reason: String,
}

impl Service {
    /// Asks every provider at once; each answer is bounded by its plugin's deadline. With
    /// `catalog`, every fitting row of the price catalog is shown too.
    pub async fn offers(&self, gpu_type: String, count: u32, memory_mib: u64, catalog: bool) -> Result<Offers, super::ServiceError> {
        if !(1..=MAX_GPUS).contains(&count) {
            return Err(FieldError::new("count", format!("{count}: ask for 1 to {MAX_GPUS} GPUs")).into());
        }
        if gpu_type.len() > 128 {
            return Err(FieldError::new("gpu", "at most 128 characters").into());
        }
        let here = self.scheduler.wait_here(count, memory_mib).await?;
        let spec = GpuSpec { gpu_type, count, memory_gib: u32::try_from(memory_mib.div_ceil(1024)).unwrap_or(u32::MAX) };
        let (file, plugins) = {
            let config = self.config.read();
            (config.prices_file.clone(), config.providers.iter().map(|p| (p.name.clone(), p.plugin.clone())).collect::<std::collections::BTreeMap<_, _>>())
        };
        let loaded = tokio::task::spawn_blocking(move || Catalog::load(file.as_deref())).await.map_err(|e| super::ServiceError::Internal(e.to_string()))?;
        // Without the owner's file, the shipped rows still stand in.
        let (prices, unreadable) = match loaded {
            Ok(prices) => (prices, None),
            Err(e) => (Catalog::load(None).unwrap_or_default(), Some(e)),
        };
        let names = self.providers.names();
        let asks = names.iter().map(|name| self.providers.call(name, ProviderCall::Offers(spec.clone())));
        let answers = futures_util::future::join_all(asks).await;
        let (mut offers, mut unanswered) = (Vec::new(), Vec::new());
        let fitting = |plugin: &str| -> Vec<CatalogPrice> {
            prices.prices.iter().filter(|p| p.plugin == plugin && p.offers(&spec.gpu_type, spec.memory_gib)).cloned().collect()
        };
        for (provider, answer) in names.into_iter().zip(answers) {
            let plugin = plugins.get(&provider).cloned().unwrap_or_default();
            let live: Vec<OfferRow> = match answer {
                Ok(ProviderReply::Offers(Ok(list))) => list
                    .into_iter()
                    .filter(|o| o.price_per_hour.is_finite() && o.price_per_hour >= 0.0)
                    .take(OFFERS_PER_PROVIDER)
                    .map(|o| OfferRow {
                        provider: provider.clone(),
                        plugin: plugin.clone(),
                        gpu_type: o.gpu.gpu_type,
                        count: o.gpu.count,
                        memory_gib: o.gpu.memory_gib,
                        region: o.region,
                        price_per_hour: o.price_per_hour,
                        currency: o.currency,
                        available: o.available,
                        source: "live".into(),
                        as_of: None,
                    })
                    .collect(),
                Ok(ProviderReply::Offers(Err(e))) => {
                    unanswered.push(Unanswered { provider: provider.clone(), reason: describe(&e) });
                    Vec::new()
                }
                Ok(_) => {
                    unanswered.push(Unanswered { provider: provider.clone(), reason: "answered offers with something else".into() });
                    Vec::new()
                }
                Err(e) => {
                    unanswered.push(Unanswered { provider: provider.clone(), reason: e.to_string() });
                    Vec::new()
                }
            };
            if live.is_empty() || catalog {
                offers.extend(fitting(&plugin).iter().map(|row| OfferRow::from_catalog(provider.clone(), row, count)));
            }
            offers.extend(live);
        }
        if catalog {
            let used: std::collections::BTreeSet<&String> = plugins.values().collect();
            let others = prices.prices.iter().filter(|p| !used.contains(&p.plugin) && p.offers(&spec.gpu_type, spec.memory_gib));
            offers.extend(others.map(|row| OfferRow::from_catalog(String::new(), row, count)));
        }
        if let Some(e) = unreadable {
            // The file's path and contents are the owner's business, not every reader's.
            tracing::warn!(error = %e, "the price catalog's [prices] file is unreadable; offers are shown with the shipped rows only");
            unanswered.push(Unanswered { provider: "price catalog".into(), reason: "the owner's [prices] file could not be read; the daemon's log says why".into() });
        }
        offers.sort_by(|a, b| a.currency.cmp(&b.currency).then(a.price_per_hour.total_cmp(&b.price_per_hour)));
        Ok(Offers { here, offers, unanswered })
    }
}
