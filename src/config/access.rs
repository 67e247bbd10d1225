//! `backend.auth.externalAccess`, Backstage's shape: `[{type: static,
//! options: {token, subject}, accessRestrictions?: [{plugin, permission?}]}]`.
//! When it is configured, the write endpoints need one of its static tokens;
//! other entry types (`legacy`, `jwks`) are Backstage's and grant nothing here.

use serde::Serialize;
use serde_json::Value;

use super::{ConfigError, Ctx};
use crate::secret::Secret;

/// What a write endpoint does, named as Backstage's catalog permissions
/// (so `accessRestrictions[].permission` reads the same as in Backstage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
pub enum WritePermission {
    #[strum(serialize = "catalog.location.create")]
    LocationCreate,
    #[strum(serialize = "catalog.location.delete")]
    LocationDelete,
    #[strum(serialize = "catalog.entity.refresh")]
    EntityRefresh,
    #[strum(serialize = "catalog.entity.delete")]
    EntityDelete,
}

impl WritePermission {
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One static token. `Debug` and `Serialize` never show the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticToken {
    pub token: Secret,
    /// Who is calling, for the logs (`subject` in Backstage).
    pub subject: String,
    /// `None`: every write; else only these permission names.
    pub permissions: Option<Vec<String>>,
}

/// Who may call the write endpoints. The default (nothing configured)
/// refuses every write, as Backstage's default auth policy does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExternalAccess {
    /// `backend.auth.externalAccess` is set: writes need a matching token.
    pub protected: bool,
    /// `backend.auth.dangerouslyDisableDefaultAuthPolicy: true`: every
    /// write is allowed without a token (Backstage's key and meaning).
    pub open: bool,
    pub tokens: Vec<StaticToken>,
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or not one of ours.
    Unauthenticated,
    /// Neither `externalAccess` nor the explicit opening is configured.
    NoPolicy,
    /// A known token whose `accessRestrictions` do not grant this.
    Forbidden,
}

impl ExternalAccess {
    /// The subject of the token `presented` (an `Authorization: Bearer`
    /// value, if any) when it may do `permission`; always allowed (`None`
    /// subject) when the operator opened writes, never when nothing is
    /// configured.
    pub fn authorize(
        &self,
        presented: Option<&str>,
        permission: WritePermission,
    ) -> Result<Option<&str>, Denied> {
        self.check(presented, permission, |token, presented| {
            constant_time_eq(token.token.expose().as_bytes(), presented.as_bytes())
        })
    }

    /// The subject of `presented` when it is one of the static tokens,
    /// whatever it may do (who a read is from, for fairness and paces).
    pub fn subject_of(&self, presented: &str) -> Option<&str> {
        self.tokens
            .iter()
            // Every token is compared, so the time taken does not say which one matched.
            .fold(None, |found, t| {
                let matched = constant_time_eq(t.token.expose().as_bytes(), presented.as_bytes());
                found.or(matched.then_some(t))
            })
            .map(|t| t.subject.as_str())
    }

    /// As [`Self::authorize`], for a write a follower replica handed over:
    /// `digest` is the [`token_digest`] of the token presented there (the
    /// token itself is stored nowhere). The leader checks against its own
    /// configuration, so a follower on an older one cannot let a write in.
    pub fn authorize_digest(
        &self,
        digest: Option<&str>,
        permission: WritePermission,
    ) -> Result<Option<&str>, Denied> {
        self.check(digest, permission, |token, digest| {
            let ours = token_digest(token.token.expose());
            constant_time_eq(ours.as_bytes(), digest.as_bytes())
        })
    }

    fn check(
        &self,
        presented: Option<&str>,
        permission: WritePermission,
        matches: impl Fn(&StaticToken, &str) -> bool,
    ) -> Result<Option<&str>, Denied> {
        if self.open {
            return Ok(None);
        }
        if !self.protected {
            return Err(Denied::NoPolicy);
        }
        let presented = presented.ok_or(Denied::Unauthenticated)?;
        let token = self
            .tokens
            .iter()
            // Every token is compared, so the time taken does not say which one matched.
            .fold(None, |found, t| {
                let matched = matches(t, presented);
                found.or(matched.then_some(t))
            })
            .ok_or(Denied::Unauthenticated)?;
        let granted = token
            .permissions
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == permission.name()));
        if granted {
            Ok(Some(token.subject.as_str()))
        } else {
            Err(Denied::Forbidden)
        }
    }
}

