//! Golden samples: the files that pin each partner's wire format in both directions.
//!
//! For partner `P` and message type `T`, in `mappings/P/samples/`:
//! - `T.<ext>`: a message as the partner sends it to us; `T.canonical.json` is what it decodes to;
//! - `T.sent.<ext>`: what we send the partner for `mappings/canonical/T.json`.
//!
//! Run the contract tests with `BLESS=1` to (re)write the expected files after a deliberate change;
//! review the diff like code.

use std::path::{Path, PathBuf};

use hotline_adapters::mapping::{Format, Mapping};

/// The repository's `mappings/` folder.
pub fn mappings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings")
}

/// Every partner folder with a mapping.
pub fn partner_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(mappings_dir())
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("mapping.toml").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

pub fn extension(m: &Mapping) -> &'static str {
    match m.format {
        Format::Json => "json",
        Format::Xml => "xml",
    }
}

/// Compares `actual` with the file at `path`, or writes it when `BLESS` is set.
pub fn check(path: &Path, actual: &[u8]) -> Result<(), String> {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    let expected = std::fs::read(path).map_err(|e| {
        format!(
            "{}: {e} (run the contract tests with BLESS=1 to create it)",
            path.display()
        )
    })?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs from what the gateway produces now:\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        ))
    }
}

/// The sample names of a message type: `T`, and `T.<variant>` for every
/// `mappings/canonical/T.<variant>.json` (e.g. `transfer_answer.refused`).
pub fn sample_names(message_type: &str) -> Vec<String> {
    let mut names = vec![message_type.to_owned()];
    let prefix = format!("{message_type}.");
    let mut variants: Vec<String> = std::fs::read_dir(mappings_dir().join("canonical"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter_map(|f| {
                    let stem = f.strip_suffix(".json")?;
                    let variant = stem.strip_prefix(&prefix)?;
                    (!variant.is_empty()).then(|| stem.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    variants.sort();
    names.extend(variants);
    names
}
