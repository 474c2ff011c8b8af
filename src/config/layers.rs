//! How the layers of the configuration are read and merged (docs/design.md, "Configuration"):
//! built-in defaults, then the TOML file (`--config`, else
//! `RETENTIOND_CONFIG`), then `RETENTIOND__SECTION__KEY` environment
//! variables, then command-line flags. Knows where each value came from, so
//! that an error names the key and its source, and refuses unknown keys.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::{ConfigError, Overrides, Settings};

/// The environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_FILE_ENV: &str = "RETENTIOND_CONFIG";

/// Environment variables `RETENTIOND__SECTION__KEY` override file settings.
const ENV_PREFIX: &str = "RETENTIOND";
const ENV_SEPARATOR: &str = "__";

/// The process environment as strings. A `RETENTIOND…` variable that is not
/// valid UTF-8 is an error; unrelated ones are skipped.
pub(super) fn process_env() -> Result<HashMap<String, String>, ConfigError> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(name, value);
            }
            Err(_) if name.to_ascii_uppercase().starts_with(ENV_PREFIX) => {
                return Err(ConfigError(format!("environment variable {name} is not valid UTF-8")));
            }
            Err(_) => {}
        }
    }
    Ok(env)
}

/// `load` with the environment given explicitly.
pub(super) fn load_from(
    file: Option<PathBuf>,
    env: HashMap<String, String>,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let file = file.or_else(|| env.get(CONFIG_FILE_ENV).filter(|path| !path.is_empty()).map(PathBuf::from));

    let mut builder = ::config::Config::builder();
    if let Some(path) = &file {
        let text = read_file(path)?;
        builder = builder.add_source(::config::File::from_str(&text, ::config::FileFormat::Toml));
    }
    let sources = Sources { file: file.as_deref(), env_names: env_names(&env), overrides, table: Default::default() };
    builder = builder.add_source(
        ::config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(env.into_iter().collect())),
    );
    let merged = builder.build().map_err(|err| match err {
        // Only the file can fail to parse here, and it has been parsed once already.
        ::config::ConfigError::FileParse { cause, .. } => ConfigError(format!(
            "cannot parse {}: {}",
            sources.file_name(),
            cause.to_string().lines().next().unwrap_or_default()
        )),
        other => ConfigError(other.to_string()),
    })?;

    let table = ::config::Source::collect(&merged).map_err(|err| ConfigError(err.to_string()))?;
    let sources = Sources { table, ..sources };
    sources.check_unknown_keys()?;

    let mut settings: Settings = merged.try_deserialize().map_err(|err| sources.deserialize_error(err))?;
    if let Some(format) = overrides.log_format {
        settings.log.format = format;
    }
    if let Some(level) = &overrides.log_level {
        settings.log.level = level.clone();
    }
    settings.validate(&sources)?;
    Ok(settings)
}

/// Reads the configuration file and checks that it is TOML. The parser's
/// message is given without its excerpt of the file, which could show a
/// password.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError(format!("cannot read configuration file {}: {err}", path.display())))?;
    if let Err(err) = text.parse::<toml::Table>() {
        let at = match err.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
                format!(" at line {line}, column {column}")
            }
            None => String::new(),
        };
        return Err(ConfigError(format!("cannot parse {} as TOML{at}: {}", path.display(), err.message().trim_end())));
    }
    Ok(text)
}

/// Maps each configuration key set in the environment to the variable's name.
fn env_names(env: &HashMap<String, String>) -> HashMap<String, String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
    env.keys()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let key = lower.strip_prefix(&prefix)?.replace(ENV_SEPARATOR, ".");
            Some((key, name.clone()))
        })
        .collect()
}

/// Where each setting came from, to say so in errors.
pub(super) struct Sources<'a> {
    file: Option<&'a Path>,
    env_names: HashMap<String, String>,
    overrides: &'a Overrides,
    /// File and environment merged, as the `config` crate holds them.
    table: ::config::Map<String, ::config::Value>,
}

