//! `sheaf.toml`: one TOML file with a table per component (`[cluster]`, `[namenode]`, `[datanode]`,
//! `[dfs]`, …). Each crate owns the struct of its own sections; this module only loads the file,
//! applies environment overrides and reports errors with the file and key.
//!
//! Override rule: `SHEAF_<SECTION>_<KEY>` with the key upper-cased and `-` written as `_`
//! (`[dfs] block-size` ← `SHEAF_DFS_BLOCK_SIZE=1048576`). Values are parsed as TOML scalars
//! (integers, floats, booleans) and fall back to strings. A command line's `-D section.key=value`
//! ([`ConfigFile::set`]) beats both the file and the environment.

use crate::RpcError;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A loaded configuration file.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile {
    table: toml::Table,
    source: Option<PathBuf>,
    /// `-D` values: (section, key, value), applied after the environment.
    overrides: Vec<(String, String, String)>,
}

impl ConfigFile {
    /// An empty configuration: every section takes its defaults (plus env overrides).
    pub fn empty() -> ConfigFile {
        ConfigFile::default()
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, RpcError> {
        let text = std::fs::read_to_string(path).map_err(|e| RpcError::Config {
            path: path.display().to_string(),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => "not found".to_string(),
                _ => e.to_string(),
            },
        })?;
        Self::parse(&text, Some(path.to_path_buf()))
    }

    /// Parses TOML text (`source` names it in errors).
    pub fn parse(text: &str, source: Option<PathBuf>) -> Result<ConfigFile, RpcError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| RpcError::Config {
                path: source
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "<text>".into()),
                reason: e.to_string().replace('\n', " "),
            })?;
        Ok(ConfigFile {
            table,
            source,
            overrides: Vec::new(),
        })
    }

    /// Sets `[section] key` to `value` (parsed like an environment override), over the file's
    /// value and the environment's.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.overrides
            .push((section.to_string(), key.to_string(), value.to_string()));
    }

    /// The file this configuration came from.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    fn source_name(&self) -> String {
        self.source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<defaults>".into())
    }

    /// Section `name` as `T`, after environment overrides; missing keys take `T`'s serde defaults.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<T, RpcError> {
        self.section_with_env(name, std::env::vars())
    }

    /// Like [`ConfigFile::section`] with an explicit environment (for tests).
    pub fn section_with_env<T: DeserializeOwned>(
        &self,
        name: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<T, RpcError> {
        let mut section = match self.table.get(name) {
            Some(toml::Value::Table(t)) => t.clone(),
            Some(_) => {
                return Err(RpcError::Config {
                    path: self.source_name(),
                    reason: format!("[{name}] must be a table"),
                })
            }
            None => toml::Table::new(),
        };
        let prefix = format!("SHEAF_{}_", name.to_uppercase().replace('-', "_"));
        for (k, v) in env {
            if let Some(rest) = k.strip_prefix(&prefix) {
                if rest.is_empty() {
                    continue;
                }
                let key = rest.to_lowercase().replace('_', "-");
                section.insert(key, scalar(&v));
            }
        }
        for (_, key, value) in self.overrides.iter().filter(|(s, _, _)| s == name) {
            section.insert(key.clone(), scalar(value));
        }
        toml::Value::Table(section)
            .try_into()
            .map_err(|e: toml::de::Error| RpcError::Config {
                path: self.source_name(),
                reason: format!("[{name}] {}", e.to_string().replace('\n', " ").trim()),
            })
    }
}

fn scalar(v: &str) -> toml::Value {
    if let Ok(i) = v.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = v.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = v.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
    struct Dfs {
        block_size: u64,
        replication: u32,
        name: String,
    }
    impl Default for Dfs {
        fn default() -> Self {
            Dfs {
                block_size: 128 << 20,
                replication: 3,
                name: "x".into(),
            }
        }
    }

    #[test]
    fn set_values_beat_the_environment_and_the_file() {
        let mut cfg = ConfigFile::parse("[dfs]\nreplication = 2\n", None).unwrap();
        cfg.set("dfs", "replication", "1");
        cfg.set("namenode", "replication", "9");
        let env = vec![("SHEAF_DFS_REPLICATION".to_string(), "5".to_string())];
        let d: Dfs = cfg.section_with_env("dfs", env).unwrap();
        assert_eq!(d.replication, 1);
        cfg.set("dfs", "no-such-key", "1");
        assert!(cfg.section_with_env::<Dfs>("dfs", vec![]).is_err());
    }

    #[test]
    fn file_values_env_overrides_and_defaults_combine() {
        let cfg = ConfigFile::parse("[dfs]\nblock-size = 1048576\n", None).unwrap();
        let env = vec![
            ("SHEAF_DFS_REPLICATION".to_string(), "2".to_string()),
            ("OTHER".into(), "1".into()),
        ];
        let d: Dfs = cfg.section_with_env("dfs", env).unwrap();
        assert_eq!(
            d,
            Dfs {
                block_size: 1 << 20,
                replication: 2,
                name: "x".into()
            }
        );
    }

    #[test]
    fn malformed_and_unknown_keys_are_clear_errors() {
        let err = ConfigFile::parse("[dfs\nx=", Some("/etc/s.toml".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/s.toml"), "{err}");
        let cfg = ConfigFile::parse("[dfs]\nblok-size = 1\n", Some("/etc/s.toml".into())).unwrap();
        let err = cfg
            .section_with_env::<Dfs>("dfs", vec![])
            .unwrap_err()
            .to_string();
        assert!(err.contains("blok-size") && err.contains("[dfs]"), "{err}");
        let cfg = ConfigFile::parse("[dfs]\nreplication = \"three\"\n", None).unwrap();
        assert!(cfg.section_with_env::<Dfs>("dfs", vec![]).is_err());
    }
}
