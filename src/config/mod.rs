//! Configuration (docs/design.md, "Configuration"): nested settings with built-in defaults, overlaid by
//! the TOML file, then `RETENTIOND__SECTION__KEY` environment variables, then
//! command-line flags. Unknown keys and bad values are errors naming the key.
//!
//! - `settings`: the sections, their keys and defaults;
//! - `layers`: how the file, the environment and the flags are read and merged;
//! - `values`: how a value is parsed and printed (durations, integers, booleans);
//! - `validate`: the rules beyond a value's type;
//! - `files`: the files the settings name, checked for `check-config`;
//! - `secrets`: passwords, and keeping them out of everything shown.

mod files;
mod layers;
mod secrets;
mod settings;
mod validate;
mod values;

use std::path::PathBuf;

pub use files::check_files;
pub use layers::CONFIG_FILE_ENV;
pub use secrets::{DatabaseUrl, redact_url};
pub use settings::{
    DatabaseSettings, LogFormat, LogSettings, MetricsSettings, RetentionSettings, ScheduleSettings, Settings,
    ShutdownSettings, SslMode, TlsFile, UiSettings,
};
pub use values::{format_duration, format_policy_retention, format_retentions};

/// Command-line flags that override the loaded settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Loads the settings: defaults, then `file` (or `RETENTIOND_CONFIG`), then
/// the environment, then `overrides`; validates the result.
pub fn load(file: Option<PathBuf>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    layers::load_from(file, layers::process_env()?, overrides)
}

impl Settings {
    /// The effective configuration as TOML, with the password redacted. It
    /// loads back as a configuration file giving the same settings (bar the
    /// redacted password).
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.retention.by_type = self.retention.effective_by_type();
        toml::to_string(&shown).expect("settings always serialize to TOML")
    }
}

#[cfg(test)]
mod tests;
