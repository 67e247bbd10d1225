//! `backend`: where the API listens, which database it stores into and who
//! may call its write endpoints.

use serde::Serialize;

use super::{ConfigError, Ctx, DatabaseConfig, ExternalAccess, ListenConfig};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendConfig {
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    /// `backend.auth.externalAccess`: who may call the write endpoints.
    pub external_access: ExternalAccess,
}

impl Ctx<'_> {
    pub(super) fn backend(&mut self) -> Result<BackendConfig, ConfigError> {
        Ok(BackendConfig {
            listen: self.listen()?,
            database: self.database()?,
            external_access: self.external_access()?,
        })
    }
}
