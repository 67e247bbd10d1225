//! `backend`: where the API listens, which database it stores into and who
//! may call its write endpoints.

use serde::Serialize;

use super::{ConfigError, Ctx, DatabaseConfig, ExternalAccess, ListenConfig};
use super::{access, database, listen};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendConfig {
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    /// `backend.auth.externalAccess`: who may call the write endpoints.
    pub external_access: ExternalAccess,
}

pub(super) fn backend(ctx: &mut Ctx<'_>) -> Result<BackendConfig, ConfigError> {
    Ok(BackendConfig {
        listen: listen::listen(ctx)?,
        database: database::database(ctx)?,
        external_access: access::external_access(ctx)?,
    })
}
