//! Catalog checks on pull requests: for a pull request into the branch a
//! provider reads, the catalog files it changes are read at its source
//! commit and processed as a read would, without applying anything; the
//! result (entities added, changed, removed; problems at their file and
//! line) is posted on the commit (Code Insights, else a build status) and
//! kept as a preview until the pull request is merged or declined.
//!
//! - [`run`]: one check, from the event to the posted report.
//! - [`diff`]: predicted against served entities.
//! - [`previews`]: the open previews (bounded, written through to the store).

mod diff;
mod previews;
mod run;

pub(crate) use previews::{PreviewKey, PreviewSummary, Previews};
pub(crate) use run::{Checked, PullRequestCheck, closed_key};
