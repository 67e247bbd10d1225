//! Receiving Bitbucket's webhooks: which integration an event came through
//! (its `webhookSecret` signed it), whether it is one to act on, and which
//! providers' repositories it concerns. What it asks for is queued on those
//! providers and read asynchronously; nothing here waits for Bitbucket.

use std::sync::Arc;
use std::time::Instant;

use crate::bitbucket::webhooks::{self as payload, Event};
use crate::integrations::{HostKey, Integrations, Product, WebhookSettings};
use crate::metrics;
use crate::scheduler::{Scheduler, Work, WorkItem};

/// One integration events can come through.
#[derive(Debug)]
struct Receiver {
    host: String,
    settings: WebhookSettings,
}

/// The integrations events can come through, per product.
#[derive(Debug)]
struct Receivers {
    server: Vec<Receiver>,
    cloud: Vec<Receiver>,
}

/// Routes verified events to the providers they concern.
pub(crate) struct Webhooks {
    /// Swapped whole by a reload, so a secret rotates without a restart;
    /// an event is checked against one set.
    receivers: parking_lot::RwLock<Arc<Receivers>>,
    scheduler: Arc<Scheduler>,
}

/// Why an event was refused; nothing was requested from Bitbucket for it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejected {
    #[error(transparent)]
    Unauthenticated(Unauthenticated),
    #[error(transparent)]
    Invalid(Invalid),
    #[error("no integrations.{0} entry is configured, so no event is accepted on this route")]
    NoIntegration(&'static str),
}

/// No integration on the route (named by its topic) vouches for the event.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unauthenticated {
    #[error(
        "the X-Hub-Signature does not match the webhookSecret of any integrations.{0} entry: set the same secret on the webhook in Bitbucket"
    )]
    Mismatch(&'static str),
    #[error(
        "the event is not signed: set a secret on the webhook in Bitbucket and the same value as integrations.{0}[].webhookSecret"
    )]
    Unsigned(&'static str),
}

/// The request is not an event Bitbucket sends.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    #[error("the X-Event-Key header is missing")]
    NoEventKey,
    #[error(transparent)]
    Payload(#[from] payload::PayloadError),
}

/// What became of an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// "Test connection": answered at once.
    Ping,
    /// Queued for these providers.
    Queued(Vec<String>),
    /// Nothing to do, and why.
    Ignored(String),
}

impl Receivers {
    /// Warns once for each integration that accepts unsigned events.
    fn of(integrations: &Integrations) -> Self {
        let receivers = |product: Product, entries: Vec<(&str, &WebhookSettings)>| {
            let kind = product.topic();
            entries
                .into_iter()
                .enumerate()
                .map(|(index, (host, settings))| {
                    if settings.allow_unsigned {
                        tracing::warn!(
                            host,
                            "integrations.{kind}[{index}].allowUnsignedWebhooks is on: anyone who can reach /api/events/http/{kind} can make this daemon read that host's repositories; set webhookSecret instead"
                        );
                    }
                    Receiver {
                        host: host.to_owned(),
                        settings: settings.clone(),
                    }
                })
                .collect()
        };
        Self {
            server: receivers(
                Product::Server,
                integrations
                    .bitbucket_server
                    .iter()
                    .map(|i| (i.host.as_str(), &i.webhooks))
                    .collect(),
            ),
            cloud: receivers(
                Product::Cloud,
                integrations
                    .bitbucket_cloud
                    .iter()
                    .map(|i| (i.host.as_str(), &i.webhooks))
                    .collect(),
            ),
        }
    }
}

impl Webhooks {
    /// Warns once for each integration that accepts unsigned events.
    pub(crate) fn new(integrations: &Integrations, scheduler: Arc<Scheduler>) -> Self {
        Self {
            receivers: parking_lot::RwLock::new(Arc::new(Receivers::of(integrations))),
            scheduler,
        }
    }

    /// Takes the webhook secrets of reloaded `integrations`; events
    /// already being checked finish with the old ones.
    pub(crate) fn reload(&self, integrations: &Integrations) {
        *self.receivers.write() = Arc::new(Receivers::of(integrations));
    }

