//! Command-file parsers: the text users edit, as the jobs it describes.
//!
//! A parser turns a file into queues of jobs (`parse`) and writes jobs back as text (`render`),
//! so that `parse(render(f)) == f` for every file it parsed: the dashboard's command-file editor
//! writes only what parses back. `gantry plugin new parser NAME` starts from an example;
//! [`check`] runs one natively as the host would.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "parser-plugin",
        pub_export_macro: true,
        export_macro_name: "export_parser_bindings",
        default_bindings_module: "gantry_plugin::parser::bindings",
        additional_derives: [PartialEq],
    });
}

#[doc(hidden)]
pub use bindings::exports::gantry::plugin::meta::{Guest as MetaGuest, PluginInfo, PluginKind};
#[doc(hidden)]
pub use bindings::exports::gantry::plugin::parser::Guest as ParserGuest;
pub use bindings::exports::gantry::plugin::parser::{Diagnostic, JobFile, JobSpec, Mode};

/// A command-file format.
pub trait Parser {
    /// `mode` is what the caller asks for (`--mode`), overriding what the file name implies.
    fn parse(file_name: &str, mode: Option<Mode>, text: &str) -> Result<JobFile, Vec<Diagnostic>>;
    /// `file` in this format: text that parses back to `file`.
    fn render(file: &JobFile) -> String;
}

/// A problem at line `line`, column `column` (both from 1), as the host shows it:
/// `file:line:column: message`.
pub fn diagnostic(line: usize, column: usize, message: impl Into<String>) -> Diagnostic {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Diagnostic { line: n(line), column: n(column), message: message.into() }
}

/// Parses `text` as the host would, and checks that what the parser renders of the result parses
/// back to it: the jobs, or the diagnostics, or why rendering does not round-trip.
fn unlined(file: &JobFile) -> Vec<JobSpec> {
    file.jobs.iter().map(|j| JobSpec { line: 0, ..j.clone() }).collect()
}

pub fn check<P: Parser>(file_name: &str, mode: Option<Mode>, text: &str) -> Result<JobFile, String> {
    let file = P::parse(file_name, mode, text).map_err(|all| all.iter().map(|d| format!("{file_name}:{}:{}: {}", d.line, d.column, d.message)).collect::<Vec<_>>().join("\n"))?;
    let rendered = P::render(&file);
    match P::parse(file_name, Some(file.mode), &rendered) {
        // A rendering need not keep where each block started.
        Ok(again) if unlined(&again) == unlined(&file) => Ok(file),
        Ok(again) => Err(format!("render does not round-trip: {rendered:?} parses as {again:?}, not {file:?}")),
        Err(d) => Err(format!("render does not round-trip: {rendered:?} does not parse: {d:?}")),
    }
}

/// Exports `$parser` (a type implementing [`Parser`]) as the component's parser. The plugin's
/// name is the crate's package name, or `$name`; its version is the crate's.
#[macro_export]
macro_rules! export_parser {
    ($parser:ty) => {
        $crate::export_parser!($parser, env!("CARGO_PKG_NAME"));
    };
    ($parser:ty, $name:expr) => {
        #[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
        struct GantryParserExports;

        impl $crate::parser::MetaGuest for GantryParserExports {
            fn info() -> $crate::parser::PluginInfo {
                $crate::parser::PluginInfo {
                    name: $name.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    kind: $crate::parser::PluginKind::Parser,
                    wit_version: $crate::wit_version(),
                }
            }
        }

        impl $crate::parser::ParserGuest for GantryParserExports {
            fn parse(file_name: String, mode: Option<$crate::parser::Mode>, text: String) -> Result<$crate::parser::JobFile, Vec<$crate::parser::Diagnostic>> {
                <$parser as $crate::parser::Parser>::parse(&file_name, mode, &text)
            }

            fn render(file: $crate::parser::JobFile) -> String {
                <$parser as $crate::parser::Parser>::render(&file)
            }
        }

        #[cfg(target_family = "wasm")]
        $crate::parser::bindings::export_parser_bindings!(GantryParserExports with_types_in $crate::parser::bindings);
        #[cfg(not(target_family = "wasm"))]
        const _: fn(&str, Option<$crate::parser::Mode>, &str) -> Result<$crate::parser::JobFile, Vec<$crate::parser::Diagnostic>> = <$parser as $crate::parser::Parser>::parse;
    };
}
