//! Fixtures the integration tests share: fake Bitbucket Servers and Clouds,
//! the daemon spawned on a free loopback port, entity files, PostgreSQL
//! databases of a test's own, stores a daemon filled and left
//! (`persistence`), the simulator set-ups, and a co-tenant on Bitbucket's
//! token (`co_tenant`).
//!
//! Two fakes model Bitbucket's API, and each earns its place:
//! - **wiremock** ([`FakeServer`], [`FakeCloud`]) for a test that states
//!   exactly what Bitbucket answers and asks: per-test files and odd pages
//!   (Cloud's repeated results, search turned off, unexpected fields),
//!   injected failures (503s, endless or hostile bodies, redirects), the
//!   `Authorization` header every request must carry, and counts of
//!   requests to one path.
//! - **the simulator** (`bitbucket_sim`, set up by [`sim`]) for what a
//!   hand-written fake cannot give: hundreds of generated repositories
//!   whose expected entities and fewest requests the data set knows, a
//!   state that pushes change (new commits, renames, signed webhook
//!   deliveries), rate limits and request statistics, and a server that
//!   child processes (replicas, the Backstage module, the benchmarks) reach.
//!
//! Folding the small cases into the simulator would lose the exact request
//! matching and fault injection; folding the large ones into wiremock would
//! mean hand-writing the data set and its webhook state.

mod app;
mod binary;
mod cloud;
pub mod co_tenant;
mod entities;
mod mock;
mod node;
mod persistence;
mod postgres;
mod server;
pub mod sim;

pub use app::*;
pub use binary::*;
pub use cloud::*;
pub use entities::*;
pub use node::*;
pub use persistence::*;
pub use postgres::*;
pub use server::*;