    /// Verifies and routes one event (`event_key`: `X-Event-Key`;
    /// `signature`: `X-Hub-Signature`). Returns at once.
    #[tracing::instrument(name = "webhook.receive", level = "debug", skip_all, fields(topic = product.topic(), event_key = event_key.unwrap_or_default()))]
    pub(crate) fn receive(
        &self,
        product: Product,
        event_key: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, Rejected> {
        let received = Instant::now();
        let topic = product.topic();
        let receivers = Arc::clone(&self.receivers.read());
        let (trusted, event) = match receivers.check(product, event_key, signature, body) {
            Ok(ok) => ok,
            Err(rejected) => {
                metrics::record_event_outcome(topic, "unknown", "rejected");
                return Err(rejected);
            }
        };
        let accepted = self.route(product, &trusted, event, received);
        match &accepted {
            Accepted::Ignored(why) => {
                tracing::debug!(topic, reason = why.as_str(), "webhook event ignored")
            }
            Accepted::Queued(providers) => {
                tracing::debug!(topic, providers = ?providers, "webhook event queued")
            }
            Accepted::Ping => tracing::info!(topic, "webhook test connection"),
        }
        Ok(accepted)
    }

    /// Whether `receive` would accept the event, without acting on it: a
    /// follower checks before it hands an event to the leader, so a forged
    /// or unsigned one is stored nowhere.
    pub(crate) fn verify(
        &self,
        product: Product,
        event_key: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Rejected> {
        let receivers = Arc::clone(&self.receivers.read());
        receivers.check(product, event_key, signature, body)?;
        Ok(())
    }
}

impl Receivers {
    /// What `receive` and `verify` both ask of an event: the integrations
    /// it may have come through ([`Self::authenticate`]) and its payload.
    fn check(
        &self,
        product: Product,
        event_key: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(Vec<&Receiver>, Event), Rejected> {
        let trusted = self.authenticate(product, signature, body)?;
        let key = event_key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(Rejected::Invalid(Invalid::NoEventKey))?;
        let event =
            payload::parse(product, key, body).map_err(|err| Rejected::Invalid(err.into()))?;
        Ok((trusted, event))
    }

    /// The integrations `body` may have come through: those whose secret
    /// signed it, or, unsigned, those that accept unsigned events.
    fn authenticate(
        &self,
        product: Product,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<&Receiver>, Rejected> {
        let topic = product.topic();
        let receivers = match product {
            Product::Server => &self.server,
            Product::Cloud => &self.cloud,
        };
        if receivers.is_empty() {
            return Err(Rejected::NoIntegration(topic));
        }
        if let Some(signature) = signature {
            // Every secret is tried, so timing does not tell which matched.
            let signed: Vec<&Receiver> = receivers
                .iter()
                .filter(|r| {
                    // `|` not `||`: every secret is tried, whichever matches.
                    r.settings.accepted().fold(false, |matched, secret| {
                        matched
                            | payload::signature_matches(
                                secret.expose().as_bytes(),
                                body,
                                signature,
                            )
                    })
                })
                .collect();
            if !signed.is_empty() {
                return Ok(signed);
            }
        }
        let unsigned: Vec<&Receiver> = receivers
            .iter()
            .filter(|r| r.settings.allow_unsigned)
            .collect();
        if !unsigned.is_empty() {
            return Ok(unsigned);
        }
        Err(Rejected::Unauthenticated(match signature {
            Some(_) => Unauthenticated::Mismatch(topic),
            None => Unauthenticated::Unsigned(topic),
        }))
    }
}

impl Webhooks {
    fn route(
        &self,
        product: Product,
        trusted: &[&Receiver],
        event: Event,
        received: Instant,
    ) -> Accepted {
        let kind = event.kind();
        let (repository, work) = match event {
            Event::Ping => return Accepted::Ping,
            Event::Ignored { key } => {
                return self.ignored(trusted, kind, format!("{key} events are not acted on"));
            }
            event => match Work::asked_by(event) {
                Some(asked) => asked,
                None => {
                    return self.ignored(trusted, kind, "the event names no repository".into());
                }
            },
        };
        // The repository must be on the integration that signed the event.
        let integration = match payload::host_of(&repository) {
            Some(host) => trusted
                .iter()
                .copied()
                .find(|r| HostKey::same(&r.host, &host)),
            None => trusted.first().copied(),
        };
        let Some(integration) = integration else {
            let hosts: Vec<&str> = trusted.iter().map(|r| r.host.as_str()).collect();
            return self.ignored(
                trusted,
                kind,
                format!(
                    "repository {} is on {}, not on {} whose secret signed the event",
                    repository.slug,
                    payload::host_of(&repository).unwrap_or_default(),
                    hosts.join(", ")
                ),
            );
        };
        let mut queued = Vec::new();
        let mut concerns_any = false;
        for runner in self.scheduler.runners() {
            let concerned = runner.source().product() == Some(product)
                && runner
                    .source()
                    .repository_reads()
                    .is_some_and(|r| HostKey::same(r.host(), &integration.host));
            concerns_any |= concerned;
            let queued_here = concerned
                && runner.enqueue(WorkItem {
                    repository: repository.clone(),
                    work: work.clone(),
                    received,
                    origin: integration.host.clone(),
                    span: tracing::Span::current(),
                });
            if queued_here {
                queued.push(runner.id().to_owned());
            }
        }
        if queued.is_empty() && concerns_any {
            return Accepted::Ignored("too many repositories already wait to be read".into());
        }
        if queued.is_empty() {
            return self.ignored(
                &[integration],
                kind,
                format!("no provider reads {}", integration.host),
            );
        }
        Accepted::Queued(queued)
    }

    fn ignored(&self, trusted: &[&Receiver], kind: &str, why: String) -> Accepted {
        let host = trusted.first().map_or("", |r| r.host.as_str());
        metrics::record_event_outcome(host, kind, "ignored");
        Accepted::Ignored(why)
    }
}
