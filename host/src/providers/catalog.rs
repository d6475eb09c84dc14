//! The price catalog: what GPUs cost at the clouds gantry has adapters for, offline. Shipped as
//! `config/prices.toml`, with the day each figure was read and where; a file of the owner's
//! (`[prices] file`) replaces rows or adds to them. `gantry offers` shows its rows for a provider
//! whose offers call gives no prices, and all of them with `--catalog`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

const SHIPPED: &str = include_str!("../../../config/prices.toml");

/// The shipped rows, parsed once: every `offers` question starts from them.
static SHIPPED_ROWS: LazyLock<Result<Vec<CatalogPrice>, String>> =
    LazyLock::new(|| parse(Path::new("config/prices.toml (shipped)"), SHIPPED).map(|file| file.price).map_err(|e| e.to_string()));

/// Larger files are refused: a catalog is a few hundred rows.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// One GPU type's price at one provider, per GPU and hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogPrice {
    /// The provider plugin the figures are for (`provider-runpod`), whatever its instances are
    /// called.
    pub plugin: String,
    /// As the provider names it.
    pub gpu_type: String,
    pub memory_gib: u32,
    /// `""` where the price holds everywhere.
    #[serde(default)]
    pub region: String,
    pub on_demand: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<f64>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_gib: Option<u32>,
    /// The day the figures were read, `YYYY-MM-DD`.
    pub as_of: String,
    pub source: String,
}

impl CatalogPrice {
    fn same_row(&self, other: &CatalogPrice) -> bool {
        self.plugin == other.plugin && self.gpu_type == other.gpu_type && self.region == other.region
    }

    /// A job's GPUs fit this row: enough memory each, and the type it names (part of the
    /// provider's name for it, any case), if it names one.
    pub fn offers(&self, gpu_type: &str, memory_gib: u32) -> bool {
        self.memory_gib >= memory_gib && (gpu_type.is_empty() || self.gpu_type.to_ascii_lowercase().contains(&gpu_type.to_ascii_lowercase()))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    price: Vec<CatalogPrice>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("reading the price catalog {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the price catalog {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    pub prices: Vec<CatalogPrice>,
}

impl Catalog {
    /// The shipped rows, then the owner's file's: a row of the file replaces the shipped row of
    /// the same plugin, GPU type and region. Blocking: reads the file.
    pub fn load(file: Option<&Path>) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog { prices: SHIPPED_ROWS.clone().map_err(CatalogError::Invalid)? };
        if let Some(path) = file {
            let size = std::fs::metadata(path).map_err(|source| CatalogError::Read { path: path.into(), source })?.len();
            if size > MAX_FILE_BYTES {
                return Err(CatalogError::TooLarge { path: path.into() });
            }
            let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read { path: path.into(), source })?;
            for row in parse(path, &text)?.price {
                catalog.prices.retain(|p| !p.same_row(&row));
                catalog.prices.push(row);
            }
        }
        Ok(catalog)
    }

    /// `rows` as a catalog file (`gantry offers --save-catalog`).
    pub fn to_toml(rows: Vec<CatalogPrice>) -> String {
        toml::to_string(&CatalogFile { price: rows }).unwrap_or_default()
    }
}

/// Errors name the file, the line and the column, and the field at fault.
fn parse(path: &Path, text: &str) -> Result<CatalogFile, CatalogError> {
    let at = |span: Option<std::ops::Range<usize>>| {
        let offset = span.map_or(0, |s| s.start).min(text.len());
        let line = text[..offset].matches('\n').count() + 1;
        let column = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{column}", path.display())
    };
    let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Invalid(format!("{}: {}", at(e.span()), e.message())))?;
    for (i, row) in file.price.iter().enumerate() {
        let bad = |field: &str, why: &str| CatalogError::Invalid(format!("{}: price {} ({}): {field} {why}", path.display(), i + 1, row.gpu_type));
        if row.plugin.is_empty() || row.gpu_type.is_empty() {
            return Err(bad("plugin and gpu_type", "must be given"));
        }
        if !(row.on_demand.is_finite() && row.on_demand >= 0.0) || row.spot.is_some_and(|s| !(s.is_finite() && s >= 0.0)) {
            return Err(bad("on_demand and spot", "must be prices of 0 or more"));
        }
        if row.currency.len() != 3 || !row.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad("currency", "must be a code like USD"));
        }
        if !is_date(&row.as_of) {
            return Err(bad("as_of", "must be the day the figures were read, YYYY-MM-DD"));
        }
    }
    Ok(file)
}

fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_parses_and_every_row_says_when_and_where() {
        let catalog = Catalog::load(None).expect("shipped catalog");
        assert!(catalog.prices.len() >= 10, "{catalog:?}");
        assert!(catalog.prices.iter().all(|p| p.plugin == "provider-runpod" && p.source.contains("runpod.io/pricing") && p.as_of == "2026-11-09"));
        let a100: Vec<_> = catalog.prices.iter().filter(|p| p.offers("a100", 40)).collect();
        assert_eq!(a100.len(), 4, "PCIe and SXM, in two clouds: {a100:?}");
        assert!(catalog.prices.iter().all(|p| !p.offers("", 100)), "no GPU here has 100 GiB");
    }

    #[test]
    fn an_owners_row_replaces_the_shipped_one_and_a_bad_one_is_named_by_file_line_and_field() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("prices.toml");
        let mine = CatalogPrice {
            plugin: "provider-runpod".into(),
            gpu_type: "NVIDIA A100 80GB PCIe".into(),
            memory_gib: 80,
            region: "COMMUNITY".into(),
            on_demand: 0.99,
            spot: Some(0.6),
            currency: "USD".into(),
            vcpus: None,
            ram_gib: None,
            as_of: "2026-12-04".into(),
            source: "our contract".into(),
        };
        let lab = CatalogPrice { plugin: "provider-k8s".into(), gpu_type: "A100".into(), region: String::new(), ..mine.clone() };
        std::fs::write(&path, Catalog::to_toml(vec![mine.clone(), lab.clone()])).expect("write");
        let catalog = Catalog::load(Some(&path)).expect("loads");
        let shipped = Catalog::load(None).expect("shipped");
        assert_eq!(catalog.prices.len(), shipped.prices.len() + 1);
        assert_eq!(catalog.prices.iter().filter(|p| p.same_row(&mine)).collect::<Vec<_>>(), vec![&mine]);
        assert!(catalog.prices.contains(&lab));

        std::fs::write(&path, "[[price]]\nplugin = \"p\"\ngpu_type = \"A100\"\nmemory_gib = \"eighty\"\n").expect("write");
        let err = Catalog::load(Some(&path)).expect_err("refused").to_string();
        assert!(err.starts_with(&format!("{}:4:14:", path.display())), "{err}");
        std::fs::write(&path, Catalog::to_toml(vec![CatalogPrice { as_of: "last week".into(), ..mine }])).expect("write");
        let err = Catalog::load(Some(&path)).expect_err("refused").to_string();
        assert!(err.contains("price 1 (NVIDIA A100 80GB PCIe): as_of must be"), "{err}");
    }
}