/// The hex SHA-256 of a presented token: what a follower records for the
/// leader instead of the token.
pub(crate) fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Compares without stopping at the first difference (the length still shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

/// Backstage's explicit opening of every endpoint to unauthenticated callers.
const DISABLE_DEFAULT_POLICY: &str = "backend.auth.dangerouslyDisableDefaultAuthPolicy";

pub(super) fn external_access(ctx: &mut Ctx<'_>) -> Result<ExternalAccess, ConfigError> {
    let open = ctx
        .optional::<bool>(DISABLE_DEFAULT_POLICY)?
        .unwrap_or(false);
    let mut access = tokens(ctx)?;
    access.open = open;
    Ok(access)
}

fn tokens(ctx: &mut Ctx<'_>) -> Result<ExternalAccess, ConfigError> {
    let base = "backend.auth.externalAccess";
    let Some(value) = ctx.set(base) else {
        return Ok(ExternalAccess::default());
    };
    let Value::Array(items) = value else {
        return Err(ctx.error(
            base,
            "expected a list, e.g. [{type: static, options: {token: ${CATALOG_TOKEN}, subject: portal}}]",
        ));
    };
    let mut access = ExternalAccess {
        protected: true,
        open: false,
        tokens: Vec::new(),
    };
    for (index, item) in items.iter().enumerate() {
        let key = format!("{base}.{index}");
        let entry: raw::ExternalAccessEntry = ctx.section(&key, item)?;
        if entry.type_ != "static" {
            ctx.warn(
                &format!("{key}.type"),
                &format!(
                    "type '{}' is not supported by this daemon (only static tokens); this entry grants no access here",
                    entry.type_
                ),
            );
            continue;
        }
        let options_key = format!("{key}.options");
        let options: raw::StaticAccessOptions = match &entry.options {
            Some(options) => ctx.section(&options_key, options)?,
            None => return Err(ctx.error(&options_key, "required: {token, subject}")),
        };
        let token_key = format!("{options_key}.token");
        let token = options.token.ok_or_else(|| {
            ctx.error(
                &token_key,
                "required: the token callers send as Authorization: Bearer <token> (if it comes from ${VAR}, set that variable)",
            )
        })?;
        let raw_token = token.expose();
        if raw_token.is_empty() || raw_token.chars().any(char::is_whitespace) {
            return Err(ctx.error(
                &token_key,
                "Illegal token, must be a set of non-space characters",
            ));
        }
        if raw_token.chars().count() < 8 {
            return Err(ctx.error(
                &token_key,
                "Illegal token, must be at least 8 characters length",
            ));
        }
        let subject = options.subject.unwrap_or_default();
        if subject.is_empty() || subject.chars().any(char::is_whitespace) {
            return Err(ctx.error(
                &format!("{options_key}.subject"),
                "Illegal subject, must be a set of non-space characters",
            ));
        }
        let permissions = entry.access_restrictions.map(|restrictions| {
            catalog_permissions(ctx, &format!("{key}.accessRestrictions"), restrictions)
        });
        access.tokens.push(StaticToken {
            token,
            subject,
            permissions,
        });
    }
    Ok(access)
}

/// What `accessRestrictions` leave for this catalog: the write
/// permissions of entries for plugin `catalog` (all of them when such an
/// entry names none). `permissionAttribute` is not evaluated here, so an
/// entry using it grants nothing.
fn catalog_permissions(
    ctx: &mut Ctx<'_>,
    key: &str,
    restrictions: Vec<raw::AccessRestriction>,
) -> Vec<String> {
    let all = [
        WritePermission::LocationCreate,
        WritePermission::LocationDelete,
        WritePermission::EntityRefresh,
    ];
    let mut granted = Vec::new();
    for (index, restriction) in restrictions.into_iter().enumerate() {
        if restriction.plugin != "catalog" {
            continue;
        }
        if restriction.permission_attribute.is_some() {
            ctx.warn(
                &format!("{key}.{index}.permissionAttribute"),
                "not evaluated by this daemon; this restriction grants no write access here",
            );
            continue;
        }
        match restriction.permission {
            None => granted.extend(all.iter().map(|p| p.name().to_owned())),
            Some(names) => granted.extend(names.into_vec()),
        }
    }
    granted
}

/// The shapes as written in the file.
pub(super) mod raw {
    use serde::Deserialize;
    use serde_json::Value;

    use crate::secret::Secret;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct ExternalAccessEntry {
        #[serde(rename = "type")]
        pub type_: String,
        pub options: Option<Value>,
        pub access_restrictions: Option<Vec<AccessRestriction>>,
    }

    #[derive(Deserialize)]
    pub(crate) struct StaticAccessOptions {
        pub token: Option<Secret>,
        pub subject: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct AccessRestriction {
        pub plugin: String,
        pub permission: Option<OneOrMany>,
        pub permission_attribute: Option<Value>,
    }

    /// A string or a list of strings, as Backstage accepts for permissions.
    #[derive(Deserialize)]
    #[serde(untagged)]
    pub(crate) enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    impl OneOrMany {
        pub(super) fn into_vec(self) -> Vec<String> {
            match self {
                OneOrMany::One(one) => vec![one],
                OneOrMany::Many(many) => many,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly_and_respect_permissions() {
        let access = ExternalAccess {
            protected: true,
            open: false,
            tokens: vec![
                StaticToken {
                    token: Secret::new("full-access-token"),
                    subject: "portal".into(),
                    permissions: None,
                },
                StaticToken {
                    token: Secret::new("create-only-token"),
                    subject: "importer".into(),
                    permissions: Some(vec!["catalog.location.create".into()]),
                },
            ],
        };
        let create = WritePermission::LocationCreate;
        assert_eq!(
            access.authorize(Some("full-access-token"), create),
            Ok(Some("portal"))
        );
        assert_eq!(
            access.authorize(Some("create-only-token"), create),
            Ok(Some("importer"))
        );
        assert_eq!(
            access.authorize(Some("create-only-token"), WritePermission::LocationDelete),
            Err(Denied::Forbidden)
        );
        for wrong in [
            "",
            "full-access-toke",
            "full-access-token2",
            "FULL-ACCESS-TOKEN",
        ] {
            assert_eq!(
                access.authorize(Some(wrong), create),
                Err(Denied::Unauthenticated),
                "{wrong}"
            );
        }
        assert_eq!(access.authorize(None, create), Err(Denied::Unauthenticated));
        assert_eq!(
            ExternalAccess::default().authorize(None, create),
            Err(Denied::NoPolicy),
            "closed by default"
        );
        let open = ExternalAccess {
            open: true,
            ..access.clone()
        };
        assert_eq!(open.authorize(None, create), Ok(None));
        assert!(!format!("{access:?}").contains("full-access-token"));
    }
}
