//! `backend`: where the API listens, which database it stores into, who
//! may call its write endpoints, how fast requests that read Bitbucket
//! or remove entities are let through, what one query may cost, which
//! proxies are trusted to name the client, and whether config files are
//! watched.

use std::net::IpAddr;

use ipnet::IpNet;
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
    /// `backend.apiRateLimit`: the pace of costly API requests.
    pub api_rate_limit: ApiRateLimit,
    /// `backend.queryBudget`: what one query over the catalog may take.
    pub query_budget: QueryBudget,
    /// `backend.trustedProxies`: peers whose `X-Forwarded-For` names the
    /// client (for fairness and paces); empty: the peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// `backend.reload.watch`: reload when a config file changes (as on
    /// SIGHUP), not only on the signal.
    pub watch_config: bool,
}

/// A pace: so many a minute, so many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pace {
    pub per_minute: u32,
    pub burst: u32,
}

impl Pace {
    const fn new(per_minute: u32, burst: u32) -> Self {
        Self { per_minute, burst }
    }
}

impl std::fmt::Display for Pace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} a minute, {} at once", self.per_minute, self.burst)
    }
}

/// `backend.apiRateLimit.bitbucketReads`: requests that cost Bitbucket
/// requests (entity, provider and location refresh, `validate-entity`,
/// `analyze-location`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BitbucketReadsPace {
    /// Per caller (a known token's subject, else the client's address).
    pub per_caller: Pace,
    /// All callers together.
    pub overall: Pace,
}

impl Default for BitbucketReadsPace {
    fn default() -> Self {
        Self {
            per_caller: Pace::new(30, 10),
            overall: Pace::new(120, 20),
        }
    }
}

/// `backend.apiRateLimit`: how fast the API lets through requests that
/// spend the Bitbucket budget, and removals (all callers together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRateLimit {
    pub bitbucket_reads: BitbucketReadsPace,
    /// `DELETE /entities/by-uid`, `DELETE /locations/{id}`.
    pub deletions: Pace,
}

impl Default for ApiRateLimit {
    fn default() -> Self {
        Self {
            bitbucket_reads: BitbucketReadsPace::default(),
            deletions: Pace::new(60, 10),
        }
    }
}

pub(crate) use crate::catalog::budget::QueryBudget;

/// `backend.trustedProxies`: address ranges of the proxies in front of the
/// daemon (an ingress, a sidecar's peer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// As written (`10.0.0.0/8`), for `config check`.
impl Serialize for TrustedProxies {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> Self {
        Self(ranges)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// The most ranges read: a list longer than this is a mistake.
const MAX_TRUSTED_PROXIES: usize = 256;

pub(super) fn backend(ctx: &mut Ctx<'_>) -> Result<BackendConfig, ConfigError> {
    Ok(BackendConfig {
        listen: listen::listen(ctx)?,
        database: database::database(ctx)?,
        external_access: access::external_access(ctx)?,
        api_rate_limit: api_rate_limit(ctx)?,
        query_budget: query_budget(ctx)?,
        trusted_proxies: trusted_proxies(ctx)?,
        watch_config: ctx
            .optional::<LooseBool>("backend.reload.watch")?
            .is_some_and(|watch| watch.0),
    })
}

/// `backend.apiRateLimit`; each key absent keeps its default.
fn api_rate_limit(ctx: &mut Ctx<'_>) -> Result<ApiRateLimit, ConfigError> {
    let defaults = ApiRateLimit::default();
    let Some(written) = ctx.optional::<raw::ApiRateLimit>("backend.apiRateLimit")? else {
        return Ok(defaults);
    };
    let reads = written.bitbucket_reads.unwrap_or_default();
    let pace = |written: Option<raw::Pace>, default: Pace| {
        written.map_or(default, |p| Pace {
            per_minute: p.per_minute.map_or(default.per_minute, |n| whole(n.0)),
            burst: p.burst.map_or(default.burst, |n| whole(n.0)),
        })
    };
    Ok(ApiRateLimit {
        bitbucket_reads: BitbucketReadsPace {
            per_caller: pace(reads.per_caller, defaults.bitbucket_reads.per_caller),
            overall: pace(reads.overall, defaults.bitbucket_reads.overall),
        },
        deletions: pace(written.deletions, defaults.deletions),
    })
}

/// `backend.queryBudget`; each key absent keeps its default.
fn query_budget(ctx: &mut Ctx<'_>) -> Result<QueryBudget, ConfigError> {
    let defaults = QueryBudget::default();
    let Some(written) = ctx.optional::<raw::QueryBudget>("backend.queryBudget")? else {
        return Ok(defaults);
    };
    Ok(QueryBudget {
        cpu: written.cpu.map_or(defaults.cpu, |d| d.0),
        wall_clock: written.wall_clock.map_or(defaults.wall_clock, |d| d.0),
    })
}

/// `backend.trustedProxies`: a list of CIDR ranges or single addresses.
fn trusted_proxies(ctx: &mut Ctx<'_>) -> Result<TrustedProxies, ConfigError> {
    const KEY: &str = "backend.trustedProxies";
    let Some(written) = ctx.optional::<Vec<String>>(KEY)? else {
        return Ok(TrustedProxies::default());
    };
    if written.len() > MAX_TRUSTED_PROXIES {
        return Err(ctx.error(
            KEY,
            format!("at most {MAX_TRUSTED_PROXIES} ranges; merge them into wider ones"),
        ));
    }
    let mut nets = Vec::with_capacity(written.len());
    for (i, text) in written.iter().enumerate() {
        let text = text.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                ctx.error(
                    &format!("{KEY}[{i}]"),
                    format!("'{text}' is not an address range; write e.g. 10.0.0.0/8, fd00::/8 or 10.1.2.3"),
                )
            })?;
        nets.push(net.trunc());
    }
    Ok(TrustedProxies::new(nets))
}

/// Bounded to a million when read, so it fits.
fn whole(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The shape as written; numbers may arrive as strings from `${VAR}`.
pub(super) mod raw {
    use serde::Deserialize;

    use crate::config::loose::{Bounded, PositiveDuration};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct ApiRateLimit {
        pub bitbucket_reads: Option<BitbucketReads>,
        pub deletions: Option<Pace>,
    }

    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct BitbucketReads {
        pub per_caller: Option<Pace>,
        pub overall: Option<Pace>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct QueryBudget {
        pub cpu: Option<PositiveDuration<2>>,
        pub wall_clock: Option<PositiveDuration<10>>,
    }

    /// Whole numbers from 1: a pace of 0 would shut the endpoints.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct Pace {
        pub per_minute: Option<Bounded<1, 1_000_000>>,
        pub burst: Option<Bounded<1, 1_000_000>>,
    }
}
