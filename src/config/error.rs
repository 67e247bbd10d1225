//! Why a configuration cannot be loaded: each error names the file (or
//! environment variable), the key and what to do.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    EnvOverride(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::EnvOverride(var) => write!(f, "environment variable {var}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; pass the right path with --config FILE", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is not valid YAML: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}{key}: {message}", OriginPrefix(origin))]
    Invalid {
        origin: Option<Origin>,
        key: String,
        message: String,
    },
}

struct OriginPrefix<'a>(&'a Option<Origin>);

impl fmt::Display for OriginPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(origin) => write!(f, "{origin}: "),
            None => Ok(()),
        }
    }
}
