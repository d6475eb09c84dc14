//! "Wait here or pay there": what a job of some GPUs would wait on this node, beside what each
//! configured provider would charge for it now (its `offers`, asked live: RunPod's catalog, a
//! cluster's site rate), cheapest first. `gantry offers`, `gantry submit --dry-run` and the
//! dashboard show it.

use super::Service;
use crate::model::{FieldError, WaitHere};
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
    /// The provider instance (`[providers.NAME]`).
    pub provider: String,
    pub gpu_type: String,
    pub count: u32,
    pub memory_gib: u32,
    pub region: String,
    /// For all `count` GPUs.
    pub price_per_hour: f64,
    pub currency: String,
    /// Free to rent now, as the provider says.
    pub available: bool,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Unanswered {
    pub provider: String,
    pub reason: String,
}

impl Service {
    /// Asks every provider at once; each answer is bounded by its plugin's deadline.
    pub async fn offers(&self, gpu_type: String, count: u32, memory_mib: u64) -> Result<Offers, super::ServiceError> {
        if !(1..=MAX_GPUS).contains(&count) {
            return Err(FieldError::new("count", format!("{count}: ask for 1 to {MAX_GPUS} GPUs")).into());
        }
        if gpu_type.len() > 128 {
            return Err(FieldError::new("gpu", "at most 128 characters").into());
        }
        let here = self.scheduler.wait_here(count, memory_mib).await?;
        let spec = GpuSpec { gpu_type, count, memory_gib: u32::try_from(memory_mib.div_ceil(1024)).unwrap_or(u32::MAX) };
        let names = self.providers.names();
        let asks = names.iter().map(|name| self.providers.call(name, ProviderCall::Offers(spec.clone())));
        let answers = futures_util::future::join_all(asks).await;
        let (mut offers, mut unanswered) = (Vec::new(), Vec::new());
        for (provider, answer) in names.into_iter().zip(answers) {
            match answer {
                Ok(ProviderReply::Offers(Ok(list))) => offers.extend(list.into_iter().filter(|o| o.price_per_hour.is_finite() && o.price_per_hour >= 0.0).take(OFFERS_PER_PROVIDER).map(|o| OfferRow {
                    provider: provider.clone(),
                    gpu_type: o.gpu.gpu_type,
                    count: o.gpu.count,
                    memory_gib: o.gpu.memory_gib,
                    region: o.region,
                    price_per_hour: o.price_per_hour,
                    currency: o.currency,
                    available: o.available,
                })),
                Ok(ProviderReply::Offers(Err(e))) => unanswered.push(Unanswered { provider, reason: describe(&e) }),
                Ok(_) => unanswered.push(Unanswered { provider, reason: "answered offers with something else".into() }),
                Err(e) => unanswered.push(Unanswered { provider, reason: e.to_string() }),
            }
        }
        offers.sort_by(|a, b| a.currency.cmp(&b.currency).then(a.price_per_hour.total_cmp(&b.price_per_hour)));
        Ok(Offers { here, offers, unanswered })
    }
}