impl Sources<'_> {
    fn file_name(&self) -> String {
        self.file.map(|path| path.display().to_string()).unwrap_or_else(|| "the configuration file".into())
    }

    /// ` (set in FILE)`, ` (set by environment variable NAME)`, ` (set by
    /// --flag)` or ` (KEY is at its default)` for the value of `key` (dotted).
    pub(super) fn suffix(&self, key: &str) -> String {
        let flag = match key {
            "log.format" if self.overrides.log_format.is_some() => Some("--log-format"),
            "log.level" if self.overrides.log_level.is_some() => Some("--log-level"),
            _ => None,
        };
        if let Some(flag) = flag {
            return format!(" (set by {flag})");
        }
        let mut parts = key.split('.');
        let mut value = parts.next().and_then(|first| self.table.get(first));
        for part in parts {
            value = match value.map(|v| &v.kind) {
                Some(::config::ValueKind::Table(table)) => table.get(part),
                _ => None,
            };
        }
        match value {
            Some(value) => self.origin_suffix(key, leaf_origin(value)),
            None => format!(" ({key} is at its default)"),
        }
    }

    /// The config crate marks values from the environment with the origin
    /// "the environment"; values from the file (read from a string) have none.
    fn origin_suffix(&self, key: &str, origin: Option<&str>) -> String {
        match origin {
            Some(_) => {
                let name = self.env_names.get(key).cloned().unwrap_or_else(|| {
                    format!("{ENV_PREFIX}{ENV_SEPARATOR}{}", key.replace('.', ENV_SEPARATOR).to_uppercase())
                });
                format!(" (set by environment variable {name})")
            }
            None => format!(" (set in {})", self.file_name()),
        }
    }

    /// Every key set in the file or the environment must be one that exists.
    fn check_unknown_keys(&self) -> Result<(), ConfigError> {
        let known = known_keys();
        let tree = known_tree();
        let sections = known.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut problems = Vec::new();
        for (section, value) in &self.table {
            let Some(keys) = known.get(section) else {
                let what = if matches!(value.kind, ::config::ValueKind::Table(_)) { "section" } else { "key" };
                problems.push(format!(
                    "unknown {what} `{section}`{}; the sections are {sections}",
                    self.origin_suffix(&first_leaf_key(section, value), leaf_origin(value))
                ));
                continue;
            };
            // Not shown: it could be a URL with a password (`RETENTIOND__DATABASE=…`).
            let ::config::ValueKind::Table(entries) = &value.kind else {
                problems.push(format!(
                    "`{section}` must be a section of keys, not a single value{}",
                    self.origin_suffix(section, leaf_origin(value))
                ));
                continue;
            };
            for (key, value) in entries {
                let dotted = format!("{section}.{key}");
                if !keys.contains(key) {
                    problems.push(format!(
                        "unknown key `{dotted}`{}; the keys of [{section}] are {}",
                        self.origin_suffix(&first_leaf_key(&dotted, value), leaf_origin(value)),
                        keys.join(", ")
                    ));
                } else if let Some(known) = tree.get(section).and_then(|keys| keys.get(key)) {
                    self.check_nested_keys(&dotted, value, known, &mut problems);
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        problems.sort();
        Err(ConfigError(problems.join("; ")))
    }

    /// The keys inside a table of tables (`retention.by_type`), level by
    /// level, against those of `known`: an unknown one is named in full.
    fn check_nested_keys(
        &self,
        dotted: &str,
        value: &::config::Value,
        known: &toml::Value,
        problems: &mut Vec<String>,
    ) {
        let (::config::ValueKind::Table(entries), toml::Value::Table(known)) = (&value.kind, known) else { return };
        for (key, value) in entries {
            let inner = format!("{dotted}.{key}");
            match known.get(key) {
                Some(known) => self.check_nested_keys(&inner, value, known, problems),
                None => problems.push(format!(
                    "unknown key `{inner}`{}; the keys of [{dotted}] are {}",
                    self.origin_suffix(&first_leaf_key(&inner, value), leaf_origin(value)),
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            }
        }
    }

    /// Rewrites a deserialization error as "KEY: what is wrong (set in …)".
    fn deserialize_error(&self, err: ::config::ConfigError) -> ConfigError {
        let (key, message) = match err {
            ::config::ConfigError::Type { unexpected, expected, key, .. } => {
                // Never show what was given for the URL, or for the whole
                // section (say `RETENTIOND__DATABASE=postgres://…`).
                let found = if matches!(key.as_deref(), Some("database" | "database.url")) {
                    String::new()
                } else {
                    format!(", found {unexpected}")
                };
                (key, format!("invalid value: expected {expected}{found}"))
            }
            // Never shown: it may hold a password.
            ::config::ConfigError::At { key, .. } if key.as_deref() == Some("database.url") => {
                (key, "invalid value: expected a string".into())
            }
            ::config::ConfigError::At { error, key, .. } => (key, error.to_string()),
            ::config::ConfigError::NotFound(key) => (Some(key), "missing".into()),
            other => (None, other.to_string()),
        };
        match key {
            Some(key) => ConfigError(format!("{key}: {message}{}", self.suffix(&key))),
            None => ConfigError(message),
        }
    }
}

/// Every setting, nested tables included, as `check-config` shows the defaults.
fn known_tree() -> toml::Table {
    Settings::default().to_redacted_toml().parse().expect("settings serialize as a table")
}

/// The sections and their keys, as the settings serialize.
pub(super) fn known_keys() -> BTreeMap<String, Vec<String>> {
    known_tree()
        .into_iter()
        .map(|(section, keys)| {
            let keys = match keys {
                toml::Value::Table(keys) => keys.into_iter().map(|(key, _)| key).collect(),
                _ => Vec::new(),
            };
            (section, keys)
        })
        .collect()
}

/// The origin of a value; for a table, that of a value inside it (tables
/// built from environment keys carry no origin themselves).
fn leaf_origin(value: &::config::Value) -> Option<&str> {
    match &value.kind {
        ::config::ValueKind::Table(table) => {
            let mut keys: Vec<_> = table.keys().collect();
            keys.sort();
            keys.first().and_then(|key| leaf_origin(&table[*key]))
        }
        _ => value.origin(),
    }
}

/// The dotted key of the leaf `leaf_origin` looks at.
fn first_leaf_key(key: &str, value: &::config::Value) -> String {
    match &value.kind {
        ::config::ValueKind::Table(table) => {
            let mut keys: Vec<_> = table.keys().collect();
            keys.sort();
            match keys.first() {
                Some(first) => first_leaf_key(&format!("{key}.{first}"), &table[*first]),
                None => key.to_owned(),
            }
        }
        _ => key.to_owned(),
    }
}
