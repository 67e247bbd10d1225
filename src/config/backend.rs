//! `backend`: where the API listens, which database it stores into, who
//! may call its write endpoints and whether config files are watched.

use serde::Serialize;

use super::loose::LooseBool;
use super::{ConfigError, Ctx, DatabaseConfig, ExternalAccess, ListenConfig};
use super::{access, database, listen};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendConfig {
    pub listen: ListenConfig,
    pub database: DatabaseConfig,
    /// `backend.auth.externalAccess`: who may call the write endpoints.
    pub external_access: ExternalAccess,
    /// `backend.reload.watch`: reload when a config file changes (as on
    /// SIGHUP), not only on the signal.
    pub watch_config: bool,
}

pub(super) fn backend(ctx: &mut Ctx<'_>) -> Result<BackendConfig, ConfigError> {
    Ok(BackendConfig {
        listen: listen::listen(ctx)?,
        database: database::database(ctx)?,
        external_access: access::external_access(ctx)?,
        watch_config: ctx
            .optional::<LooseBool>("backend.reload.watch")?
            .is_some_and(|watch| watch.0),
    })
}
