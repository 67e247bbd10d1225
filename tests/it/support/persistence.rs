//! Stores a daemon filled and left: the set-up of the restart tests.

use std::path::{Path, PathBuf};

use bitbucket_catalogd::{Catalog, CatalogStore, SqliteStore};

use super::{FakeServer, TestApp, mount_mixed_catalog, server_config};

/// A fake Data Center serving the mixed catalog (7 entities) to provider
/// `main`, and a SQLite store a daemon filled from it and then stopped.
pub struct StoredCatalog {
    pub fake: FakeServer,
    /// The daemon's config (provider `main` on `fake`).
    pub config: String,
    pub db: PathBuf,
    /// `GET /api/catalog/entities` as the daemon answered before stopping.
    pub served: String,
    _dir: tempfile::TempDir,
}

impl StoredCatalog {
    /// The store at `db` (a path relative to a fresh temporary directory;
    /// missing folders are the daemon's to create).
    pub async fn mixed(db: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join(db);
        let fake = FakeServer::start().await;
        mount_mixed_catalog(&fake).await;
        let config = server_config(&fake, "", "");
        let first = serve_stored(&config, &db).await;
        first.wait_for_entities(7).await;
        let served = first.entities_text().await;
        first.stop().await;
        Self {
            fake,
            config,
            db,
            served,
            _dir: dir,
        }
    }

    /// What was served, as JSON.
    pub fn served_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.served).expect("entities JSON")
    }

    /// The daemon again on the same config and store.
    pub async fn restart(&self) -> TestApp {
        serve_stored(&self.config, &self.db).await
    }
}

/// The daemon on `config` with its SQLite store at `db`.
pub async fn serve_stored(config: &str, db: &Path) -> TestApp {
    TestApp::spawn_with_database(config, &db.display().to_string()).await
}

/// Entity `key`'s body as the store at `db` holds it.
pub async fn stored_body(db: &Path, key: &str) -> String {
    let store = SqliteStore::open(db).await.expect("store opens");
    let catalog = Catalog::new();
    store
        .restore(usize::MAX, &catalog)
        .await
        .expect("store restores");
    store.close().await;
    let stored = catalog.snapshot();
    let entity = stored
        .iter()
        .find(|e| e.key.as_str() == key)
        .expect("still stored");
    entity.json.to_string()
}
